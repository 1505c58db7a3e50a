"""Guided Backpropagation (Springenberg et al., 2015) and Guided Grad-CAM (Selvaraju et al., 2017).

Guided backprop is the input gradient with every ``nn.ReLU`` module's backward changed to pass only positive
gradients at positive inputs (``g · [x > 0] · [g > 0]``). It is done with forward hooks that put an identity with
that backward after each ``nn.ReLU`` module; nothing in the model is replaced, and the hooks are removed after the
call. Functional ReLUs (``F.relu`` inside a forward, e.g. torchvision DenseNet's last one) are not changed — nor
are they in Captum or grad-cam. Guided Grad-CAM multiplies the guided gradient by the Grad-CAM map upsampled to the
input.

``attribute`` equals Captum's ``GuidedBackprop`` and ``GuidedGradCam`` (and grad-cam's ``GuidedBackpropReLUModel``
for one image); maps reduce the channels with ``max_c |a|``.

Example:
    >>> import timm, torch
    >>> from zoo.explainers import GuidedBackprop
    >>> model = timm.create_model('test_resnet', pretrained=False, num_classes=3)
    >>> tuple(GuidedBackprop()(model, torch.randn(2, 3, 32, 32)).shape)
    (2, 32, 32)
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from registry import EXPLAINERS
from registry.errors import ConfigError

from .base import Targets
from .gradcam import GradCAM
from .pixel import PixelExplainer, input_gradients


class _GuidedGate(torch.autograd.Function):
    """Identity forward; backward keeps positive gradients at positive ReLU outputs."""

    @staticmethod
    def forward(ctx: Any, y: Tensor) -> Tensor:
        ctx.save_for_backward(y)
        return y.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return grad.clamp_min(0) * (y > 0).to(grad.dtype)


@contextmanager
def guided_relus(model: nn.Module) -> Iterator[int]:
    """Inside: every ``nn.ReLU`` module backpropagates guided gradients (yields how many there are)."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    handles = [m.register_forward_hook(lambda _m, _a, out: _GuidedGate.apply(out)) for m in relus]
    try:
        yield len(relus)
    finally:
        for h in handles:
            h.remove()


@EXPLAINERS.register_module()
class GuidedBackprop(PixelExplainer):
    """Guided Backpropagation: the input gradient through guided ReLUs (see the module docstring).

    Args: see :class:`~zoo.explainers.pixel.PixelExplainer`. A model without ``nn.ReLU`` modules is refused (the
    result would be the plain gradient).
    """

    aliases = ('guidedbackprop', 'guided-backprop', 'guided-backpropagation')

    def attributions(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        with guided_relus(model) as n:
            if n == 0:
                raise ConfigError(f'{type(self).__name__}: {type(model).__name__} has no nn.ReLU modules, so guided '
                                  'backpropagation would be the plain gradient; use Saliency.')
            return input_gradients(model, images, targets, torch.arange(len(images), device=images.device))


@EXPLAINERS.register_module()
class GuidedGradCAM(GuidedBackprop):
    """Guided Grad-CAM: guided backprop ``⊙`` the Grad-CAM map of ``target_layer`` upsampled to the input.

    Args:
        target_layer: Grad-CAM's layer (``None``: ``model.explain_meta['target_layer']``).
        interpolate: ``'nearest'`` (Captum's ``GuidedGradCam`` default) or ``'bilinear'`` (grad-cam's example).
        scale_cam: multiply by the Grad-CAM map scaled to [0, 1] (grad-cam's example) instead of the raw ReLU'd map
            (Captum). The maps (after the channel reduction and min-max) differ only through ``interpolate``.
        patch_size, num_prefix_tokens, output_fmt: see :class:`~zoo.explainers.base.CAMExplainer`.
        other arguments: see :class:`~zoo.explainers.pixel.PixelExplainer`.
    """

    aliases = ('guidedgradcam', 'guided-gradcam', 'guided-grad-cam')

    def __init__(self, target_layer: str | nn.Module | Sequence[str | nn.Module] | None = None,
                 interpolate: str = 'nearest', scale_cam: bool = False, patch_size: int | Sequence[int] | None = None,
                 num_prefix_tokens: int | None = None, output_fmt: str | None = None, reduce: str | None = None,
                 batch_size: int = 64, aug_smooth: bool = False, normalize: bool = True,
                 eval_mode: bool = True) -> None:
        if interpolate not in ('nearest', 'bilinear'):
            raise ConfigError(f"GuidedGradCAM interpolate must be 'nearest' or 'bilinear', got {interpolate!r}.")
        super().__init__(reduce=reduce, batch_size=batch_size, aug_smooth=aug_smooth, normalize=normalize,
                         eval_mode=eval_mode)
        self.target_layer, self.interpolate, self.scale_cam = target_layer, interpolate, bool(scale_cam)
        self.patch_size, self.num_prefix_tokens, self.output_fmt = patch_size, num_prefix_tokens, output_fmt
        self.gradcam = GradCAM(target_layer=target_layer, patch_size=patch_size, num_prefix_tokens=num_prefix_tokens,
                               output_fmt=output_fmt, normalize=scale_cam, resize=False, eval_mode=eval_mode)

    def attributions(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        score = self.score(model, images, targets)
        cam = self.gradcam.postprocess(self.gradcam.explain(model, images, score), tuple(images.shape[-2:]))
        size = tuple(images.shape[-2:])
        up = F.interpolate(cam[:, None], size=size, mode=self.interpolate,
                           **({'align_corners': False} if self.interpolate == 'bilinear' else {}))
        return super().attributions(model, images, score) * up
