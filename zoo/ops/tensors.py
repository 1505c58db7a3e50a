"""Tensor helpers shared by explainers, metrics and models: map resizing and scaling, class-index targets, batch
fields. No model knowledge, torch only.

Example:
    >>> import torch
    >>> minmax_normalize(torch.tensor([[[1., 3.], [2., 5.]]])).tolist()
    [[[0.0, 0.5], [0.25, 1.0]]]
    >>> as_class_indices([2, 0], batch=2, device='cpu', num_classes=3).tolist()
    [2, 0]
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from registry.errors import ConfigError

CONSTANT_RTOL = 1e-5
"""A map whose range is below this fraction of its magnitude is constant (float rounding, not signal)."""


def is_constant(maps: Tensor, rtol: float = CONSTANT_RTOL) -> Tensor:
    """Bool ``[B]``: each map's range is tiny against its own magnitude (rounding noise, not structure).

    Relative, so a map that is real but tiny (all values ~1e-15) is not constant, while a constant map that
    picked up 1e-8 of interpolation rounding is.
    """
    flat = maps.flatten(1)
    rng = flat.max(1).values - flat.min(1).values
    scale = flat.abs().max(1).values
    return (rng <= rtol * scale) | (scale == 0) | ~torch.isfinite(rng)


def minmax_normalize(maps: Tensor, constant: Tensor | None = None) -> Tensor:
    """Scale each map of ``[B, H, W]`` to [0, 1]; a constant map becomes all zeros (differentiable).

    ``constant`` (bool ``[B]``) overrides the decision, e.g. when it was taken on the native-resolution maps
    before upsampling (see :func:`is_constant`).
    """
    flat = maps.flatten(1)
    low = flat.min(1).values[:, None, None]
    rng = flat.max(1).values[:, None, None] - low
    flat_const = is_constant(maps) if constant is None else constant.to(maps.device)
    ok = ~flat_const[:, None, None] & (rng > 0)
    return torch.where(ok, (maps - low) / torch.where(ok, rng, torch.ones_like(rng)), torch.zeros_like(maps))


def resize_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear (half-pixel centres, as OpenCV's ``INTER_LINEAR``) resize of ``[B, h, w]`` maps to ``size``;
    unchanged when already that size."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=tuple(size), mode='bilinear', align_corners=False)[:, 0]


def as_class_indices(targets: Any, batch: int, device: torch.device | str,
                     num_classes: int | None = None) -> Tensor | None:
    """``None``, one class index for the batch, or one per image → long ``[B]`` (or ``None``).

    Fractional values (``0.5``), booleans, a wrong count and (with ``num_classes``) out-of-range indices are
    one-line :class:`ConfigError`\\ s — never silently truncated.
    """
    if targets is None:
        return None
    try:
        t = torch.as_tensor(targets, device=device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f'targets must be class indices (an int, or one per image), got '
                          f'{type(targets).__name__}: {str(exc)[:120]}') from None
    if t.dtype == torch.bool:
        raise ConfigError('targets must be class indices, got booleans.')
    if t.is_floating_point() or t.is_complex():
        if t.is_complex() or bool((~torch.isfinite(t)).any()) or bool((t != t.round()).any()):
            raise ConfigError(f'targets must be whole class indices, got {t.flatten()[:4].tolist()}.')
    t = t.long().flatten()
    if t.numel() == 1 and batch > 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ConfigError(f'targets has {t.numel()} entries for a batch of {batch} images. Give one class index '
                          'per image, a single int for all of them, or None for the predicted class.')
    if num_classes is not None:
        bad = (t < 0) | (t >= num_classes)
        if bool(bad.any()):
            raise ConfigError(f'target class {int(t[bad][0])} is out of range: the model predicts {num_classes} '
                              f'classes (valid indices 0..{num_classes - 1}).')
    return t


def stack_field(samples: Sequence[Any], name: str) -> Tensor | None:
    """Stack one field over a batch of data samples; ``None`` if any sample lacks it.

    Example:
        >>> stack_field([{'gt_label': 1}, {'gt_label': 2}], 'gt_label').tolist()
        [1, 2]
    """
    values = [s.get(name) for s in samples]
    if not values or any(v is None for v in values):
        return None
    return torch.stack([torch.as_tensor(v) for v in values])


def targets_or_predicted(targets: Any, logits: Tensor) -> Tensor:
    """Class indices ``[B]`` on the logits' device: ``None`` → the predicted class (argmax), else checked indices."""
    batch, num = logits.shape
    t = as_class_indices(targets, batch, logits.device, num_classes=num)
    return logits.argmax(1) if t is None else t
