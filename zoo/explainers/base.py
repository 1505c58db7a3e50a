"""The shared machinery of every explainer: input checks, state restore, hooks, reshaping, normalisation.

:class:`Explainer` is the interface (``maps = explainer(model, images, targets)``); :class:`CAMExplainer` adds a
target layer, captures its activation (and the gradient of the target score with respect to it) and turns a
per-channel weighting into a map. A CAM method overrides :meth:`CAMExplainer.channel_weights` or
:meth:`CAMExplainer.cam`, nothing else.

Example:
    >>> import timm, torch
    >>> from zoo.explainers import GradCAM
    >>> model = timm.create_model('resnet18', pretrained=False, num_classes=3)
    >>> maps = GradCAM(target_layer='layer4')(model, torch.randn(2, 3, 64, 64))
    >>> tuple(maps.shape), bool(maps.min() >= 0), bool(maps.max() <= 1)
    ((2, 64, 64), True, True)
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from registry.errors import ConfigError, DataError, XZooError
from zoo.ops.modules import forward_logits, model_device, model_state
from zoo.ops.tensors import is_constant, minmax_normalize, resize_maps
from zoo.ops.tensors import targets_or_predicted as resolve_targets

from ._layers import get_layer, layer_meta, to_nchw

Targets = int | Sequence[int] | Tensor | None


def check_images(images: Any) -> Tensor:
    """Raise :class:`DataError` unless ``images`` is a finite float ``[B, C, H, W]`` tensor."""
    if not isinstance(images, Tensor):
        raise DataError(f'images must be a torch.Tensor [B, C, H, W], got {type(images).__name__}.')
    if images.ndim != 4:
        hint = ' For one image use images[None].' if images.ndim == 3 else ''
        raise DataError(f'images must be a 4-D tensor [B, C, H, W], got shape {tuple(images.shape)}.{hint}')
    if images.shape[0] == 0:
        raise DataError('images is an empty batch (shape[0] == 0); pass at least one image.')
    if not images.is_floating_point():
        raise DataError(f'images must be normalised floats, got dtype {images.dtype}. Normalise them first, e.g. '
                        'with model.data_preprocessor.normalize(images).')
    finite = torch.isfinite(images)
    if not bool(finite.all()):
        bad = (~finite).flatten(1).any(1).nonzero().flatten().tolist()
        raise DataError(f'images contain NaN or Inf values ({int((~finite).sum())} entries, in image(s) '
                        f'{bad[:8]}). Explainers need finite inputs: check the loading and normalisation.')
    return images


class Explainer:
    """Base of every explainer: ``maps = explainer(model, images, targets=None)`` → ``[B, H, W]`` in [0, 1].

    Args:
        normalize: scale each map to [0, 1] (min-max); ``False`` returns raw values.
        resize: upsample maps to the images' size; ``False`` keeps the method's native resolution.
        differentiable: keep the autograd graph so that maps carry gradient (training-time use).
        eval_mode: explain with the model in eval mode (dropout off, BatchNorm running stats); the previous
            mode of every module is restored afterwards.

    Subclasses implement :meth:`explain`. ``aliases`` are the short names ``build_explainer`` accepts.
    """

    aliases: ClassVar[tuple[str, ...]] = ()
    supports_differentiable: ClassVar[bool] = True

    def __init__(self, normalize: bool = True, resize: bool = True, differentiable: bool = False,
                 eval_mode: bool = True) -> None:
        if differentiable and not self.supports_differentiable:
            raise ConfigError(f'{type(self).__name__} cannot return differentiable maps (it scores masked '
                              'copies of the input without gradient). Use a gradient CAM such as GradCAM.')
        self.normalize = normalize
        self.resize = resize
        self.differentiable = differentiable
        self.eval_mode = eval_mode

    def __call__(self, model: nn.Module, images: Tensor, targets: Targets = None) -> Tensor:
        images = check_images(images)
        out_device = images.device
        with torch.inference_mode(False):
            if images.is_inference():
                images = images.clone()
            images = images.to(model_device(model, images.device))
            if not self.differentiable:
                images = images.detach()
            with model_state(model, eval_mode=self.eval_mode, freeze=not self.differentiable):
                try:
                    maps = self.explain(model, images, targets)
                except Exception as exc:
                    if not isinstance(exc, XZooError) and hasattr(exc, 'add_note'):
                        exc.add_note('(raised inside the model forward while explaining; the model state was '
                                     'restored and no hook was left behind)')
                    raise
            maps = self.postprocess(maps, tuple(images.shape[-2:]))
        if not self.differentiable:
            maps = maps.detach()
        return maps.to(out_device)

    def explain(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        """Raw maps ``[B, h, w]`` (float) for images already on the model's device."""
        raise NotImplementedError

    def postprocess(self, maps: Tensor, size: tuple[int, int]) -> Tensor:
        """Resize to ``size`` and normalise, as the constructor asked. Whether a map is constant is decided on the
        native-resolution map (relative to its magnitude), before upsampling adds rounding noise."""
        maps = maps.float()
        constant = is_constant(maps) if self.normalize else None
        if self.resize:
            maps = resize_maps(maps, size)
        return minmax_normalize(maps, constant=constant) if self.normalize else maps

    def config(self) -> dict[str, Any]:
        """The constructor arguments (with ``type``), so that results can record how maps were made."""
        params = inspect.signature(type(self)).parameters
        return {'type': type(self).__name__, **{k: getattr(self, k) for k in params if hasattr(self, k)}}

    def __repr__(self) -> str:
        cfg = self.config()
        return f"{cfg.pop('type')}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"


class _StopForward(BaseException):
    """Raised by a hook to end a forward pass once the target layer has run (not an error)."""


@dataclass
class Capture:
    """What one forward (+ gradient) pass records for a CAM method; ``activations``/``gradients`` are NCHW."""

    model: nn.Module
    images: Tensor
    activations: Tensor
    gradients: Tensor | None
    logits: Tensor | None
    targets: Tensor | None


class CAMExplainer(Explainer):
    """A class-activation-map method on one layer: ``relu(sum_c w_c · A_c)`` unless :meth:`cam` is overridden.

    Args:
        target_layer: dotted module name (``'layer4'``, ``'blocks.-1.norm1'``) or the module itself; ``None``
            reads ``model.explain_meta['target_layer']``.
        patch_size, num_prefix_tokens: how token outputs ``[B, N, C]`` map onto the patch grid; ``None`` reads
            ``explain_meta`` or the timm attributes (``patch_embed.patch_size``, ``num_prefix_tokens``).
        output_fmt: ``'NCHW'`` or ``'NHWC'`` for 4-D outputs; ``None`` reads ``explain_meta``/``output_fmt``.
        relu: clamp negative map values (the Grad-CAM convention) before resizing and normalising.
        normalize, resize, differentiable, eval_mode: see :class:`Explainer`.
    """

    uses_gradients: ClassVar[bool] = True
    needs_logits: ClassVar[bool] = True

    def __init__(self, target_layer: str | nn.Module | None = None, patch_size: int | Sequence[int] | None = None,
                 num_prefix_tokens: int | None = None, output_fmt: str | None = None, relu: bool = True,
                 normalize: bool = True, resize: bool = True, differentiable: bool = False,
                 eval_mode: bool = True) -> None:
        super().__init__(normalize=normalize, resize=resize, differentiable=differentiable, eval_mode=eval_mode)
        if output_fmt not in (None, 'NCHW', 'NHWC'):
            raise ConfigError(f"output_fmt must be 'NCHW', 'NHWC' or None, got {output_fmt!r}.")
        self.target_layer = target_layer
        self.patch_size = patch_size
        self.num_prefix_tokens = num_prefix_tokens
        self.output_fmt = output_fmt
        self.relu = relu

    # --- the two override points --------------------------------------------------------------------------
    def channel_weights(self, cap: Capture) -> Tensor:
        """Per-channel weights ``[B, C]``."""
        raise NotImplementedError(f'{type(self).__name__} must override channel_weights() or cam()')

    def cam(self, cap: Capture) -> Tensor:
        """The raw map ``[B, h, w]`` (before ReLU): channel-weighted sum of the activations by default."""
        weights = self.channel_weights(cap)
        return torch.einsum('bc,bchw->bhw', weights.to(cap.activations.dtype), cap.activations)

    # --- machinery ------------------------------------------------------------------------------------------
    def explain(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        return self.cam(self.capture(model, images, targets)).float()

    def postprocess(self, maps: Tensor, size: tuple[int, int]) -> Tensor:
        return super().postprocess(maps.clamp_min(0) if self.relu else maps, size)

    def capture(self, model: nn.Module, images: Tensor, targets: Targets) -> Capture:
        """One forward pass with a hook on the target layer, then the gradient of the target scores."""
        layer, name = get_layer(model, self.target_layer)
        meta = layer_meta(model, self.patch_size, self.num_prefix_tokens, self.output_fmt)
        need_grad = self.uses_gradients or self.differentiable
        store: dict[str, Tensor] = {}

        def hook(_module: nn.Module, _args: Any, output: Any) -> Any:
            if not isinstance(output, Tensor):
                raise ConfigError(f'Target layer {name!r} returns {type(output).__name__}, not a tensor; pick a '
                                  'module whose output is a feature map [B, C, h, w] or tokens [B, N, C].')
            if self.differentiable:
                act = output
            else:  # a fresh leaf: the gradient stops here, nothing before the layer is recorded
                act = output.detach().requires_grad_(need_grad)
            store['act'] = act
            if not self.needs_logits:
                raise _StopForward
            return act.clone()  # later in-place ops (x += shortcut) must not touch the captured tensor

        handle = layer.register_forward_hook(hook)
        try:
            with torch.set_grad_enabled(need_grad):
                try:
                    logits = forward_logits(model, images)
                except _StopForward:
                    logits = None
        finally:
            handle.remove()
        if 'act' not in store:
            raise ConfigError(f'Target layer {name!r} did not run during the forward pass; pick a module on the '
                              'path from the input to the logits.')
        act = store.pop('act')
        tgt = resolve_targets(targets, logits) if logits is not None else None
        grads = None
        if self.uses_gradients:
            score = logits.gather(1, tgt[:, None]).sum()
            grads = torch.autograd.grad(score, act, create_graph=self.differentiable, allow_unused=True)[0]
            if grads is None:
                raise XZooError(f'The target class scores do not depend on layer {name!r}, so gradient methods '
                                'cannot explain them there; choose a layer that feeds the classifier.')
        hw = tuple(images.shape[-2:])
        acts = to_nchw(act, hw, meta)
        if not self.differentiable:
            acts = acts.detach()
        grads = to_nchw(grads, hw, meta) if grads is not None else None
        return Capture(model, images, acts, grads, logits, tgt)
