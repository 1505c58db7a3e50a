"""Ours ÷ pytorch-grad-cam wall time for GradCAM and ScoreCAM, measured side by side in one run.

Same model (timm, random init), same input, same target (the predicted class), same device; calls alternate
(ours, theirs, theirs, ours, ...) after one warm-up each, and the median of ``--repeats`` is reported. A
grad-cam call includes building its ``with`` context, as its README does; ours includes hook set-up and removal.

    python benchmarks/explainers.py                              # GradCAM + ScoreCAM, batch 32, 224 px, resnet18
    python benchmarks/explainers.py --methods scorecam --batch 2 --repeats 1 --warmup 0
    python benchmarks/explainers.py --methods lcam               # L-CAM maps/s vs our Grad-CAM and Score-CAM

Note: grad-cam's ScoreCAM materialises every masked copy of the batch at once
(``B × C × 3 × H × W`` floats: 9.9 GB for 32 × 512 channels at 224 px, plus 3.3 GB of upsampled masks), so the
default ScoreCAM configuration needs that much free memory; ours streams chunks of ``--scorecam-batch``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(method: str, model: torch.nn.Module, x: torch.Tensor, repeats: int, chunk: int,
          warmup: int = 1) -> dict[str, float]:
    import pytorch_grad_cam as pgc

    from zoo.explainers import build_explainer

    theirs_cls = {'gradcam': pgc.GradCAM, 'scorecam': pgc.ScoreCAM}[method]
    kw = dict(batch_size=chunk, progress=False) if method == 'scorecam' else {}
    ours = build_explainer(method, target_layer='layer4', **kw)

    def run_ours() -> object:
        return ours(model, x)

    def run_theirs() -> object:
        with theirs_cls(model, [model.layer4[-1]]) as cam:  # layer4[-1] is layer4's output, as ours
            if method == 'scorecam':
                cam.batch_size = chunk
            return cam(x, targets=None)

    for _ in range(warmup):
        run_ours()
        run_theirs()
    t_ours, t_theirs = [], []
    for i in range(repeats):  # ABBA order, so a drift in machine load favours neither side
        if i % 2 == 0:
            t_ours.append(_time(run_ours))
            t_theirs.append(_time(run_theirs))
        else:
            t_theirs.append(_time(run_theirs))
            t_ours.append(_time(run_ours))
    o, t = statistics.median(t_ours), statistics.median(t_theirs)
    return {'ours_s': o, 'theirs_s': t, 'ratio': o / t}


def bench_lcam(model_name: str, x: torch.Tensor, repeats: int, chunk: int, warmup: int = 1) -> dict[str, float]:
    """Maps per second of L-CAM (one forward pass) and of our Grad-CAM and Score-CAM on one L-CAM model whose
    frozen classifier is timm ``model_name`` (random init; the attention module untrained: speed only)."""
    from registry import MODELS
    from zoo.explainers import build_explainer

    model = MODELS.build(dict(type='LCAMClassifier', classifier=dict(
        type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name=model_name),
        head=dict(type='LinearClsHead', num_classes=1000)))).eval().to(x.device)
    methods = {'lcam': build_explainer('lcam'), 'gradcam': build_explainer('gradcam'),
               'scorecam': build_explainer('scorecam', batch_size=chunk, progress=False)}
    for explainer in methods.values():
        for _ in range(warmup):
            explainer(model, x)
    times: dict[str, list[float]] = {k: [] for k in methods}
    names = list(methods)
    for i in range(repeats):  # a rotating order, so a drift in machine load favours no method
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(_time(lambda e=methods[name]: e(model, x)))
    return {k: len(x) / statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--methods', nargs='+', default=['gradcam', 'scorecam'], choices=['gradcam', 'scorecam', 'lcam'],
                   help='lcam: maps/s of L-CAM vs our Grad-CAM and Score-CAM (no grad-cam reference exists)')
    p.add_argument('--model', default='resnet18')
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1, help='untimed calls of each before timing')
    p.add_argument('--scorecam-batch', type=int, default=32, help='masked images per forward, both libraries')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch decides)')
    args = p.parse_args(argv)
    import timm

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False, num_classes=1000).eval().to(args.device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    print(f'{args.model} (random init), batch {args.batch}, {args.size} px, device {args.device}, '
          f'{torch.get_num_threads()} threads, median of {args.repeats}')
    for method in args.methods:
        if method == 'lcam':
            r = bench_lcam(args.model, x, args.repeats, args.scorecam_batch, args.warmup)
            print('lcam      ' + '   '.join(f'{k} {v:8.2f} maps/s' for k, v in r.items()) +
                  f"   lcam/gradcam = {r['lcam'] / r['gradcam']:.1f}x   lcam/scorecam = "
                  f"{r['lcam'] / r['scorecam']:.0f}x faster", flush=True)
            continue
        r = bench(method, model, x, args.repeats, args.scorecam_batch, args.warmup)
        print(f"{method:9s} ours {r['ours_s']:8.3f} s   grad-cam {r['theirs_s']:8.3f} s   "
              f"ours/grad-cam = {r['ratio']:.3f}", flush=True)


if __name__ == '__main__':
    main()
