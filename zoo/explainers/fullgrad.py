"""FullGrad (Srinivas & Fleuret, NeurIPS 2019): input-gradient plus bias-gradient maps of every layer with a bias.

``S = ψ(|x ⊙ ∇_x s|) + Σ_layers Σ_c ψ(|b_c · ∇_{z_c} s|)``, with ``s`` the target score, ``z`` a layer's output and
``b`` its bias: a ``Conv2d``'s bias, or a ``BatchNorm2d``'s effective bias ``β - μ γ / sqrt(σ² + ε)`` (eval mode). One
forward and one backward pass for the whole batch, on the model's device. ``ψ`` (``per_channel=True``, grad-cam's
``FullGrad``) scales each channel of each term to [0, 1] (``(t - min) / (max - min + eps)``) and resizes it to the
input (bilinear, half-pixel centres); ``per_channel=False`` (the authors' ``fullgrad-saliency`` code) scales each
layer's whole term at once (``eps=1e-6`` there) and upsamples with ``align_corners=True``. Because resizing is linear,
channels are summed at each layer's own resolution and resized once (grad-cam resizes every channel).

``BatchNorm2d`` subclasses that apply their activation inside (timm's ``BatchNormAct2d``) contribute their
pre-activation output; grad-cam's exact type test skips them.

Example:
    >>> import torchvision, torch
    >>> from zoo.explainers import FullGrad
    >>> model = torchvision.models.resnet18(num_classes=3)
    >>> tuple(FullGrad()(model, torch.randn(2, 3, 32, 32)).shape)
    (2, 32, 32)
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from registry import EXPLAINERS
from registry.errors import ConfigError
from zoo.ops.tensors import resize_maps

from ._pca import first_component
from ._targets import target_scores
from .base import Explainer, Targets, forward_logits


def bias_layers(model: nn.Module) -> list[tuple[str, nn.Module, nn.Module]]:
    """``(name, layer, hooked module)`` for every ``Conv2d`` with a bias and affine ``BatchNorm2d`` with running
    statistics; the hooked module is the layer itself, or for a norm with its activation inside (a ``drop``/``act``
    child) that child, whose input is the norm's output."""
    found = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            found.append((name, m, m))
        elif isinstance(m, nn.BatchNorm2d) and m.bias is not None and m.running_mean is not None:
            inner = next((getattr(m, k) for k in ('drop', 'act') if isinstance(getattr(m, k, None), nn.Module)), None)
            found.append((name, m, inner if inner is not None else m))
    return found


def layer_bias(layer: nn.Module) -> Tensor:
    """The bias of a conv, or the effective bias of an eval-mode batch norm."""
    if isinstance(layer, nn.BatchNorm2d):
        return layer.bias - layer.running_mean * layer.weight / torch.sqrt(layer.running_var + layer.eps)
    return layer.bias


@EXPLAINERS.register_module()
class FullGrad(Explainer):
    """FullGrad.

    Args:
        per_channel: scale each channel of each term (grad-cam, default) or each layer's term at once (the authors'
            code).
        eps: added to the range when scaling (grad-cam ``1e-7``; the authors' code ``1e-6``).
        eigen_smooth: the map is the first principal component of the per-layer maps (input term and one map per
            bias layer), computed at 1/8 of the input size as grad-cam does, oriented to correlate positively with
            their sum.
        aug_smooth, normalize, eval_mode: see :class:`~zoo.explainers.base.Explainer`. ``resize`` is ignored: the
            map has the input's size. BatchNorm layers count with their running statistics, so keep
            ``eval_mode=True``.
    """

    aliases = ('fullgrad', 'full-grad')
    supports_differentiable = False

    def __init__(self, per_channel: bool = True, eps: float = 1e-7, eigen_smooth: bool = False,
                 aug_smooth: bool = False, normalize: bool = True, resize: bool = True, eval_mode: bool = True) -> None:
        if not eps >= 0:
            raise ConfigError(f'FullGrad eps must be >= 0, got {eps!r}.')
        super().__init__(normalize=normalize, resize=resize, eval_mode=eval_mode, aug_smooth=aug_smooth)
        self.per_channel, self.eps, self.eigen_smooth = bool(per_channel), float(eps), bool(eigen_smooth)

    def scale(self, t: Tensor) -> Tensor:
        """``[B, C, h, w]`` → scaled to [0, 1] per channel (or per image with ``per_channel=False``)."""
        flat = t.flatten(2) if self.per_channel else t.flatten(1)[:, None]
        low = flat.amin(-1)[..., None, None]
        t = t - low
        high = (t.flatten(2) if self.per_channel else t.flatten(1)[:, None]).amax(-1)[..., None, None]
        return t / (high + self.eps)

    def upsample(self, t: Tensor, size: tuple[int, int]) -> Tensor:
        if tuple(t.shape[-2:]) == tuple(size):
            return t
        if self.per_channel:
            return resize_maps(t.flatten(0, 1), size).view(*t.shape[:2], *size)
        return F.interpolate(t, size=size, mode='bilinear', align_corners=True)

    def explain(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        layers = bias_layers(model)
        outputs: list[tuple[nn.Module, Tensor]] = []

        def make_hook(layer: nn.Module, pre: bool) -> Any:
            def hook(_module: nn.Module, args: Any, output: Any = None) -> Any:
                z = args[0] if pre else output
                outputs.append((layer, z))
                return (z.clone(), *args[1:]) if pre else z.clone()  # in-place ops after z must not change it
            return hook

        handles = [hooked.register_forward_pre_hook(make_hook(layer, True)) if hooked is not layer
                   else hooked.register_forward_hook(make_hook(layer, False)) for _, layer, hooked in layers]
        x = images.detach().requires_grad_(True)
        try:
            with torch.enable_grad():
                logits = forward_logits(model, x)
        finally:
            for h in handles:
                h.remove()
        score = target_scores(targets, logits)
        grads = torch.autograd.grad(score.sum(logits), [x, *(z for _, z in outputs)], allow_unused=True)
        size = tuple(images.shape[-2:])
        terms = [self.upsample(self.scale((x.detach() * grads[0]).abs()), size)]
        for (layer, z), g in zip(outputs, grads[1:]):
            if g is None or z.ndim != 4:
                continue
            bias = layer_bias(layer).detach().to(g.dtype)
            term = (bias[None, :, None, None] * g).abs()
            terms.append(self.upsample(self.scale(term).sum(1, keepdim=True), size))
        if not self.eigen_smooth:
            return sum(t.sum(1) for t in terms)
        stack = torch.cat(terms, 1)
        small = (max(1, size[0] // 8), max(1, size[1] // 8))
        stack = resize_maps(self.scale(stack).flatten(0, 1), small).view(stack.shape[0], -1, *small)
        return resize_maps(first_component(stack, sign='align', reference=stack.sum(1)), size)
