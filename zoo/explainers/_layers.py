"""Target layers: dotted-name lookup, the model's explain metadata, and token → grid reshaping.

Model metadata is read only through attributes (``model.explain_meta``, then timm-style attributes), never by
importing model classes, so these helpers work on any ``nn.Module``.

Example:
    >>> import timm, torch
    >>> vit = timm.create_model('test_vit', pretrained=False)
    >>> layer, name = get_layer(vit, 'blocks.-1.norm1')
    >>> name
    'blocks.5.norm1'
    >>> meta = layer_meta(vit)
    >>> tuple(to_nchw(torch.zeros(2, 1 + 10 * 10, 64), (160, 160), meta).shape)
    (2, 64, 10, 10)
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


@dataclass
class LayerMeta:
    """How to read a target layer's output: patch size, prefix tokens, channel position."""

    patch_size: tuple[int, int] | None
    num_prefix_tokens: int | None
    output_fmt: str


def layer_meta(model: nn.Module, patch_size: int | Sequence[int] | None = None,
               num_prefix_tokens: int | None = None, output_fmt: str | None = None) -> LayerMeta:
    """Explicit values first, then ``model.explain_meta``, then timm attributes, then defaults."""
    meta = _explain_meta(model)
    if patch_size is None:
        patch_size = meta.get('patch_size')
    if patch_size is None:
        patch_size = getattr(getattr(model, 'patch_embed', None), 'patch_size', None)
    if isinstance(patch_size, int):
        patch_size = (patch_size, patch_size)
    if num_prefix_tokens is None:
        num_prefix_tokens = meta.get('num_prefix_tokens', getattr(model, 'num_prefix_tokens', None))
    fmt = output_fmt or meta.get('output_fmt') or getattr(model, 'output_fmt', None) or 'NCHW'
    return LayerMeta(tuple(int(p) for p in patch_size) if patch_size is not None else None,
                     int(num_prefix_tokens) if num_prefix_tokens is not None else None, str(fmt))


def token_grid(num_tokens: int, image_hw: tuple[int, int], meta: LayerMeta) -> tuple[int, int, int]:
    """``(prefix, h, w)`` for ``num_tokens`` tokens of an image of size ``image_hw``."""
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
    raise ConfigError(f'Cannot lay {num_tokens} tokens onto a patch grid for {height}x{width} images '
                      f'(patch_size={meta.patch_size}, num_prefix_tokens={prefix}). Pass patch_size= and '
                      'num_prefix_tokens= to the explainer (or give the model an explain_meta).')


def to_nchw(x: Tensor, image_hw: tuple[int, int], meta: LayerMeta) -> Tensor:
    """A layer output as ``[B, C, h, w]``: NHWC maps permuted, ``[B, N, C]`` tokens laid on the patch grid."""
    if x.ndim == 4:
        return x.permute(0, 3, 1, 2) if meta.output_fmt == 'NHWC' else x
    if x.ndim == 3:
        prefix, h, w = token_grid(x.shape[1], image_hw, meta)
        return x[:, prefix:].transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)
    raise ConfigError(f'The target layer output has shape {tuple(x.shape)}; explainers need a feature map '
                      '[B, C, h, w] (or NHWC) or tokens [B, N, C]. Pick another layer.')
