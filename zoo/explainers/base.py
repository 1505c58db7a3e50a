"""The shared machinery of every explainer: input checks, state restore, hooks, reshaping, normalisation, smoothing.

:class:`Explainer` is the interface (``maps = explainer(model, images, targets)``) and owns test-time augmentation
(``aug_smooth``); :class:`CAMExplainer` adds target layers (one, or a list whose maps are averaged), captures their
activations (and the gradient of the target score with respect to them) and turns a per-channel weighting into a map
(or, with ``eigen_smooth``, the first principal component of the weighted channels). A CAM method overrides
:meth:`CAMExplainer.channel_weights`, :meth:`CAMExplainer.contributions` or :meth:`CAMExplainer.cam`, nothing else.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from registry.errors import ConfigError, DataError, XZooError
from zoo.ops.modules import forward_logits, model_device, model_state
from zoo.ops.tensors import is_constant, minmax_normalize, resize_maps
from zoo.ops.tensors import targets_or_predicted as resolve_targets  # noqa: F401  (re-exported)

from ._layers import get_layers, layer_meta, layout, to_nchw
from ._pca import first_component
from ._targets import TargetScores, check_targets, target_scores

Targets = int | Sequence[int] | Tensor | Callable[[Tensor], Tensor] | Sequence[Callable[[Tensor], Tensor]] | None

AUG_FLIPS = (False, True)
AUG_FACTORS = (0.9, 1.0, 1.1)
"""``aug_smooth``'s augmentations (grad-cam's default ``ttach`` set): no flip / horizontal flip × the normalised
input multiplied by 0.9, 1.0, 1.1."""


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
        aug_smooth: test-time augmentation (grad-cam's ``aug_smooth``): the maps of the images flipped or not and
            multiplied by 0.9, 1 and 1.1 (each scaled to [0, 1], flipped back), averaged, scaled again. ``targets=None``
            explains the class predicted on the unmodified image in every copy. Six times the cost.

    Subclasses implement :meth:`explain`. ``aliases`` are the short names ``build_explainer`` accepts.
    """

    aliases: ClassVar[tuple[str, ...]] = ()
    supports_differentiable: ClassVar[bool] = True

    def __init__(self, normalize: bool = True, resize: bool = True, differentiable: bool = False,
                 eval_mode: bool = True, aug_smooth: bool = False) -> None:
        if differentiable and not self.supports_differentiable:
            raise ConfigError(f'{type(self).__name__} cannot return differentiable maps (it scores modified '
                              'copies of the input without gradient). Use a gradient CAM such as GradCAM.')
        self.normalize = normalize
        self.resize = resize
        self.differentiable = differentiable
        self.eval_mode = eval_mode
        self.aug_smooth = bool(aug_smooth)

    def __call__(self, model: nn.Module, images: Tensor, targets: Targets = None) -> Tensor:
        images = check_images(images)
        check_targets(targets)
        out_device = images.device
        with torch.inference_mode(False):
            if images.is_inference():
                images = images.clone()
            images = images.to(model_device(model, images.device))
            if not self.differentiable:
                images = images.detach()
            with model_state(model, eval_mode=self.eval_mode, freeze=not self.differentiable):
                try:
                    if self.aug_smooth:
                        maps = self.smoothed(model, images, targets)
                    else:
                        maps = self.postprocess(self.explain(model, images, targets), tuple(images.shape[-2:]))
                except Exception as exc:
                    if not isinstance(exc, XZooError) and hasattr(exc, 'add_note'):
                        exc.add_note('(raised inside the model forward while explaining; the model state was '
                                     'restored and no hook was left behind)')
                    raise
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

    def smoothed(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        """``aug_smooth``: the post-processed maps of every augmentation, flipped back, averaged, scaled again."""
        if targets is None:
            targets = forward_logits(model, images).argmax(1)
        total = None
        for flip in AUG_FLIPS:
            for factor in AUG_FACTORS:
                x = images.flip(-1) if flip else images
                m = self.postprocess(self.explain(model, x * factor, targets), tuple(images.shape[-2:]))
                m = m.flip(-1) if flip else m
                total = m if total is None else total + m
        mean = total / (len(AUG_FLIPS) * len(AUG_FACTORS))
        return minmax_normalize(mean) if self.normalize else mean

    def config(self) -> dict[str, Any]:
        """The constructor arguments (with ``type``), so that results can record how maps were made."""
        params = inspect.signature(type(self)).parameters
        return {'type': type(self).__name__, **{k: getattr(self, k) for k in params if hasattr(self, k)}}

    def __repr__(self) -> str:
        cfg = self.config()
        return f"{cfg.pop('type')}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"


class _StopForward(BaseException):
    """Raised by a hook to end a forward pass once the target layers have run (not an error)."""


@dataclass
class Capture:
    """What one forward (+ gradient) pass records on one target layer for a CAM method.

    ``activations``/``gradients`` are NCHW; ``score(logits, rows)`` gives the explained score of logits rows
    (see :class:`~zoo.explainers._targets.TargetScores`); ``targets`` are the class indices (``None`` for callable
    targets). ``raw_activations``/``raw_gradients`` are the layer's own layout, still in the autograd graph when the
    method asked for it (``second_order``); ``fmt`` is that layout (``'NCHW'``, ``'NHWC'`` or ``'tokens'``), and
    ``to_nchw`` converts a tensor of that layout. ``calls`` counts the layer's runs in the forward (the last is
    captured).
    """

    model: nn.Module
    images: Tensor
    activations: Tensor
    gradients: Tensor | None
    logits: Tensor | None
    targets: Tensor | None
    score: TargetScores | None = None
    layer: nn.Module | None = None
    name: str = ''
    fmt: str = 'NCHW'
    raw_activations: Tensor | None = None
    raw_gradients: Tensor | None = None
    to_nchw: Callable[[Tensor], Tensor] | None = None
    calls: int = 1


class CAMExplainer(Explainer):
    """A class-activation-map method: ``relu(sum_c w_c · A_c)`` unless :meth:`contributions`/:meth:`cam` say otherwise.

    Args:
        target_layer: dotted module name (``'layer4'``, ``'blocks.-1.norm1'``) or the module itself, or a list of
            those (grad-cam's ``target_layers``: each layer's map is ReLU'd, scaled to [0, 1] and resized, and the
            maps are averaged); ``None`` reads ``model.explain_meta['target_layer']``.
        patch_size, num_prefix_tokens: how token outputs ``[B, N, C]`` map onto the patch grid; ``None`` reads
            ``explain_meta`` or the timm/torchvision attributes (``patch_embed.patch_size``, ``patch_size``,
            ``num_prefix_tokens``).
        output_fmt: ``'NCHW'`` or ``'NHWC'`` for 4-D outputs; ``None`` reads the layout from the output's shape
            (see :func:`zoo.explainers._layers.layout`), refusing when it cannot tell.
        relu: clamp negative map values (the Grad-CAM convention) before resizing and normalising.
        eigen_smooth: the map is the first principal component of the per-channel terms ``w_c A_c`` (grad-cam's
            ``eigen_smooth``) instead of their sum, oriented to correlate positively with that sum.
        aug_smooth, normalize, resize, differentiable, eval_mode: see :class:`Explainer`.
    """

    uses_gradients: ClassVar[bool] = True
    needs_logits: ClassVar[bool] = True
    second_order: ClassVar[bool] = False

    def __init__(self, target_layer: str | nn.Module | Sequence[str | nn.Module] | None = None,
                 patch_size: int | Sequence[int] | None = None, num_prefix_tokens: int | None = None,
                 output_fmt: str | None = None, relu: bool = True, normalize: bool = True, resize: bool = True,
                 differentiable: bool = False, eval_mode: bool = True, eigen_smooth: bool = False,
                 aug_smooth: bool = False) -> None:
        super().__init__(normalize=normalize, resize=resize, differentiable=differentiable, eval_mode=eval_mode,
                         aug_smooth=aug_smooth)
        if output_fmt not in (None, 'NCHW', 'NHWC'):
            raise ConfigError(f"output_fmt must be 'NCHW', 'NHWC' or None, got {output_fmt!r}.")
        self.target_layer = list(target_layer) if isinstance(target_layer, tuple) else target_layer
        self.patch_size = patch_size
        self.num_prefix_tokens = num_prefix_tokens
        self.output_fmt = output_fmt
        self.relu = relu
        self.eigen_smooth = bool(eigen_smooth)

    # --- the override points --------------------------------------------------------------------------------
    def channel_weights(self, cap: Capture) -> Tensor:
        """Per-channel weights ``[B, C]``."""
        raise NotImplementedError(f'{type(self).__name__} must override channel_weights(), contributions() or cam()')

    def contributions(self, cap: Capture) -> Tensor:
        """The per-channel terms ``[B, C, h, w]`` whose channel sum is the raw map (default ``w_c · A_c``)."""
        return self.channel_weights(cap).to(cap.activations.dtype)[:, :, None, None] * cap.activations

    def cam(self, cap: Capture) -> Tensor:
        """The raw map ``[B, h, w]`` (before ReLU): the channel sum of :meth:`contributions`, or with
        ``eigen_smooth`` their first principal component."""
        if self.eigen_smooth:
            terms = self.contributions(cap)
            return first_component(terms, sign='align', reference=terms.sum(1))
        if type(self).contributions is CAMExplainer.contributions:
            weights = self.channel_weights(cap)
            return torch.einsum('bc,bchw->bhw', weights.to(cap.activations.dtype), cap.activations)
        return self.contributions(cap).sum(1)

    # --- machinery ------------------------------------------------------------------------------------------
    def explain(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        maps = [self.cam(cap).float() for cap in self.capture_all(model, images, targets)]
        return maps[0] if len(maps) == 1 else self.combine_layers(maps, tuple(images.shape[-2:]))

    def combine_layers(self, maps: list[Tensor], size: tuple[int, int]) -> Tensor:
        """Several layers' raw maps → one, as grad-cam: each ReLU'd and scaled to [0, 1] at its own resolution, then
        resized — to the images' size, or with ``resize=False`` to the finest layer's — and averaged."""
        common = size if self.resize else max((tuple(m.shape[-2:]) for m in maps), key=lambda hw: hw[0] * hw[1])
        out = []
        for m in maps:
            m = m.clamp_min(0) if self.relu else m
            out.append(resize_maps(minmax_normalize(m) if self.normalize else m, common))
        return torch.stack(out).mean(0)

    def postprocess(self, maps: Tensor, size: tuple[int, int]) -> Tensor:
        return super().postprocess(maps.clamp_min(0) if self.relu else maps, size)

    def capture(self, model: nn.Module, images: Tensor, targets: Targets) -> Capture:
        """:meth:`capture_all` for a single target layer."""
        caps = self.capture_all(model, images, targets)
        if len(caps) != 1:
            raise ConfigError(f'{type(self).__name__}.capture() takes one target layer, got {len(caps)}.')
        return caps[0]

    def capture_all(self, model: nn.Module, images: Tensor, targets: Targets) -> list[Capture]:
        """One forward pass with a hook on every target layer, then the gradient of the target scores."""
        layers = get_layers(model, self.target_layer)
        meta = layer_meta(model, self.patch_size, self.num_prefix_tokens, self.output_fmt)
        need_grad = self.uses_gradients or self.differentiable
        store: dict[str, Tensor] = {}
        calls: dict[str, int] = {}

        def make_hook(name: str) -> Callable[..., Any]:
            def hook(_module: nn.Module, _args: Any, output: Any) -> Any:
                if not isinstance(output, Tensor):
                    raise ConfigError(f'Target layer {name!r} returns {type(output).__name__}, not a tensor; pick a '
                                      'module whose output is a feature map [B, C, h, w] or tokens [B, N, C].')
                if self.differentiable or (need_grad and output.requires_grad):
                    act = output  # in the graph already (differentiable, or after another target layer)
                else:  # a fresh leaf: the gradient stops here, nothing before the layer is recorded
                    act = output.detach().requires_grad_(need_grad)
                store[name] = act
                calls[name] = calls.get(name, 0) + 1
                if not self.needs_logits and len(store) == len(layers):
                    raise _StopForward
                return act.clone()  # later in-place ops (x += shortcut) must not touch the captured tensor
            return hook

        handles = [layer.register_forward_hook(make_hook(name)) for layer, name in layers]
        try:
            with torch.set_grad_enabled(need_grad):
                try:
                    logits = forward_logits(model, images)
                except _StopForward:
                    logits = None
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for _, name in layers if name not in store]
        if missing:
            raise ConfigError(f'Target layer {missing[0]!r} did not run during the forward pass; pick a module on '
                              'the path from the input to the logits.')
        acts = [store.pop(name) for _, name in layers]
        score = target_scores(targets, logits) if logits is not None else None
        grads: list[Tensor | None] = [None] * len(acts)
        if self.uses_gradients:
            keep = self.differentiable or self.second_order
            grads = list(torch.autograd.grad(score.sum(logits), acts, create_graph=keep, allow_unused=True))
            for g, (_, name) in zip(grads, layers):
                if g is None:
                    raise XZooError(f'The target scores do not depend on layer {name!r}, so gradient methods '
                                    'cannot explain them there; choose a layer that feeds the classifier.')
        hw = tuple(images.shape[-2:])
        keep_graph = self.differentiable or self.second_order
        caps = []
        for act, grad, (layer, name) in zip(acts, grads, layers):
            fmt = layout(tuple(act.shape), hw, meta, layer, name) if act.ndim == 4 else 'tokens'

            def convert(t: Tensor, fmt: str = fmt) -> Tensor:
                return to_nchw(t, hw, meta, fmt)

            nchw = convert(act)
            caps.append(Capture(model, images, nchw if self.differentiable else nchw.detach(),
                                None if grad is None else convert(grad if keep_graph else grad.detach()),
                                logits, None if score is None else score.classes, score, layer, name, fmt,
                                act, grad, convert, calls[name]))
        return caps
