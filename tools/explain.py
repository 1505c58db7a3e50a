"""Explain images with a trained model: an overlay PNG per image and method, plus one images × methods grid.

    python tools/explain.py CONFIG CHECKPOINT IMAGES... --method gradcam [--method eigencam ...]
        [--target CLASS] --out DIR [--device cpu] [--size 224] [--batch-size 8] [--cfg-options k=v ...]
    python tools/explain.py CONFIG CHECKPOINT IMAGES... --method convis --concept footwear.n.02 [--concept ...]

IMAGES are image files and/or folders (searched recursively). CLASS is an index or a class name; by default each
image is explained for its predicted class. --method native draws a model family's own explanation (ranked
descriptors, prototypes, ...) as <stem>_<kind>.png and writes its records to native.json. --method convis explains
image-text models for concepts (--concept, repeatable: a grid of images x concepts). All logic lives in
:func:`zoo.apis.explaining.explain`.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from registry.errors import ConfigError  # noqa: E402
from zoo.cli import add_cfg_options, run_cli  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='tools/explain.py', description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='model config file (.py)')
    p.add_argument('checkpoint', help="checkpoint file ('none' for the config's own weights)")
    p.add_argument('images', nargs='+', help='image files and/or folders')
    p.add_argument('--method', action='append', default=None, metavar='NAME',
                   help='explainer alias (e.g. gradcam, gradcam++, eigencam, scorecam, ablationcam, fullgrad, ig, '
                        "smoothgrad, rise: all in docs/explainers.md) or registered name, or 'native' for the model's "
                        "own explanation (e.g. a DescriptorClassifier's ranked descriptors); repeat or comma-separate "
                        'for several (default gradcam)')
    p.add_argument('--target', default=None, help='class index or name (default: the predicted class)')
    p.add_argument('--concept', action='append', default=None, metavar='CONCEPT',
                   help="--method convis: a WordNet synset (footwear.n.02) or a free text; repeat for an images x "
                        'concepts grid')
    p.add_argument('--vocabulary', default=None, metavar='SPEC',
                   help="--method convis: the concepts regions are ranked against ('nouns', the default; "
                        "'hyponyms:artifact.n.01', 'imagenet-1k'); docs/explainers.md#convis")
    p.add_argument('--out', required=True, help='output folder for the PNGs')
    p.add_argument('--device', default='cpu', help="torch device, e.g. 'cpu' or 'cuda:0'")
    p.add_argument('--size', type=int, nargs='+', default=None, metavar='PX',
                   help="resize + centre-crop to this size, 1 to 8192 px (one value or H W; default: the config's test "
                        'pipeline)')
    p.add_argument('--batch-size', type=int, default=8, help='images per explainer call (1 to 1024)')
    add_cfg_options(p)
    p.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Refuse values that would fail late or exhaust memory, before the model is loaded (one-line errors)."""
    from zoo.core.fileio import check_can_write
    from zoo.core.limits import MAX_BATCH, MAX_IMAGE_SIDE

    if not 1 <= args.batch_size <= MAX_BATCH:
        raise ConfigError(f'--batch-size must be between 1 and {MAX_BATCH}, got {args.batch_size}.')
    if args.size is not None and (len(args.size) > 2 or not all(1 <= s <= MAX_IMAGE_SIDE for s in args.size)):
        raise ConfigError(f'--size takes one or two sizes between 1 and {MAX_IMAGE_SIDE} px, got '
                          f'{" ".join(map(str, args.size))}.')
    check_can_write(args.out, 'folder', '--out')
    from zoo.ops.modules import check_device

    check_device(args.device)


def concept_methods(methods: list[str], concepts: list[str] | None, vocabulary: str | None,
                    target: str | None) -> list:
    """``--method convis`` with ``--concept`` (repeatable) → one ConVis config per concept."""
    is_convis = [m.lower() == 'convis' for m in methods]
    if (concepts or vocabulary) and not any(is_convis):
        raise ConfigError('--concept and --vocabulary are for --method convis.')
    if concepts and target is not None:
        raise ConfigError('Give --concept (what ConVis explains) or --target (a class of the model), not both.')
    extra = {'vocabulary': vocabulary} if vocabulary else {}
    out: list = []
    for m, convis in zip(methods, is_convis):
        if convis and (concepts or extra):
            out += [dict(type='ConVis', concept=c, **extra) for c in concepts or [None]]
        else:
            out.append(m)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_args(args)
    from zoo.apis.explaining import explain

    methods = [m.strip() for arg in (args.method or ['gradcam']) for m in arg.split(',') if m.strip()]
    methods = concept_methods(methods, args.concept, args.vocabulary, args.target)
    size = None if args.size is None else (args.size[0] if len(args.size) == 1 else tuple(args.size[:2]))
    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    result = explain(args.config, checkpoint, args.images, methods=methods, target=args.target, out_dir=args.out,
                     device=args.device, cfg_options=args.cfg_options, size=size, batch_size=args.batch_size,
                     progress=not args.no_progress)
    pngs = sum(p.suffix == '.png' for p in result.files)
    print(f'{len(result.paths)} image(s) x {len(methods)} method(s) -> {pngs} PNG(s) in {args.out}')
    return 0


if __name__ == '__main__':
    run_cli(main)
