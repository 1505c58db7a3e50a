"""``make demo``: train and test the demo models on ClutteredFashionMNIST and print the results side by side.

Each entry of :data:`DEMO_RUNS` is trained with its config, tested on the 1,000-image test split (accuracy) and
its Grad-CAM maps scored with insertion, deletion and the pointing game on a fixed seeded subset
(:data:`DEMO_EXPLAIN`); its checkpoint, log, metrics JSON and explanation report are listed. Other features add
their rows by extending ``DEMO_RUNS``.

Example::

    from zoo.apis.demo import run_demo
    results = run_demo('work_dirs/demo')
"""
from __future__ import annotations

import os
import time
from typing import Any

from zoo.core.checkpoints import latest_checkpoint

DEMO_RUNS: list[tuple[str, str]] = [
    ('baseline', 'configs/efficientnetlite0_baseline_clutteredfmnist.py'),
    ('lico', 'configs/efficientnetlite0_lico_clutteredfmnist.py'),
]
"""(name, config) pairs trained on identical settings by the demo."""

DEMO_EXPLAIN: dict[str, Any] = dict(
    explainers=['gradcam'],
    explain_metrics=[dict(type='Insertion', step=2048), dict(type='Deletion', step=2048),
                     dict(type='PointingGame', tolerance=15)],
    explain_subset=32,
)
"""Explanation quality every demo run reports: Grad-CAM insertion/deletion (RISE definitions, probability of the
predicted class, blur / zeros substrates, but 2,048 px = 1/8 of the 128-px image per step to keep the CPU demo
short) and pointing game (15 px, per-class mean), on the same 32 seeded test images for every run."""


def run_one(name: str, config: str, work_root: str) -> dict[str, Any]:
    """Train ``config`` (no mid-training validation: the test below is the evaluation) and test it."""
    from .testing import test
    from .training import train

    work_dir = os.path.join(work_root, name)
    start = time.time()
    runner = train(config, work_dir=work_dir, cfg_options=['val_dataloader=None', 'val_cfg=None', 'val_evaluator=None'])
    train_s = time.time() - start
    checkpoint = latest_checkpoint(work_dir)
    metrics_json = os.path.join(work_dir, 'metrics.json')
    start = time.time()
    explain_dir = os.path.join(work_dir, 'explain')
    metrics = test(config, checkpoint, work_dir=work_dir, out=metrics_json, explain_dir=explain_dir,
                   **DEMO_EXPLAIN)
    return dict(name=name, config=config, checkpoint=checkpoint, metrics_json=metrics_json, metrics=metrics,
                log=os.path.join(runner.log_dir, f'{runner.timestamp}.log'), train_seconds=round(train_s, 1),
                test_seconds=round(time.time() - start, 1), explain_dir=explain_dir)


_SHORT = {'insertion': 'ins ↑', 'deletion': 'del ↓', 'overall': 'ins-del ↑', 'pointing_game': 'PG ↑'}


def column_label(key: str) -> str:
    """``'accuracy/top1'`` → ``'top1 %'``; ``'explain/gradcam/insertion'`` → ``'gradcam ins ↑'``."""
    parts = key.split('/')
    if parts[0] == 'accuracy':
        return f'{parts[-1]} %'
    if parts[0] == 'explain' and len(parts) == 3:
        return f'{parts[1]} {_SHORT.get(parts[2], parts[2])}'
    return key


def _order(key: str) -> tuple:
    kind = key.split('/')[0]
    metric = key.split('/')[-1]
    rank = list(_SHORT).index(metric) if metric in _SHORT else len(_SHORT)
    return (kind != 'accuracy', key.split('/')[1] if kind == 'explain' else '', rank, key)


def format_table(results: list[dict[str, Any]]) -> str:
    """The side-by-side summary printed at the end of the demo."""
    keys = sorted({k for r in results for k in r['metrics']}, key=_order)
    width = max([14] + [len(column_label(k)) + 2 for k in keys])
    head = f"{'model':<10}" + ''.join(f'{column_label(k):>{width}}' for k in keys) + f"{'train s':>10}"
    rows = [head, '-' * len(head)]
    for r in results:
        vals = ''
        for k in keys:
            v = r['metrics'].get(k, float('nan'))
            vals += f'{v:>{width}.2f}' if k.startswith('accuracy/') else f'{v:>{width}.3f}'
        rows.append(f"{r['name']:<10}{vals}{r['train_seconds']:>10.1f}")
    return '\n'.join(rows)


def run_demo(work_root: str = 'work_dirs/demo', data_dir: str = 'data') -> list[dict[str, Any]]:
    """Get the assets, train and test every :data:`DEMO_RUNS` entry, print where everything is."""
    from .assets import prepare_assets

    assets = prepare_assets(data_dir)
    print(f"Fashion-MNIST: {assets['fashion_mnist']}  |  EfficientNet-Lite0 weights: {assets['lite0_weights']}")
    start = time.time()
    results = [run_one(name, config, work_root) for name, config in DEMO_RUNS]
    print('\n=== xzoo demo: ClutteredFashionMNIST, 10 classes (chance: top-1 10%), 1,000 test images ===')
    print(format_table(results))
    print(f"Grad-CAM columns: {DEMO_EXPLAIN['explain_subset']} seeded test images; insertion/deletion = RISE AUC of "
          'the predicted class probability (blur / zero substrate, 2,048 px per step); PG = pointing game, 15 px, '
          'per-class mean. Conventions in each explain/results.json.')
    for r in results:
        print(f"\n[{r['name']}] config:       {r['config']}\n[{r['name']}] checkpoint:   {r['checkpoint']}\n"
              f"[{r['name']}] log:          {r['log']}\n[{r['name']}] metrics JSON: {r['metrics_json']}\n"
              f"[{r['name']}] explanations: {r.get('explain_dir')}")
    print(f'\nDemo finished in {time.time() - start:.0f} s.')
    return results
