#!/usr/bin/env python
"""Explaining Prototypes (Nauta et al.): how much hue, shape, texture, contrast, saturation and brightness matter to
each prototype of a trained ProtoPNet.

    python tools/explain_prototypes.py CONFIG CHECKPOINT [--split train|test] [--subset N] [--out-dir DIR]
        [--batch-size N] [--modifications contrast,hue,...] [--local-top-k K] [--chart-prototypes N]
        [--contrast 0.45] [--saturation 0.7] [--hue 0.1] [--brightness 0.8] [--texture-h 4]
        [--shape-amplitude 4] [--shape-frequency 0.05] [--device cpu] [--cfg-options KEY=VALUE ...]

Writes local_scores.csv (Δ = sim(x) − sim(x_mod) at the original image's nearest patch, per image, prototype and
modification), global_scores.csv (similarity-weighted mean of Δ per prototype and modification), summary.json /
summary.md (mean global score per modification) and prototype_scores.png / modification_scores.png into --out-dir
(default: <checkpoint folder>/explain_prototypes_<split>). The paper's settings are the defaults.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.cli import add_cfg_options, run_cli  # noqa: E402

SETTINGS = {'contrast': 'contrast factor', 'saturation': 'saturation factor', 'hue': 'hue shift (fraction of the '
            'circle)', 'brightness': 'brightness factor', 'texture_h': 'non-local-means strength (0-255 scale)',
            'shape_amplitude': 'sine-warp amplitude A (pixels)', 'shape_frequency': 'sine-warp frequency w'}


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(',') if t.strip()]
    if not names:
        raise ValueError('an empty list')
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='the ProtoPNet training config')
    p.add_argument('checkpoint', help='a checkpoint saved after a push stage (.pth or .safetensors)')
    p.add_argument('--split', choices=['train', 'test'], default='train',
                   help='score the training images (the push data, test pipeline; the paper\'s global scores) or the '
                        'test images (default: train)')
    p.add_argument('--subset', type=int, default=None, metavar='N', help='a seeded random choice of N images')
    p.add_argument('--seed', type=int, default=0, help='seed of --subset (default 0)')
    p.add_argument('--out-dir', default=None, help='output folder (default: <checkpoint folder>/'
                   'explain_prototypes_<split>)')
    p.add_argument('--batch-size', type=int, default=None, help='images per batch (default: the dataloader\'s)')
    p.add_argument('--modifications', type=_names, default=None,
                   help='comma-separated subset of contrast,saturation,hue,shape,texture,brightness (default: all)')
    p.add_argument('--local-top-k', type=int, default=None, metavar='K',
                   help='local scores of the K prototypes most similar to each image only (default: all)')
    p.add_argument('--chart-prototypes', type=int, default=8, metavar='N',
                   help='prototypes in prototype_scores.png: the N with the largest total similarity (default 8)')
    for key, text in SETTINGS.items():
        p.add_argument('--' + key.replace('_', '-'), type=float, default=None, dest=key,
                       help=f'{text} (default: the paper\'s)')
    p.add_argument('--device', default='cpu', help='cpu or cuda[:N] (default cpu)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_cfg_options(p)
    args = p.parse_args(argv)
    for key in ('subset', 'batch_size', 'local_top_k'):
        value = getattr(args, key)
        if value is not None and value < 1:
            p.error(f'--{key.replace("_", "-")} must be a positive integer')
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from zoo.apis.prototypes import explain_prototypes

    settings = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    res = explain_prototypes(args.config, args.checkpoint, out_dir=args.out_dir, split=args.split,
                             subset=args.subset, seed=args.seed, batch_size=args.batch_size,
                             modifications=args.modifications, settings=settings, local_top_k=args.local_top_k,
                             chart_prototypes=args.chart_prototypes, device=args.device,
                             cfg_options=args.cfg_options, progress=not args.no_progress)
    with open(res.files['summary_md'], encoding='utf-8') as fh:
        print(fh.read().strip())
    for kind, path in res.files.items():
        print(f'{kind:>18}: {path}')


if __name__ == '__main__':
    run_cli(main)
