#!/usr/bin/env python
"""L-CAM-Fm and L-CAM-Img against Grad-CAM, Grad-CAM++, Score-CAM and RISE on the embedded data: the table of
docs/lcam.md (AD / IC at 100 %, 50 %, 15 % of the map, insertion, deletion, pointing game, 95 % bootstrap CIs).

    python benchmarks/lcam_table.py run fm --subset 50        # L-CAM of the trained L-CAM-Fm checkpoint
    python benchmarks/lcam_table.py run img --subset 50       # L-CAM of the trained L-CAM-Img checkpoint
    python benchmarks/lcam_table.py run grad --subset 50      # Grad-CAM, Grad-CAM++ on the frozen classifier
    python benchmarks/lcam_table.py run perturb --subset 16   # Score-CAM, RISE (500 masks) on the frozen classifier
    python benchmarks/lcam_table.py table                     # the markdown table, from the four runs

The checkpoints are those ``tools/train.py CONFIG`` writes into its default work dir (``--checkpoint`` to
override): first the baseline, then the L-CAM recipes (see the recipes' headers). ``run`` is
``zoo.apis.testing.test`` (what ``tools/test.py`` runs) with the metric settings ``tools/test.py``'s
name-only flags cannot express: AD / IC with ``keep_top=[1.0, 0.5, 0.15]`` and insertion / deletion at 2048 pixels
per step (8 steps on 128×128 images). Each run writes ``<root>/<run>/metrics.json`` and ``explain/results.json``.
The explained samples are a seeded random choice (``randperm(len(test set))[:subset]``, seed 0), so a smaller
subset is contained in a larger one; ``table`` compares every method on the images all runs share, and the
methods of the larger runs again on the images those share. CIs: percentile bootstrap over images (10,000
resamples, seed 0); paired differences L-CAM-Img − method on the same resamples. The pointing game here is the
mean hit rate over images (results.json's aggregate is the mean over classes).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

LEVELS = [1.0, 0.5, 0.15]
METRICS = ['average_drop', 'increase_in_confidence', 'insertion', 'deletion', 'pointing_game']
ARROW = dict(average_drop='↓', increase_in_confidence='↑', insertion='↑', deletion='↓', pointing_game='↑')
BASELINE = 'configs/efficientnetlite0_baseline_clutteredfmnist.py'
RUNS = {  # run -> (config, explainers); the checkpoint: tools/train.py's default work dir of the config
    'fm': ('configs/efficientnetlite0_lcam-fm_clutteredfmnist.py', ['lcam']),
    'img': ('configs/efficientnetlite0_lcam-img_clutteredfmnist.py', ['lcam']),
    'grad': (BASELINE, ['gradcam', 'gradcamplusplus']),
    'perturb': (BASELINE, [dict(type='ScoreCAM', batch_size=64), dict(type='RISE', n_masks=500, batch_size=64)]),
}
METHODS = {  # table label -> (run, explainer key in results.json)
    'L-CAM-Fm': ('fm', 'lcam'), 'L-CAM-Img': ('img', 'lcam'), 'Grad-CAM': ('grad', 'gradcam'),
    'Grad-CAM++': ('grad', 'gradcamplusplus'), 'Score-CAM': ('perturb', 'scorecam'), 'RISE': ('perturb', 'rise')}


def run(name: str, subset: int, root: str, checkpoint: str | None) -> None:
    from zoo.apis.testing import test

    config, explainers = RUNS[name]
    if checkpoint is None:
        folder = os.path.join('work_dirs', os.path.splitext(os.path.basename(config))[0])
        with open(os.path.join(folder, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
    metrics = [dict(type='AverageDrop', keep_top=LEVELS), dict(type='IncreaseInConfidence', keep_top=LEVELS),
               dict(type='Insertion', step=2048), dict(type='Deletion', step=2048), 'pointing_game']
    work = os.path.join(root, name)
    out = test(config, checkpoint, work_dir=work, explainers=explainers, explain_metrics=metrics,
               explain_subset=subset, explain_dir=os.path.join(work, 'explain'),
               out=os.path.join(work, 'metrics.json'))
    print(json.dumps(out, indent=1))


def load(root: str) -> tuple[dict, dict, dict]:
    values, levels, accuracy = {}, {}, {}
    for label, (name, key) in METHODS.items():
        folder = os.path.join(root, name)
        if not os.path.exists(os.path.join(folder, 'explain', 'results.json')):
            print(f'({label}: no {folder}/explain/results.json yet, left out)')
            continue
        with open(os.path.join(folder, 'explain', 'results.json')) as f:
            res = json.load(f)
        idx = res['per_sample']['sample_idx']
        values[label] = {m: {i: np.nan if v is None else float(v)
                             for i, v in zip(idx, res['per_sample']['values'][key][m])} for m in METRICS}
        levels[label] = {m: (res['results'][key][m]['mean_curve'], res['results'][key][m]['n'])
                         for m in ('average_drop', 'increase_in_confidence')}
        with open(os.path.join(folder, 'metrics.json')) as f:
            accuracy[name] = json.load(f)['metrics']
    return values, levels, accuracy


def bootstrap(x: np.ndarray, draws: np.ndarray) -> tuple[float, float, float]:
    means = np.nanmean(x[draws], axis=1)
    lo, hi = np.nanpercentile(means, [2.5, 97.5])
    return float(np.nanmean(x)), float(lo), float(hi)


def table(values: dict, labels: list[str]) -> list[str]:
    common = sorted(set.intersection(*(set(values[label]['average_drop']) for label in labels)))
    n = len(common)
    draws = np.random.default_rng(0).integers(0, n, (10000, n))
    arr = {label: {m: np.array([values[label][m][i] for i in common]) for m in METRICS} for label in labels}
    lines = [f'{n} images, the same for every method (mean [95 % CI]):', '',
             '| method | AD 100 % ↓ | IC 100 % ↑ | insertion ↑ | deletion ↓ | pointing game ↑ |',
             '|---|---|---|---|---|---|']
    for label in labels:
        cells = []
        for m in METRICS:
            fmt = '{:.1f}' if m in ('average_drop', 'increase_in_confidence') else '{:.3f}'
            mean, lo, hi = bootstrap(arr[label][m], draws)
            cells.append(f'{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]')
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    if 'L-CAM-Img' in labels:
        lines += ['', 'Paired differences L-CAM-Img − method (mean [95 % CI]; AD, deletion: < 0 favours L-CAM-Img; '
                  'IC, insertion, pointing game: > 0 does):', '',
                  '| vs | ' + ' | '.join(f'{m} {ARROW[m]}' for m in METRICS) + ' |', '|---|' + '---|' * len(METRICS)]
        for other in labels:
            if other != 'L-CAM-Img':
                cells = ['{:+.3f} [{:+.3f}, {:+.3f}]'.format(*bootstrap(arr['L-CAM-Img'][m] - arr[other][m], draws))
                         for m in METRICS]
                lines.append(f'| {other} | ' + ' | '.join(cells) + ' |')
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('run', help='evaluate one run')
    p.add_argument('name', choices=sorted(RUNS))
    p.add_argument('--subset', type=int, default=50, help='explained test images (default 50)')
    p.add_argument('--root', default='work_dirs/lcam_eval', help='results folder (default work_dirs/lcam_eval)')
    p.add_argument('--checkpoint', help="default: the newest checkpoint of the config's default work dir, e.g. "
                   'work_dirs/efficientnetlite0_lcam-fm_clutteredfmnist/ (what tools/train.py CONFIG writes)')
    p = sub.add_parser('table', help='the markdown table from the runs under --root')
    p.add_argument('--root', default='work_dirs/lcam_eval')
    args = parser.parse_args()
    if args.command == 'run':
        run(args.name, args.subset, args.root, args.checkpoint)
        return
    values, levels, accuracy = load(args.root)
    if not values:
        sys.exit(f'No results under {args.root}: run `python benchmarks/lcam_table.py run NAME` first.')
    labels = list(values)
    print('\n'.join(table(values, labels)))
    sizes = {label: len(values[label]['average_drop']) for label in labels}
    larger = [label for label in labels if sizes[label] > min(sizes.values())]
    if len(larger) > 1:
        print('\n' + '\n'.join(table(values, larger)))
    print('\nAD / IC (%) with the map cut to its top 100 % / 50 % / 15 % (means over each run\'s images):\n')
    print('| method | images | AD 100 / 50 / 15 % ↓ | IC 100 / 50 / 15 % ↑ |\n|---|---|---|---|')
    for label in labels:
        (ad, n), (ic, _) = levels[label]['average_drop'], levels[label]['increase_in_confidence']
        print(f'| {label} | {n} | ' + ' / '.join(f'{v:.1f}' for v in ad) + ' | '
              + ' / '.join(f'{v:.1f}' for v in ic) + ' |')
    print('\nExplained model (test set):')
    for name, acc in accuracy.items():
        print(f"  {name}: top-1 {acc['accuracy/top1']:.1f} %, top-5 {acc['accuracy/top5']:.1f} %")


if __name__ == '__main__':
    main()
