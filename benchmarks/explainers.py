"""Ours ÷ reference wall time for each explainer, measured side by side in one run.

The reference is pytorch-grad-cam for the CAM family and Captum for the pixel family (Saliency, Integrated
Gradients, SmoothGrad, Guided Backprop). Same model (timm, random init), same input, same targets (the predicted
classes), same device, same chunk size where both have one (``--chunk``: masked/ablated images per forward); calls
alternate (ours, theirs, theirs, ours, ...) after ``--warmup`` untimed calls of each, and the median of
``--repeats`` is reported. A grad-cam call includes building its ``with`` context, as its README does; ours includes
hook set-up and removal.

    python benchmarks/explainers.py                                   # gradcam, scorecam on resnet18, batch 32, 224 px
    python benchmarks/explainers.py --models resnet50 vit_small_patch16_224 --methods gradcam fullgrad ablationcam
    python benchmarks/explainers.py --models resnet50 --methods scorecam --batch 1 --repeats 1 --warmup 0
    python benchmarks/explainers.py --methods lcam                    # L-CAM maps/s vs our Grad-CAM and Score-CAM

Rows print as they finish: ``model  method  ours  reference  ours/reference`` in wall time, then the same ratio in
CPU time of the process (all threads), which a busy machine disturbs less than wall time. ``--methods all`` runs every
method below. Notes: grad-cam's ScoreCAM materialises every masked copy of the batch at once
(``B × C × 3 × H × W`` floats: 9.9 GB for 32 × 512 channels at 224 px), so big ScoreCAM batches need that much
memory; ours streams chunks. grad-cam's AblationCAM loops over images (one at a time), ours over (image, channel)
chunks of the whole batch. ViT rows use grad-cam's ``reshape_transform`` with the grid of the input size.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402

GRADCAM = {'gradcam': 'GradCAM', 'gradcam++': 'GradCAMPlusPlus', 'xgradcam': 'XGradCAM', 'layercam': 'LayerCAM',
           'hirescam': 'HiResCAM', 'eigencam': 'EigenCAM', 'eigengradcam': 'EigenGradCAM', 'kpcacam': 'KPCA_CAM',
           'scorecam': 'ScoreCAM', 'ablationcam': 'AblationCAM', 'fullgrad': 'FullGrad',
           'gradcamelementwise': 'GradCAMElementWise', 'shapleycam': 'ShapleyCAM', 'finercam': 'FinerCAM'}
CAPTUM = {'saliency': 'Saliency', 'ig': 'IntegratedGradients', 'smoothgrad': 'NoiseTunnel',
          'guidedbackprop': 'GuidedBackprop'}
CHUNKED = ('scorecam', 'ablationcam')


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """``(wall seconds, CPU seconds of this process)`` of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def target_layer(model: torch.nn.Module) -> tuple[str, torch.nn.Module]:
    """The usual CAM layer: ``blocks[-1].norm1`` for a ViT, else the last stage (``layer4``/``stages[-1]``)."""
    from registry.errors import ConfigError
    from zoo.explainers._layers import get_layer

    for name in ('blocks.-1.norm1', 'layer4', 'stages.-1', 'features.-1'):
        try:
            module, resolved = get_layer(model, name)
            return resolved, module
        except ConfigError:  # try the next convention
            continue
    raise SystemExit(f'no known target layer in {type(model).__name__}')


def runners(method: str, model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor,
            chunk: int) -> tuple[Callable[[], object], Callable[[], object]]:
    from zoo.explainers import build_explainer

    name, layer = target_layer(model)
    is_vit = x.dim() == 4 and hasattr(model, 'blocks')
    grid = (x.shape[-2] // 16, x.shape[-1] // 16)
    t_list = targets.tolist()
    if method in CAPTUM:
        import captum.attr as ca

        ours = build_explainer(method, **({'n_steps': 50, 'batch_size': 50 * len(x)} if method == 'ig' else {}),
                               **({'n_samples': 10, 'stdev': 0.15, 'batch_size': len(x)} if method == 'smoothgrad'
                                  else {}))
        ref: Any = getattr(ca, CAPTUM[method])
        ref = ref(ca.Saliency(model)) if method == 'smoothgrad' else ref(model)
        kw = {'nt_samples': 10, 'nt_samples_batch_size': 1, 'stdevs': 0.15, 'abs': False} \
            if method == 'smoothgrad' else ({'abs': False} if method == 'saliency' else {})
        return (lambda: ours.attribute(model, x, targets)), (lambda: ref.attribute(x, target=targets, **kw))

    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    kw: dict[str, Any] = {'batch_size': chunk, 'progress': False} if method in CHUNKED else {}
    if method != 'fullgrad':
        kw['target_layer'] = name
    ours = build_explainer(method, **kw)

    def reshape(t: torch.Tensor) -> torch.Tensor:
        return t[:, -grid[0] * grid[1]:].reshape(t.shape[0], *grid, t.shape[2]).permute(0, 3, 1, 2)

    cls = getattr(pgc, GRADCAM[method])

    def run_theirs() -> object:
        layers = [] if method == 'fullgrad' else [layer]
        extra = {'ablation_layer': pgc.AblationLayerVit()} if is_vit and method == 'ablationcam' else {}
        with cls(model=model, target_layers=layers, reshape_transform=reshape if is_vit else None, **extra) as cam:
            if method in CHUNKED:
                cam.batch_size = chunk
            if method == 'finercam':
                return cam(x)
            return cam(x, targets=[ClassifierOutputTarget(t) for t in t_list])

    targets_ours = None if method == 'finercam' else targets
    return (lambda: ours(model, x, targets_ours)), run_theirs


def bench(method: str, model: torch.nn.Module, x: torch.Tensor, repeats: int, chunk: int,
          warmup: int = 1) -> dict[str, float]:
    with torch.no_grad():
        targets = model(x).argmax(1)
    run_ours, run_theirs = runners(method, model, x, targets, chunk)
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
    o, t = statistics.median(w for w, _ in t_ours), statistics.median(w for w, _ in t_theirs)
    oc, tc = statistics.median(c for _, c in t_ours), statistics.median(c for _, c in t_theirs)
    return {'ours_s': o, 'theirs_s': t, 'ratio': o / t, 'ours_cpu_s': oc, 'theirs_cpu_s': tc, 'cpu_ratio': oc / tc}


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
            times[name].append(_time(lambda e=methods[name]: e(model, x))[0])  # wall seconds
    return {k: len(x) / statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    methods = [*GRADCAM, *CAPTUM]
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--methods', nargs='+', default=['gradcam', 'scorecam'], choices=[*methods, 'lcam', 'all'],
                   help="'all' = every method with a reference; lcam: maps/s of L-CAM vs our Grad-CAM and Score-CAM "
                        '(no reference implementation exists)')
    p.add_argument('--models', nargs='+', default=['resnet18'],
                   help='timm model names (random init), e.g. resnet18 resnet50 vit_small_patch16_224')
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1, help='untimed calls of each before timing')
    p.add_argument('--chunk', '--scorecam-batch', dest='chunk', type=int, default=32,
                   help='masked/ablated images per forward (ScoreCAM, AblationCAM), both libraries')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch decides)')
    args = p.parse_args(argv)
    import timm

    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = methods if 'all' in args.methods else args.methods
    print(f'batch {args.batch}, {args.size} px, device {args.device}, {torch.get_num_threads()} threads, median of '
          f'{args.repeats} (reference: grad-cam for CAMs, Captum for {", ".join(CAPTUM)})')
    for name in args.models:
        torch.manual_seed(0)
        kw = {'img_size': args.size} if 'vit' in name else {}
        model = timm.create_model(name, pretrained=False, num_classes=1000, **kw).eval().to(args.device)
        x = torch.randn(args.batch, 3, args.size, args.size, device=args.device,
                        generator=torch.Generator(args.device).manual_seed(0))
        for method in chosen:
            if method == 'lcam':
                r = bench_lcam(name, x, args.repeats, args.chunk, args.warmup)
                print(f'{name:24s} lcam      ' + '   '.join(f'{k} {v:8.2f} maps/s' for k, v in r.items()) +
                      f"   lcam/gradcam = {r['lcam'] / r['gradcam']:.1f}x   lcam/scorecam = "
                      f"{r['lcam'] / r['scorecam']:.0f}x faster", flush=True)
                continue
            r = bench(method, model, x, args.repeats, args.chunk, args.warmup)
            print(f"{name:24s} {method:19s} ours {r['ours_s']:9.3f} s   reference {r['theirs_s']:9.3f} s   "
                  f"ours/reference = {r['ratio']:.3f}   (CPU time: {r['ours_cpu_s']:.1f} s / {r['theirs_cpu_s']:.1f} s "
                  f"= {r['cpu_ratio']:.3f})", flush=True)


if __name__ == '__main__':
    main()
