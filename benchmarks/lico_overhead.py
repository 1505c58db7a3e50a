"""LICO's training overhead, measured side by side in one run.

Prints two ratios over interleaved repetitions (so background load hits both sides alike), from wall-clock medians,
process CPU-time medians (all our threads) and wall-clock minima (the least disturbed repetition; the most robust
figure on a shared machine), plus the same ratios in FLOPs (``torch.utils.flop_counter``: machine-independent).
On a machine shared with other jobs, ``--threads 1`` gives far steadier timings than 2 threads competing for 2 cores.

1. LICO training step / baseline training step: the same backbone, batch and optimizer; LICO adds the text branch
   and both alignment heads of a preset (target <= 1.15 at the CUB recipe: ResNet-50, 448 px, batch 8, 200 classes).
2. Our text branch / a naive text branch (forward + backward): ours encodes only the classes present in the batch,
   truncated to the longest of their prompts, with the start token + shared context computed once (causal CLIP) when
   the layout has one (``--class-position end``; the lico_paper preset puts the class name first, so that every OT
   text point depends on the class, and shares nothing); the naive one encodes every class's every prompt variant at
   the full 77 tokens (target <= 0.2).

Weights are random (CLIP's text tower is built with ``pretrained=None``): timing does not depend on their values.

Usage:
    python benchmarks/lico_overhead.py                                  # CUB recipe, lico_paper preset
    python benchmarks/lico_overhead.py --preset official_code --naive-classes 20
    python benchmarks/lico_overhead.py --class-position end     # the released code's layout (shared prefix)
    python benchmarks/lico_overhead.py --backbone resnet18 --img-size 224 --batch 16 --reps 3   # quicker
"""
from __future__ import annotations

import argparse
import copy
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmengine.config import Config  # noqa: E402

from registry import MODELS  # noqa: E402
from zoo.models.text.base import PromptBatch, TextFeatures  # noqa: E402
from zoo.structures import DataSample  # noqa: E402

# real CUB-200 names (cycled to --classes): prompt lengths like the recipe's
CUB_NAMES = ['Black footed Albatross', 'Laysan Albatross', 'Sooty Albatross', 'Groove billed Ani',
             'Crested Auklet', 'Least Auklet', 'Parakeet Auklet', 'Rhinoceros Auklet', 'Brewer Blackbird',
             'Red winged Blackbird', 'Rusty Blackbird', 'Yellow headed Blackbird', 'Bobolink', 'Indigo Bunting',
             'Lazuli Bunting', 'Painted Bunting', 'Cardinal', 'Spotted Catbird', 'Gray Catbird',
             'Yellow breasted Chat', 'Eastern Towhee', 'Chuck will Widow', 'Brandt Cormorant',
             'Red faced Cormorant', 'Pelagic Cormorant', 'Bronzed Cowbird', 'Shiny Cowbird', 'Brown Creeper',
             'American Crow', 'Fish Crow', 'Black billed Cuckoo', 'Mangrove Cuckoo', 'Yellow billed Cuckoo',
             'Gray crowned Rosy Finch', 'Purple Finch', 'Northern Flicker', 'Acadian Flycatcher',
             'Great Crested Flycatcher', 'Least Flycatcher', 'Olive sided Flycatcher']


def _timed(fn: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def count_flops(fn: Callable[[], None]) -> float:
    """GFLOPs of ``fn()`` (matmuls and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def build_models(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module, list[str]]:
    preset = Config.fromfile(str(ROOT / 'configs' / '_base_' / 'models' / f'lico_{args.preset}.py'))
    names = (Path(args.class_names).read_text().split('\n') if args.class_names else
             [CUB_NAMES[i % len(CUB_NAMES)] for i in range(args.classes)])
    names = [n.split(' ', 1)[-1].split('.', 1)[-1].replace('_', ' ') for n in names if n.strip()][:args.classes]
    base_cfg = dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name=args.backbone),
                    head=dict(type='LinearClsHead', num_classes=len(names)), class_names=names)
    torch.manual_seed(0)
    baseline = MODELS.build(copy.deepcopy(base_cfg))
    text_branch = copy.deepcopy(preset.lico_text_branch.to_dict())
    text_branch['encoder'].update(pretrained=None, model_name=args.text_model)
    if args.class_position:
        text_branch['prompt'].update(class_position=args.class_position)
    with torch.no_grad():
        probe = baseline.eval().backbone(torch.zeros(1, 3, args.img_size, args.img_size))
    spatial = int(probe.feature_map[0, 0].numel())
    lico = MODELS.build(dict(base_cfg, text_branch=text_branch,
                             alignment_heads=[h.to_dict() for h in preset.lico_alignment_heads],
                             alignment_defaults=dict(spatial_size=spatial)))
    lico.load_state_dict(baseline.state_dict(), strict=False)  # identical backbone and head
    return baseline, lico, names


def naive_text(branch: torch.nn.Module, labels: torch.Tensor, classes: torch.Tensor) -> TextFeatures:
    """What a straightforward CoOp-style branch does: every class (of ``classes``), full-length prompts."""
    enc = branch.encoder
    prompts = branch.prompt(enc, branch._name_ids, branch._suffix_ids, classes)
    pad = enc.context_length - prompts.ids.shape[1]
    ids = F.pad(prompts.ids, (0, pad), value=enc.pad_id)
    tail = enc.embed_ids(ids[:, prompts.ids.shape[1]:])[None].expand(prompts.embeds.shape[0], -1, -1, -1)
    share, enc.share_prefix = enc.share_prefix, False
    try:
        feats = enc.encode(PromptBatch(torch.cat([prompts.embeds, tail], dim=2), ids, prompts.eot, 0))
    finally:
        enc.share_prefix = share
    return feats.index(labels % len(classes))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--preset', default='paper', choices=['paper', 'official_code'])
    p.add_argument('--backbone', default='resnet50')
    p.add_argument('--img-size', type=int, default=448)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--classes', type=int, default=200)
    p.add_argument('--class-names', default=None, help="a CUB classes.txt ('1 001.Black_footed_Albatross' lines)")
    p.add_argument('--text-model', default='ViT-B-32')
    p.add_argument('--class-position', default=None, choices=['front', 'middle', 'end'],
                   help="where the class name sits in the prompt (default: the preset's)")
    p.add_argument('--reps', type=int, default=5, help='timed repetitions of each side (after 1 warm-up)')
    p.add_argument('--naive-classes', type=int, default=None,
                   help='time the naive branch on this many classes and scale linearly to --classes')
    p.add_argument('--naive-chunk', type=int, default=25, help='classes per naive forward/backward (memory)')
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    baseline, lico, names = build_models(args)
    baseline.train()
    lico.train()
    # lr 0: the optimiser still runs, but random-init weights cannot drift into denormal/inf territory and skew timing
    opt_base = torch.optim.SGD(baseline.parameters(), lr=0.0, momentum=0.9)
    opt_lico = torch.optim.SGD([q for q in lico.parameters() if q.requires_grad], lr=0.0, momentum=0.9)
    gen = torch.Generator().manual_seed(0)

    def batch() -> tuple[torch.Tensor, list[DataSample]]:
        x = torch.randn(args.batch, 3, args.img_size, args.img_size, generator=gen)
        labels = torch.randint(0, len(names), (args.batch,), generator=gen)
        return x, [DataSample().set_gt_label(int(y)) for y in labels]

    def step(model: torch.nn.Module, opt: torch.optim.Optimizer, data) -> None:
        opt.zero_grad(set_to_none=True)
        sum(model.loss(*data).values()).backward()
        opt.step()

    branch = lico.text_branch
    n_naive = min(args.naive_classes or len(names), len(names))

    def ours(labels: torch.Tensor) -> None:
        out = branch(labels)
        if out.sentence.requires_grad:
            (out.sentence.sum() + out.tokens.sum()).backward()

    def naive_part(labels: torch.Tensor, classes: torch.Tensor) -> None:
        out = naive_text(branch, labels, classes)
        if out.sentence.requires_grad:
            (out.sentence.sum() + out.tokens.sum()).backward()

    def naive(labels: torch.Tensor) -> None:
        for start in range(0, n_naive, args.naive_chunk):
            naive_part(labels, torch.arange(start, min(start + args.naive_chunk, n_naive)))

    data = batch()
    labels = torch.stack([s.gt_label for s in data[1]])
    chunk = min(args.naive_chunk, len(names))
    flops = {'base': count_flops(functools.partial(step, baseline, opt_base, data)),
             'lico': count_flops(functools.partial(step, lico, opt_lico, data)),
             'ours': count_flops(functools.partial(ours, labels)),
             'naive': count_flops(functools.partial(naive_part, labels, torch.arange(chunk))) * len(names) / chunk}
    branch.zero_grad(set_to_none=True)
    times: dict[str, list[tuple[float, float]]] = {'base': [], 'lico': [], 'ours': [], 'naive': []}
    for rep in range(args.reps + 1):
        data = batch()
        labels = torch.stack([s.gt_label for s in data[1]])
        if rep % 2:  # alternate the order, so that neither side always runs second
            t_base = _timed(functools.partial(step, baseline, opt_base, data))
            t_lico = _timed(functools.partial(step, lico, opt_lico, data))
        else:
            t_lico = _timed(functools.partial(step, lico, opt_lico, data))
            t_base = _timed(functools.partial(step, baseline, opt_base, data))
        t_ours = _timed(functools.partial(ours, labels))
        t_naive = _timed(functools.partial(naive, labels)) if rep in (1, args.reps) else None
        branch.zero_grad(set_to_none=True)
        line = (f'baseline {t_base[0]:.2f} s  LICO {t_lico[0]:.2f} s  ours {t_ours[0]:.3f} s'
                + (f'  naive {t_naive[0]:.1f} s' if t_naive is not None else '') + '  (wall)')
        print(('warm-up: ' if rep == 0 else f'rep {rep}: ') + line, flush=True)
        if rep:
            for k, v in (('base', t_base), ('lico', t_lico), ('ours', t_ours), ('naive', t_naive)):
                if v is not None:
                    times[k].append(v)

    def med(key: str, i: int) -> float:
        return statistics.median(t[i] for t in times[key]) if i < 2 else min(t[0] for t in times[key])

    scale = len(names) / n_naive
    enc = branch.encoder
    print(f'\nsetting: {args.backbone} {args.img_size}px batch {args.batch}, {len(names)} classes, preset '
          f"lico_{args.preset} (encoder {'frozen' if enc.frozen else 'trainable'}, {type(branch.prompt).__name__} "
          f'n_ctx {branch.prompt.n_ctx} x {branch.n_variants} variants, class name {branch.prompt.class_position}), '
          f'{args.threads} threads, '
          f'{args.reps} interleaved reps (naive: {len(times["naive"])})')
    for i, kind in ((0, 'wall median'), (1, 'CPU-time median'), (2, 'wall min')):
        base, lico_t, our, nai = med('base', i), med('lico', i), med('ours', i), med('naive', i) * scale
        print(f'[{kind}] baseline step {base:.3f} s | LICO step {lico_t:.3f} s | LICO / baseline = '
              f'{lico_t / base:.3f} (target <= 1.15) || text branch fwd+bwd: ours {our:.3f} s | naive {nai:.2f} s '
              f'| ours / naive = {our / nai:.4f} (target <= 0.2)')
    print(f"[GFLOPs] baseline step {flops['base']:.1f} | LICO step {flops['lico']:.1f} | LICO / baseline = "
          f"{flops['lico'] / flops['base']:.3f} || text branch: ours {flops['ours']:.2f} | naive {flops['naive']:.1f} "
          f"| ours / naive = {flops['ours'] / flops['naive']:.4f}")
    scaled = '' if n_naive == len(names) else f'; naive timed on {n_naive} classes and scaled x{scale:g}'
    print(f'naive = {len(names)} classes x {branch.n_variants} variants x {enc.context_length} tokens, no prefix '
          f'sharing{scaled}')


if __name__ == '__main__':
    main()
