#!/usr/bin/env python
"""Draw Prompt-CAM's top traits: for each image, the image and the attention maps of its most important heads.

    python tools/explain_traits.py CONFIG CHECKPOINT IMAGES... --out DIR [--top-traits 4] [--target CLASS]
        [--size PX] [--device cpu] [--cfg-options KEY=VALUE ...]
    python tools/explain_traits.py --model local-dir:EXPORT_DIR IMAGES... --out DIR

IMAGES are image files and/or folders. Writes <stem>_traits.png per image and traits.json (per image: the class
explained, its probability, the heads ranked by greedy head blurring). Works for any model whose
explain(method='native') returns a figure-drawing Explanation (Prompt-CAM's PromptCAMViT).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.cli import add_cfg_options, run_cli  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='tools/explain_traits.py', description=__doc__.split('\n\n')[0])
    p.add_argument('inputs', nargs='+', help='CONFIG CHECKPOINT IMAGES... (or only IMAGES... with --model)')
    p.add_argument('--model', default=None, help="a zoo name, 'local-dir:DIR' or 'hf-hub:ORG/NAME' instead of "
                   'CONFIG CHECKPOINT')
    p.add_argument('--out', required=True, help='output folder for the PNGs and traits.json')
    p.add_argument('--top-traits', type=int, default=4, help='heads to draw per image (default 4)')
    p.add_argument('--target', default=None, help='class index or name (default: the predicted class)')
    p.add_argument('--size', type=int, nargs='+', default=None, metavar='PX',
                   help='resize + centre-crop to this size (one value or H W; default: the model preprocessing)')
    p.add_argument('--device', default='cpu', help="torch device, e.g. 'cpu' or 'cuda:0'")
    add_cfg_options(p)
    args = p.parse_args(argv)
    if args.model is None and len(args.inputs) < 3:
        p.error('give CONFIG CHECKPOINT IMAGES... (or --model NAME IMAGES...)')
    if args.top_traits < 1:
        p.error('--top-traits must be at least 1')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pathlib import Path

    from zoo.apis.explaining import find_images
    from zoo.core.fileio import write_json

    if args.model is not None:
        import zoo
        model, images = zoo.load(args.model, device=args.device), args.inputs
    else:
        from zoo.apis import init_model
        config, checkpoint, *images = args.inputs
        model = init_model(config, None if checkpoint.lower() == 'none' else checkpoint, device=args.device,
                           cfg_options=args.cfg_options or None)
    paths = find_images(images)
    size = None if args.size is None else (args.size[0] if len(args.size) == 1 else tuple(args.size[:2]))
    pixels = model.load_images([str(p) for p in paths], size=size)
    explanation = model.explain(pixels, method='native', targets=args.target, top_traits=args.top_traits)
    stems = [p.stem if [q.stem for q in paths].count(p.stem) == 1 else f'{p.stem}_{i}' for i, p in enumerate(paths)]
    out = Path(args.out)
    files = explanation.save_figures(out, stems, pixels, model.class_names)
    write_json(out / 'traits.json', [dict(file=str(p), **r) for p, r in zip(paths, explanation.records)])
    print(f'{len(paths)} image(s) -> {len(files)} PNG(s) and traits.json in {out}')
    return 0


if __name__ == '__main__':
    run_cli(main)
