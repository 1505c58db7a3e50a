"""Target layers: dotted-name lookup, the model's explain metadata, layouts (NCHW, NHWC, tokens) → NCHW.

Model metadata is read only through attributes (``model.explain_meta``, then timm/torchvision attributes), never by
importing model classes, so these helpers work on any ``nn.Module``. A 4-D output's layout is read from its shape
(:func:`layout`), so channels-last stages (Swin) are never read as NCHW.

Example:
    >>> import timm, torch
    >>> vit = timm.create_model('test_vit', pretrained=False)
    >>> layer, name = get_layer(vit, 'blocks.-1.norm1')
    >>> name
    'blocks.5.norm1'
    >>> meta = layer_meta(vit)
    >>> tuple(to_nchw(torch.zeros(2, 1 + 10 * 10, 64), (160, 160), meta).shape)
    (2, 64, 10, 10)
    >>> layout((2, 7, 7, 768), (224, 224), meta), layout((2, 768, 7, 7), (224, 224), meta)
    ('NHWC', 'NCHW')
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from registry.errors import ConfigError, did_you_mean


def _explain_meta(model: nn.Module) -> dict[str, Any]:
    meta = getattr(model, 'explain_meta', None)
    return dict(meta) if isinstance(meta, dict) else {}


def get_layer(model: nn.Module, target: str | nn.Module | None) -> tuple[nn.Module, str]:
    """The module named by ``target`` (dotted, negative indices allowed) and its canonical name.

    ``None`` takes ``model.explain_meta['target_layer']``; a module is returned as is.
    """
    if isinstance(target, nn.Module):
        name = next((n for n, m in model.named_modules() if m is target), None)
        if name is None:
            raise ConfigError(f'The target layer {type(target).__name__} is not a submodule of the model.')
        return target, name or '<model>'
    if target is None:
        target = _explain_meta(model).get('target_layer')
        if not target:
            tops = ', '.join(n for n, _ in model.named_children()) or 'none'
            raise ConfigError(f'No target layer: pass target_layer=\'<dotted.name>\' (e.g. \'layer4\' or '
                              f"'blocks.-1.norm1'); {type(model).__name__} has no explain_meta to take a "
                              f'default from. Its top-level modules: {tops}.')
    if not isinstance(target, str):
        raise ConfigError(f'target_layer must be a dotted name, a module or None, got {type(target).__name__}.')
    module: nn.Module = model
    done: list[str] = []
    for part in target.split('.') if target else []:
        children = dict(module.named_children())
        child = children.get(part)
        if child is None and part.lstrip('-').isdigit() and isinstance(module, (nn.Sequential, nn.ModuleList)):
            idx = int(part)
            if -len(module) <= idx < len(module):
                child = module[idx]
                part = str(idx % len(module))
        if child is None:
            where = '.'.join(done) or type(model).__name__
            listing = ', '.join(children) or 'none'
            raise ConfigError(f'Target layer {target!r}: {where!r} has no submodule {part!r}.'
                              f'{did_you_mean(part, children)} Its submodules: {listing}.')
        module = child
        done.append(part)
    return module, '.'.join(done)


def get_layers(model: nn.Module, target: Any) -> list[tuple[nn.Module, str]]:
    """:func:`get_layer` for one target or each of a list/tuple of them (grad-cam's ``target_layers``)."""
    if isinstance(target, (list, tuple)):
        if not target:
            raise ConfigError('target_layer is an empty list; give one layer name (or module), or several.')
        found = [get_layer(model, t) for t in target]
        names = [n for _, n in found]
        if len(set(names)) != len(names):
            raise ConfigError(f'target_layer lists a layer twice ({names}); each layer is hooked once.')
        return found
    return [get_layer(model, target)]


@dataclass
class LayerMeta:
    """How to read a target layer's output: patch size, prefix tokens, channel position.

    ``output_fmt`` is the layout the user asked for (it is obeyed); ``declared_fmt`` the one the model declares
    (``explain_meta`` or timm's ``output_fmt``), used only where the shape cannot tell (see :func:`layout`).
    """

    patch_size: tuple[int, int] | None
    num_prefix_tokens: int | None
    output_fmt: str | None = None
    declared_fmt: str | None = None


def layer_meta(model: nn.Module, patch_size: int | Sequence[int] | None = None,
               num_prefix_tokens: int | None = None, output_fmt: str | None = None) -> LayerMeta:
    """Explicit values first, then ``model.explain_meta``, then timm/torchvision attributes."""
    meta = _explain_meta(model)
    if patch_size is None:
        patch_size = meta.get('patch_size')
    if patch_size is None:
        patch_size = getattr(getattr(model, 'patch_embed', None), 'patch_size', None)
    if patch_size is None and isinstance(getattr(model, 'patch_size', None), (int, tuple, list)):
        patch_size = model.patch_size  # torchvision VisionTransformer
    if isinstance(patch_size, int):
        patch_size = (patch_size, patch_size)
    if num_prefix_tokens is None:
        num_prefix_tokens = meta.get('num_prefix_tokens', getattr(model, 'num_prefix_tokens', None))
    declared = meta.get('output_fmt') or getattr(model, 'output_fmt', None)
    declared = str(getattr(declared, 'value', declared)) if declared is not None else None
    return LayerMeta(tuple(int(p) for p in patch_size) if patch_size is not None else None,
                     int(num_prefix_tokens) if num_prefix_tokens is not None else None, output_fmt,
                     declared if declared in ('NCHW', 'NHWC') else None)


MAX_PREFIX_TOKENS = 16
"""Class/register tokens considered when a token grid is inferred without a patch size."""


def token_grid(num_tokens: int, image_hw: tuple[int, int], meta: LayerMeta) -> tuple[int, int, int]:
    """``(prefix, h, w)`` for ``num_tokens`` tokens of an image of size ``image_hw``.

    With a patch size: ``h = H // ph`` (or the ceiling, for padded patch embeddings), the rest being the prefix.
    Without one: the prefix when known, else the patch strides whose grid leaves 0-16 prefix tokens — those dividing
    both sides exactly first — used only when they agree on one grid.
    """
    height, width = image_hw
    prefix = meta.num_prefix_tokens
    if meta.patch_size is not None:
        ph, pw = meta.patch_size
        for h, w in ((height // ph, width // pw), (math.ceil(height / ph), math.ceil(width / pw))):
            p = num_tokens - h * w if prefix is None else prefix
            if p >= 0 and p + h * w == num_tokens:
                return p, h, w
    elif prefix is not None and num_tokens > prefix:
        n = num_tokens - prefix
        h = max(1, round(math.sqrt(n * height / width)))
        if n % h == 0:
            return prefix, h, n // h
    else:
        exact, fits = set(), set()
        for s in range(1, min(height, width) + 1):
            for h, w in ((height // s, width // s), (math.ceil(height / s), math.ceil(width / s))):
                if 0 <= num_tokens - h * w <= MAX_PREFIX_TOKENS and h * w > 0:
                    fits.add((num_tokens - h * w, h, w))
                    if height % s == 0 and width % s == 0:
                        exact.add((num_tokens - h * w, h, w))
        for found in (exact, fits):
            if len(found) == 1:
                return found.pop()
            if found:
                break
    raise ConfigError(f'Cannot lay {num_tokens} tokens onto a patch grid for {height}x{width} images '
                      f'(patch_size={meta.patch_size}, num_prefix_tokens={prefix}). Pass patch_size= and '
                      'num_prefix_tokens= to the explainer (or give the model an explain_meta).')


def plausible_grid(h: int, w: int, image_hw: tuple[int, int]) -> bool:
    """Whether an ``h × w`` map can come from an ``H × W`` image through one integer stride ``s``
    (``|h - H/s| <= 1`` and ``|w - W/s| <= 1``: floor, ceiling or an unpadded border)."""
    height, width = image_hw
    if not (1 <= h <= height and 1 <= w <= width):
        return False
    low = max(1, math.floor(height / (h + 1)))
    high = max(low, math.ceil(height / max(h - 1, 0.5)))
    return any(abs(h - height / s) <= 1 and abs(w - width / s) <= 1 for s in range(low, high + 1))


_CHANNELS_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.modules.pooling._MaxPoolNd,
                   nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
                   nn.modules.pooling._AdaptiveMaxPoolNd, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


def module_layout(layer: nn.Module | None, shape: tuple[int, ...]) -> str | None:
    """What the layer's type says of its 4-D output: convolutions, batch/group norms and poolings write NCHW; a
    ``LayerNorm``/``Linear`` acting on the last dimension writes channels last; anything else says nothing."""
    if isinstance(layer, _CHANNELS_FIRST):
        return 'NCHW'
    if isinstance(layer, nn.LayerNorm) and tuple(layer.normalized_shape) == (shape[-1],):
        return 'NHWC'
    if isinstance(layer, nn.Linear) and layer.out_features == shape[-1]:
        return 'NHWC'
    return None


def layout(shape: tuple[int, ...], image_hw: tuple[int, int], meta: LayerMeta, layer: nn.Module | None = None,
           name: str = '') -> str:
    """``'NCHW'`` or ``'NHWC'`` for a 4-D layer output ``shape`` of ``image_hw`` images.

    The ``output_fmt`` passed to the explainer is obeyed. Otherwise the shape decides: a reading is plausible when
    its ``h × w`` grid comes from the image through one stride (:func:`plausible_grid`); channels-last outputs such
    as torchvision's or timm's Swin ``[B, 7, 7, 768]`` read as NCHW give a 7 × 768 grid, which is not. When both
    readings fit (the channel count equals the grid's sides, e.g. 32 channels on a 32 × 32 grid), the model's declared
    layout, then the layer's type decides, else PyTorch's NCHW. When neither fits (a model that resizes its input),
    the same hints decide, else the explainer refuses rather than guess.
    """
    if meta.output_fmt is not None:
        return meta.output_fmt
    nchw = plausible_grid(shape[2], shape[3], image_hw)
    nhwc = plausible_grid(shape[1], shape[2], image_hw)
    if nchw != nhwc:
        return 'NCHW' if nchw else 'NHWC'
    hint = meta.declared_fmt or module_layout(layer, shape)
    if hint is not None:
        return hint
    if nchw:
        return 'NCHW'
    height, width = image_hw
    raise ConfigError(f'Target layer {name!r} outputs {tuple(shape)} for {height}x{width} images: neither channels '
                      f'first (C={shape[1]}, {shape[2]}x{shape[3]}) nor channels last ({shape[1]}x{shape[2]}, '
                      f"C={shape[3]}) fits the image's grid. Pass output_fmt='NCHW' or output_fmt='NHWC' to the "
                      'explainer.')


def to_nchw(x: Tensor, image_hw: tuple[int, int], meta: LayerMeta, fmt: str | None = None) -> Tensor:
    """A layer output as ``[B, C, h, w]``: NHWC maps permuted, ``[B, N, C]`` tokens laid on the patch grid.

    ``fmt`` is the 4-D layout (see :func:`layout`); ``None`` takes ``meta.output_fmt`` (NCHW when unset).
    """
    if x.ndim == 4:
        return x.permute(0, 3, 1, 2) if (fmt or meta.output_fmt or 'NCHW') == 'NHWC' else x
    if x.ndim == 3:
        prefix, h, w = token_grid(x.shape[1], image_hw, meta)
        return x[:, prefix:].transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)
    raise ConfigError(f'The target layer output has shape {tuple(x.shape)}; explainers need a feature map '
                      '[B, C, h, w] (or NHWC) or tokens [B, N, C]. Pick another layer.')


def channel_dim(x: Tensor, fmt: str) -> int:
    """The channel dimension of a native layer output: 1 for NCHW, the last for NHWC and tokens."""
    return 1 if x.ndim == 4 and fmt == 'NCHW' else x.ndim - 1
