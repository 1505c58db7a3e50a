#!/usr/bin/env python
"""The demo's explanation step: forward passes, their rate, and that rate ÷ the model's full-batch rate.

    python benchmarks/explain_step.py [--config configs/efficientnetlite0_baseline_clutteredfmnist.py]
        [--num-samples 1000] [--subset 32] [--test-batch 64] [--threads N] [--repeats 1]

What ``make demo`` asks of every model after its accuracy test: Grad-CAM maps of ``--subset`` seeded test images,
scored with insertion and deletion (2,048 px per step on 128 px: 9 evaluations each) and the pointing game (no
forward pass). ``ExplanationQuality`` sees the test set batch by batch (``--test-batch``, as the test loop hands
it over; the accuracy forward itself is left out here) and runs twice on the same pre-rendered batches:

* ``per test batch`` (``batch_size=None``): each test batch's few chosen images are explained as the batch passes
  (what the evaluator did before it collected samples: a 32-of-1,000 subset leaves ~2 images per batch of 64);
* ``collected`` (``batch_size=32``, the default): chosen images are collected and explained 32 at a time.

A forward hook on the model counts the images it sees (with and without gradient). The script prints both sides'
forwards, seconds and forwards/s, the ratio collected ÷ per test batch (wall time), and each side's forwards/s ÷
the bare model's forward rate at ``--test-batch`` (1.0 = the explanation costs what its forward passes cost in the
test loop). Both sides' numbers are checked equal. On a shared machine, run it with ``--repeats 2`` (the order of
the two sides alternates) and read the ratio, not the absolute figures.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from zoo.apis.demo import DEMO_EXPLAIN  # noqa: E402


class ForwardCounter:
    """Counts the images the model's top-level forward sees, with and without gradient."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.images = self.with_grad = self.calls = 0
        self.handle = model.register_forward_hook(self)

    def __call__(self, _module: Any, args: Any, _output: Any) -> None:
        n = int(args[0].shape[0]) if args and isinstance(args[0], torch.Tensor) else 0
        self.images += n
        self.calls += 1
        self.with_grad += n if torch.is_grad_enabled() else 0


def run_side(model: torch.nn.Module, batches: list[dict], n_total: int, subset: int, batch_size: int | None
             ) -> tuple[dict[str, float], dict[str, int], float]:
    from zoo.metrics import ExplanationQuality

    q = ExplanationQuality(explainers=DEMO_EXPLAIN['explainers'], metrics=DEMO_EXPLAIN['explain_metrics'],
                           subset=subset, progress=False, batch_size=batch_size, num_examples=0)
    q.attach(model, dataset_len=n_total)
    counter = ForwardCounter(model)
    start = time.perf_counter()
    try:
        for batch in batches:
            q.process(batch, batch['data_samples'])
        out = q.evaluate(n_total)
    finally:
        counter.handle.remove()
    seconds = time.perf_counter() - start
    return out, dict(images=counter.images, with_grad=counter.with_grad, calls=counter.calls), seconds


def bare_rate(model: torch.nn.Module, images: torch.Tensor, seconds: float = 5.0) -> float:
    """Images per second of ``model(images)`` in eval mode without gradient (best of two timed rounds)."""
    best = 0.0
    with torch.no_grad():
        model(images)
        for _ in range(2):
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds / 2:
                model(images)
                n += images.shape[0]
            best = max(best, n / (time.perf_counter() - start))
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', default='configs/efficientnetlite0_baseline_clutteredfmnist.py')
    p.add_argument('--num-samples', type=int, default=1000, help='test images the loop passes (default 1000)')
    p.add_argument('--subset', type=int, default=DEMO_EXPLAIN['explain_subset'], help='images explained')
    p.add_argument('--test-batch', type=int, default=64, help='test batch size (the demo config: 64)')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--repeats', type=int, default=1)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import zoo.metrics  # noqa: F401  (registers the metrics)
    from registry import DATASETS, MODELS
    from zoo.apis.config import load_config

    cfg = load_config(args.config)
    model_cfg = cfg.model
    weights = model_cfg.backbone.get('pretrained')
    if isinstance(weights, str) and not os.path.isfile(weights):
        model_cfg.backbone.pretrained = False  # the cost of a forward pass does not depend on the weights
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).eval()
    ds_cfg = dict(cfg.test_dataloader.dataset, num_samples=args.num_samples)
    dataset = DATASETS.build(ds_cfg)
    items = [dataset[i] for i in range(len(dataset))]
    batches = [dict(inputs=[d['inputs'] for d in items[s:s + args.test_batch]],
                    data_samples=[d['data_samples'] for d in items[s:s + args.test_batch]])
               for s in range(0, len(items), args.test_batch)]
    first = model.data_preprocessor(batches[0], False)['inputs']
    print(f'{args.config}: {len(items)} test images of {tuple(first.shape[1:])} in batches of {args.test_batch}; '
          f'{args.subset} explained; {torch.get_num_threads()} threads')
    rate = bare_rate(model, first)
    print(f'bare forward at batch {first.shape[0]}: {rate:.1f} images/s')
    sides = {'per test batch': None, 'collected': 32}
    totals: dict[str, list[float]] = {k: [] for k in sides}
    results: dict[str, dict] = {}
    for rep in range(args.repeats):
        order = list(sides) if rep % 2 == 0 else list(reversed(sides))
        for label in order:
            out, count, seconds = run_side(model, batches, len(items), args.subset, sides[label])
            totals[label].append(seconds)
            results[label] = out
            fps = count['images'] / seconds
            print(f'{label:>15}: {count["images"]} forward images in {count["calls"]} calls ({count["with_grad"]} '
                  f'with gradient), {seconds:.1f} s = {fps:.1f} forwards/s = {fps / rate:.2f} x the bare rate')
    a, b = results['per test batch'], results['collected']
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-4 for k in a), (a, b)
    ratio = sum(totals['collected']) / sum(totals['per test batch'])
    print(f'collected / per test batch (wall time): {ratio:.2f}  (same numbers: {", ".join(sorted(a))})')


if __name__ == '__main__':
    main()
