"""``make demo``: train and test the demo models on ClutteredFashionMNIST and print the results side by side.

Each entry of :data:`DEMO_RUNS` is trained with its config, tested on the 1,000-image test split, and its
checkpoint, log and metrics JSON are listed. Other features add their columns/rows by extending ``DEMO_RUNS``.

Example::

    from zoo.apis.demo import run_demo
    results = run_demo('work_dirs/demo')
"""
from __future__ import annotations

import os
import time
from typing import Any

DEMO_RUNS: list[tuple[str, str]] = [
    ('baseline', 'configs/efficientnetlite0_baseline_clutteredfmnist.py'),
    ('lico', 'configs/efficientnetlite0_lico_clutteredfmnist.py'),
]
"""(name, config) pairs trained on identical settings by the demo."""


def latest_checkpoint(work_dir: str) -> str:
    from mmengine.runner import find_latest_checkpoint

    from registry.errors import CheckpointError

    path = find_latest_checkpoint(work_dir)
    if not path:
        raise CheckpointError(f'Training wrote no checkpoint into {work_dir!r}.')
    return path


def run_one(name: str, config: str, work_root: str) -> dict[str, Any]:
    """Train ``config`` (no mid-training validation: the test below is the evaluation) and test it."""
    from .test import test
    from .train import train

    work_dir = os.path.join(work_root, name)
    start = time.time()
    runner = train(config, work_dir=work_dir, cfg_options=['val_dataloader=None', 'val_cfg=None', 'val_evaluator=None'])
    train_s = time.time() - start
    checkpoint = latest_checkpoint(work_dir)
    metrics_json = os.path.join(work_dir, 'metrics.json')
    metrics = test(config, checkpoint, work_dir=work_dir, out=metrics_json)
    return dict(name=name, config=config, checkpoint=checkpoint, metrics_json=metrics_json, metrics=metrics,
                log=os.path.join(runner.log_dir, f'{runner.timestamp}.log'), train_seconds=round(train_s, 1))


def format_table(results: list[dict[str, Any]]) -> str:
    """The side-by-side summary printed at the end of the demo."""
    keys = sorted({k for r in results for k in r['metrics']})
    head = f"{'model':<10}" + ''.join(f'{k:>18}' for k in keys) + f"{'train s':>10}"
    rows = [head, '-' * len(head)]
    for r in results:
        vals = ''.join(f"{r['metrics'].get(k, float('nan')):>18.2f}" for k in keys)
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
    for r in results:
        print(f"\n[{r['name']}] config:       {r['config']}\n[{r['name']}] checkpoint:   {r['checkpoint']}\n"
              f"[{r['name']}] log:          {r['log']}\n[{r['name']}] metrics JSON: {r['metrics_json']}")
    print(f'\nDemo finished in {time.time() - start:.0f} s.')
    return results
