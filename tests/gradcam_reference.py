"""Helpers for parity tests against pytorch-grad-cam: well-conditioned random models, grad-cam runs, sign-free
comparison of projection maps.

* :func:`calibrated`: a model built with ``weights=None`` whose BatchNorm statistics are the exact mean/variance of a
  few seeded images (``momentum=None``), so activations are centred and maps well conditioned.
* :func:`grad_cam_maps`: a grad-cam CAM run as its README does (``with cls(model, target_layers) as cam``), optionally
  cloning a layer's output after grad-cam's hooks (DenseNet: see the test module).
* :func:`match_up_to_sign`: our map for the sign choice (per image, per layer) that best matches a reference; an
  SVD's sign is arbitrary (LAPACK decides) and grad-cam does not fix it.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from zoo.explainers import build_explainer


def calibrated(model: nn.Module, n: int = 4, size: tuple[int, int] = (64, 80), seed: int = 0) -> nn.Module:
    """``model`` in eval mode with BatchNorm running stats set from ``n`` seeded ``N(0, 1)`` images."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch gives its exact statistics
    model.train()
    with torch.no_grad():
        model(torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(seed)))
    return model.eval()


def grad_cam_maps(method: str, model: nn.Module, layers: Sequence[nn.Module], images: torch.Tensor,
                  targets: Any = None, eigen_smooth: bool = False, aug_smooth: bool = False,
                  reshape: Callable | None = None, clone_after: nn.Module | None = None,
                  target_cls: Any = None) -> torch.Tensor:
    """grad-cam's maps ``[B, H, W]`` for ``method`` (a ``pytorch_grad_cam`` class name); ``targets`` class indices
    (or ``None``) become ``ClassifierOutputTarget``s (``target_cls`` another target class)."""
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    target_cls = target_cls or ClassifierOutputTarget
    tg = None if targets is None else [target_cls(int(t)) for t in torch.as_tensor(targets).reshape(-1).tolist()]
    if tg is not None and len(tg) == 1 and len(images) > 1:
        tg = tg * len(images)
    cls = getattr(pgc, method)
    with cls(model=model, target_layers=list(layers), reshape_transform=reshape) as cam:
        handle = None if clone_after is None else clone_after.register_forward_hook(lambda _m, _i, out: out.clone())
        try:
            cam.batch_size = 64  # ScoreCAM's and AblationCAM's chunk (grad-cam's test uses 4; results are equal)
            out = cam(images, targets=tg, eigen_smooth=eigen_smooth, aug_smooth=aug_smooth)
        finally:
            if handle is not None:
                handle.remove()
    return torch.from_numpy(out).float()


def match_up_to_sign(name: str, model: nn.Module, images: torch.Tensor, targets: Any, reference: torch.Tensor,
                     layers: Sequence[str] | None, **kw: Any) -> torch.Tensor:
    """Our maps for ``name`` with, per image, the sign of each layer's projection that is closest to
    ``reference``. ``layers=None`` for explainers without target layers (FullGrad)."""
    size = tuple(images.shape[-2:])
    final = build_explainer(name, **({} if layers is None else {'target_layer': list(layers)}), **kw)
    if layers is None:
        raw = [build_explainer(name, normalize=False, **kw)(model, images, targets)]
    else:
        raw = [build_explainer(name, target_layer=layer, relu=False, normalize=False, resize=False, **kw)(
            model, images, targets) for layer in layers]
    best = None
    for signs in itertools.product((1.0, -1.0), repeat=len(raw)):
        maps = [s * r for s, r in zip(signs, raw)]
        m = maps[0] if len(maps) == 1 else final.combine_layers(maps, size)
        m = final.postprocess(m, size)
        if best is None:
            best = m.clone()
        closer = (m - reference).abs().flatten(1).amax(1) < (best - reference).abs().flatten(1).amax(1)
        best[closer] = m[closer]
    return best
