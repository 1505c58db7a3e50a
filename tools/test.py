#!/usr/bin/env python
"""Evaluate a checkpoint on a config's test set (top-1/top-5 accuracy, and optionally explanation quality).

    python tools/test.py CONFIG CHECKPOINT|none [--work-dir DIR] [--out FILE.json] [--per-image FILE.json]
        [--cfg-options KEY=VALUE ...]
        [--launcher none|pytorch] [--verbose]
        [--explainers gradcam,eigencam [--explain-metrics insertion,deletion,pointing_game]
         [--explain-subset N] [--explain-dir DIR]]

With --explainers, every explainer's maps are scored with every explanation metric over the test set (or a seeded
random subset of N samples); results.json (every number with its conventions), results.md, curves.png and
examples_<explainer>.png go to --explain-dir (default: <work-dir>/explain). The console shows progress bars; the full
mmengine log is in <work-dir>/<timestamp>/<timestamp>.log (--verbose prints it too).
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.cli import add_cfg_options, run_cli  # noqa: E402


def parse_args(argv: list[str] | None = None):
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help="checkpoint (.pth from training, or .safetensors weights); 'none' evaluates "
                   "the model as the config builds it (zero-shot image-text models: weights from 'pretrained')")
    p.add_argument('--work-dir', help='where logs go (default: ./work_dirs/<config name>)')
    p.add_argument('--out', help='write the metrics to this JSON file')
    p.add_argument('--per-image', metavar='FILE.json', help='write every metric\'s per-image values to this JSON file')
    add_cfg_options(p)
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                   help='job launcher: "pytorch" under torchrun')
    p.add_argument('--verbose', action='store_true', help="mmengine's full console output instead of progress bars")
    p.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    x = p.add_argument_group('explanation quality')
    x.add_argument('--explainers', type=_names, help='comma-separated explainers, e.g. gradcam,eigencam '
                   '(aliases such as gradcam, gradcam++, eigencam, scorecam, ablationcam, fullgrad, ig, rise: all in '
                   'docs/explainers.md)')
    x.add_argument('--explain-metrics', type=_names, default=None,
                   help='comma-separated explanation metrics (default: insertion,deletion,pointing_game; also '
                        'average_drop, increase_in_confidence, energy_pointing_game, road, mask_coverage)')
    x.add_argument('--explain-subset', type=int, default=None, metavar='N',
                   help='explain only N test samples (a seeded random choice); default: all')
    x.add_argument('--explain-dir', default=None, help='where results.json, results.md and PNGs go '
                   '(default: <work-dir>/explain)')
    args = p.parse_args(argv)
    if args.explain_metrics and not args.explainers:
        p.error('--explain-metrics needs --explainers (e.g. --explainers gradcam)')
    if args.explain_subset is not None and args.explain_subset < 1:
        p.error('--explain-subset must be a positive number of samples')
    return args


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(',') if t.strip()]
    if not names:
        raise ValueError('an empty list')
    return names


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    from zoo.apis.testing import test

    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    metrics = test(args.config, checkpoint, work_dir=args.work_dir, out=args.out,
                   cfg_options=args.cfg_options, launcher=args.launcher, explainers=args.explainers,
                   explain_metrics=args.explain_metrics, explain_subset=args.explain_subset,
                   explain_dir=args.explain_dir, per_image=args.per_image,
                   verbose=args.verbose)
    from mmengine.dist import is_main_process

    if not is_main_process():
        return
    from zoo.apis import last_log_file

    print(json.dumps(metrics, indent=2))
    print(f'Full log: {last_log_file()}')
    if args.out:
        print(f'Metrics written to {args.out}')
    if args.explainers:
        from zoo.apis.testing import last_explanation_files

        files = last_explanation_files()
        if files.get('markdown') and os.path.isfile(files['markdown']):
            with open(files['markdown'], encoding='utf-8') as fh:
                print('\n' + fh.read().split('\n## ')[0].strip())
        for kind, path in files.items():
            print(f'{kind:>18}: {path}')


if __name__ == '__main__':
    run_cli(main)
