#!/usr/bin/env python
"""Compare training configs over seeds, or explainers of one model, with paired confidence intervals.

    # configs: each trained once per seed, tested on the same images, B - A paired by seed and image
    python tools/compare.py CONFIG_A CONFIG_B [...] --seeds 5 --out DIR [--labels a,b] [--cfg-options KEY=VALUE ...]
        [--explainers gradcam [--explain-metrics insertion,deletion,pointing_game] [--explain-subset N]]
        [--ci crossed|bootstrap] [--level 0.95] [--reference LABEL | --all-pairs] [--independent-seeds]
        [--dry-run [--no-probe]]

    # explainers of one model (several --model: checkpoints of one recipe, e.g. one per seed)
    python tools/compare.py --model CONFIG CHECKPOINT [--model CONFIG CHECKPOINT ...]
        --explainers gradcam,scorecam --explain-metrics insertion,deletion --out DIR

Finished runs in DIR are reused and a killed comparison resumes where it stopped: run the same command again.
Writes DIR/report.md, DIR/report.json, DIR/forest.png, DIR/compare.log and one folder per run under DIR/runs/
(checkpoints, per_image.json, console.log). See docs/comparisons.md.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.cli import add_cfg_options, run_cli  # noqa: E402


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(',') if t.strip()]
    if not names:
        raise ValueError('an empty list')
    return names


def _seeds(text: str) -> int | list[int]:
    if ',' in text:
        return [int(t) for t in _names(text)]
    n = int(text)
    if n < 1:
        raise ValueError('at least one seed')
    return n


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    p.add_argument('configs', nargs='*', help='config files to compare (the first is the reference A)')
    p.add_argument('--model', nargs=2, action='append', metavar=('CONFIG', 'CHECKPOINT'),
                   help='compare explainers on this trained model instead of training configs (repeatable: '
                        'checkpoints of one recipe, e.g. one per seed)')
    p.add_argument('--out', required=True, help='output folder (runs, report.md, report.json, forest.png)')
    p.add_argument('--seeds', type=_seeds, default=5, metavar='N|S1,S2,...',
                   help='seeds per config: a count (0..N-1) or a comma-separated list (default 5)')
    p.add_argument('--labels', type=_names, help='comma-separated names of the configs in the report '
                   '(default: file names)')
    add_cfg_options(p)
    x = p.add_argument_group('explanation quality')
    x.add_argument('--explainers', type=_names, help='comma-separated explainers, e.g. gradcam,scorecam')
    x.add_argument('--explain-metrics', type=_names, help='comma-separated explanation metrics (default: '
                   'insertion,deletion,pointing_game)')
    x.add_argument('--explain-subset', type=int, metavar='N', help='explain N test images (a seeded random choice, '
                   'the same for every run); default: all')
    s = p.add_argument_group('statistics')
    s.add_argument('--ci', choices=['crossed', 'bootstrap'], default='crossed',
                   help='interval method (default crossed: seeds x images random-effects t interval)')
    s.add_argument('--level', type=float, default=0.95, help='confidence level (default 0.95)')
    s.add_argument('--bootstrap-samples', type=int, default=4000, help='resamples for --ci bootstrap')
    s.add_argument('--reference', help='the arm every other is compared with (default: the first)')
    s.add_argument('--all-pairs', action='store_true', help='report every pair, not only differences to the '
                   'reference')
    s.add_argument('--independent-seeds', action='store_true',
                   help='do not share seeds across configs (config k trains with seed + 1000 k)')
    r = p.add_argument_group('running')
    r.add_argument('--dry-run', action='store_true', help='print the plan (runs, state, estimated time) and stop')
    r.add_argument('--no-probe', action='store_true', help='with --dry-run: do not time a few training steps to '
                   'estimate configs that have no finished run')
    r.add_argument('--no-progress', action='store_true', help='no progress bar')
    args = p.parse_args(argv)
    if args.model and args.configs:
        p.error('give configs to train, or --model CONFIG CHECKPOINT to compare explainers, not both')
    if not args.model and not args.configs:
        p.error('give at least one config (or --model CONFIG CHECKPOINT with --explainers)')
    if args.model and not args.explainers:
        p.error('--model compares explainers: add --explainers, e.g. --explainers gradcam,scorecam')
    if args.explain_metrics and not args.explainers:
        p.error('--explain-metrics needs --explainers (e.g. --explainers gradcam)')
    if args.explain_subset is not None and args.explain_subset < 1:
        p.error('--explain-subset must be a positive number of images')
    if args.model and args.labels:
        p.error('--labels names configs; explainers are named by their alias or label')
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from zoo.apis.compare import Plan, compare, compare_explainers

    common = dict(out=args.out, cfg_options=args.cfg_options, explain_metrics=args.explain_metrics,
                  explain_subset=args.explain_subset, method=args.ci, level=args.level,
                  reference=args.reference, pairs='all' if args.all_pairs else 'reference',
                  bootstrap_samples=args.bootstrap_samples, dry_run=args.dry_run, progress=not args.no_progress)
    if args.model:
        res = compare_explainers([tuple(m) for m in args.model], args.explainers, **common)
    else:
        res = compare(args.configs, seeds=args.seeds, labels=args.labels, explainers=args.explainers,
                      independent_seeds=args.independent_seeds, probe=not args.no_probe, **common)
    if isinstance(res, Plan):
        print(res.text())
        return
    print('\n' + res.table() + '\n')
    print(res.report['method']['statement'])
    for kind, path in res.files.items():
        print(f'{kind:>9}: {path}')


if __name__ == '__main__':
    run_cli(main)
