"""Localisation metrics: pointing game, energy-based pointing game and the mask coverage curve.

* :class:`PointingGame` (Zhang et al., ECCV 2016): the map's maximum is a hit when an object pixel lies closer than
  ``tolerance`` pixels (Euclidean, strictly, as TorchRay), or under the point itself. Two conventions, each a preset
  of four switches (recorded in every result's conventions):

  ====================  ==================================================  ===========================================
  switch                ``convention='torchray'`` (default)                  ``convention='quantus'`` (quantus 0.6)
  ====================  ==================================================  ===========================================
  ``tolerance``         15 px                                                0 (the pixel itself)
  ``ties``              ``'first'``: the first maximum in row-major order   ``'any'``: any pixel equal to the maximum
  ``empty``             ``'exclude'``: no object → NaN, not averaged         ``'hit'``: no object counts as a hit
  ``per_class``         mean per class, then over the classes that occur     plain mean over samples
  ====================  ==================================================  ===========================================

  TorchRay averages over *all* classes of its dataset, counting an absent class as 0; ``'miss'`` is a third
  ``empty`` choice. Explicit switches override the preset.
* :class:`EnergyPointingGame` (Score-CAM §4.3; quantus ``RelevanceMassAccuracy``): the share of saliency inside the
  object, ``Σ_region L / Σ L``. With ``clamp_negative=True`` (default) ``L = max(map, 0)`` and a map without positive
  mass scores 0; ``False`` uses the signed map as Quantus does (the share may leave [0, 1]).
* :class:`MaskCoverage`: that share when only the pixels at or above the map's ``q``-th percentile are kept, for
  each ``q`` in ``percentiles``; ``q = 0`` is the energy pointing game on the same region.

Samples without an object (empty mask, box without area) are excluded (except with the pointing game's
``empty='hit'``/``'miss'``): their ``per_sample`` is NaN and ``extras['n_excluded']`` counts them. All three use
the object mask (``region='mask'``) or box (``region='box'``); the pointing game and the coverage curve default to
the mask when masks are given, else the box (``'auto'``), the energy pointing game to the box (Score-CAM); the
region used is recorded in the result's conventions.

Example:
    >>> import torch
    >>> from zoo.metrics import EnergyPointingGame
    >>> maps = torch.zeros(1, 4, 4); maps[0, :2, :2] = 1.0; maps[0, 3, 3] = 1.0
    >>> EnergyPointingGame()(None, torch.zeros(1, 3, 4, 4), maps, boxes=torch.tensor([[0., 0., 2., 2.]])).aggregate
    0.8
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from registry import EXPLANATION_METRICS
from registry.errors import ConfigError
from zoo.ops.modules import forward_logits

from .base import ExplanationMetric, MetricResult, object_regions


class _RegionMetric(ExplanationMetric):
    needs_model = False
    default_region = 'auto'

    def __init__(self, region: str | None = None) -> None:
        region = self.default_region if region is None else region
        if region not in ('mask', 'box', 'auto'):
            raise ConfigError(f"{type(self).__name__}: region must be 'mask', 'box' or 'auto' (the mask when masks "
                              f'are given, else the box), got {region!r}.')
        self.region = region

    def regions(self, images: Tensor, masks: Tensor | None, boxes: Tensor | None) -> tuple[Tensor, Tensor, str]:
        """``(regions bool [B, H, W], has_object bool [B], the region used: 'mask' or 'box')``."""
        region = self.region if self.region != 'auto' else ('mask' if masks is not None or boxes is None else 'box')
        reg = object_regions(region, tuple(images.shape[-2:]), masks, boxes, type(self).__name__)
        if reg.shape[0] != images.shape[0]:
            raise ConfigError(f'{type(self).__name__}: {reg.shape[0]} {region}s for {images.shape[0]} images.')
        return reg, reg.flatten(1).any(1), region

    def result(self, per_sample: Tensor, region: str = 'mask', **kwargs: Any) -> MetricResult:
        res = super().result(per_sample, **kwargs)
        res.conventions['region'] = region
        return res

    def groups(self, model: nn.Module | None, images: Tensor, targets: Tensor | None) -> Tensor | None:
        """Classes to group per-class averages by: the targets, else the model's prediction, else none."""
        if targets is not None:
            return targets
        if model is not None:
            return forward_logits(model, images, check_finite=False).argmax(1)
        return None


POINTING_CONVENTIONS = {
    'torchray': dict(tolerance=15, ties='first', empty='exclude', per_class=True),
    'quantus': dict(tolerance=0, ties='any', empty='hit', per_class=False),
}


def dilate(regions: Tensor, tolerance: float) -> Tensor:
    """Bool ``[B, H, W]``: pixels closer than ``tolerance`` (strictly, Euclidean) to a region pixel, or in it."""
    r = max(0, math.ceil(tolerance) - 1)
    if r == 0:
        return regions
    off = torch.arange(-r, r + 1, device=regions.device, dtype=torch.float32)
    disk = (off[:, None] ** 2 + off[None, :] ** 2) < float(tolerance) ** 2
    hits = F.conv2d(regions[:, None].float(), disk[None, None].float(), padding=r)[:, 0]
    return hits > 0.5


@EXPLANATION_METRICS.register_module()
class PointingGame(_RegionMetric):
    """Pointing game accuracy in [0, 1] (higher is better).

    Args:
        convention: ``'torchray'`` (default) or ``'quantus'``: the preset of the four switches below (see the
            module docstring); a switch given explicitly overrides it.
        tolerance: pixels; a hit when an object pixel is closer than this to the map's maximum (TorchRay: 15).
            ``0`` counts only the pixel under the point.
        ties: ``'first'`` (the first maximum in row-major order is the point) or ``'any'`` (a hit when any pixel
            equal to the maximum is a hit, as Quantus).
        empty: a sample without object: ``'exclude'`` (NaN, not averaged), ``'hit'`` (Quantus) or ``'miss'``.
        per_class: average per class (grouped by ``targets``, else the predicted class), then over classes;
            ``False``: the plain mean over samples.
        region: ``'mask'``, ``'box'`` or ``'auto'`` (default: the mask when masks are given, else the box; the
            region used is recorded in the result's conventions).
    """

    name = 'pointing_game'
    aliases = ('pg', 'pointing')

    def __init__(self, tolerance: float | None = None, region: str | None = None, per_class: bool | None = None,
                 ties: str | None = None, empty: str | None = None, convention: str = 'torchray') -> None:
        super().__init__(region)
        if convention not in POINTING_CONVENTIONS:
            raise ConfigError(f"PointingGame: convention must be one of {', '.join(POINTING_CONVENTIONS)}, got "
                              f'{convention!r}.')
        preset = POINTING_CONVENTIONS[convention]
        tolerance = preset['tolerance'] if tolerance is None else tolerance
        ties = preset['ties'] if ties is None else ties
        empty = preset['empty'] if empty is None else empty
        if tolerance < 0:
            raise ConfigError(f'PointingGame: tolerance (pixels) must be >= 0, got {tolerance}.')
        if ties not in ('first', 'any'):
            raise ConfigError(f"PointingGame: ties must be 'first' (first maximum, row-major) or 'any' (any tied "
                              f'maximum), got {ties!r}.')
        if empty not in ('exclude', 'hit', 'miss'):
            raise ConfigError(f"PointingGame: empty must be 'exclude', 'hit' or 'miss', got {empty!r}.")
        self.convention = convention
        self.tolerance = tolerance
        self.ties, self.empty = ties, empty
        self.per_class = bool(preset['per_class'] if per_class is None else per_class)

    def points(self, maps: Tensor) -> Tensor:
        """``[B, 2]`` (y, x) of each map's maximum (the first one in row-major order)."""
        idx = maps.flatten(1).argmax(1)
        return torch.stack([idx // maps.shape[-1], idx % maps.shape[-1]], 1)

    def compute(self, model: nn.Module | None, images: Tensor, maps: Tensor, targets: Tensor | None,
                masks: Tensor | None, boxes: Tensor | None) -> MetricResult:
        reg, has, region = self.regions(images, masks, boxes)
        h, w = maps.shape[-2:]
        pts = self.points(maps)
        extras: dict[str, Any] = {}
        if self.ties == 'first':
            ys = torch.arange(h, device=maps.device, dtype=torch.float32)
            xs = torch.arange(w, device=maps.device, dtype=torch.float32)
            d2 = (ys[None, :, None] - pts[:, 0, None, None]) ** 2 + (xs[None, None, :] - pts[:, 1, None, None]) ** 2
            near = d2 < float(self.tolerance) ** 2
            near.view(len(pts), -1).scatter_(1, (pts[:, 0] * w + pts[:, 1])[:, None], True)
            hit = (reg & near).flatten(1).any(1).float()
            extras['points'] = pts.cpu()
        else:
            flat = maps.flatten(1)
            tied = (flat == flat.amax(1, keepdim=True)).view_as(maps)
            hit = (tied & dilate(reg, self.tolerance)).flatten(1).any(1).float()
            extras['n_tied'] = tied.flatten(1).sum(1).cpu()
        fill = {'exclude': float('nan'), 'hit': 1.0, 'miss': 0.0}[self.empty]
        per_sample = torch.where(has, hit, torch.full_like(hit, fill))
        classes = self.groups(model, images, targets)
        res = self.result(per_sample, region, classes=classes, n_excluded=int((~has).sum()) if self.empty ==
                          'exclude' else 0, n_empty=int((~has).sum()), **extras)
        res.extras['class_accuracy'] = self.class_accuracy(res.per_sample, res.classes)
        return res

    @staticmethod
    def class_accuracy(per_sample: Tensor, classes: Tensor | None) -> dict[int, float]:
        """``{class: hits / (hits + misses)}`` over the samples with an object."""
        if classes is None:
            return {}
        valid = ~torch.isnan(per_sample)
        out = {}
        for c in torch.unique(classes[valid]).tolist():
            sel = valid & (classes == c)
            out[int(c)] = float(per_sample[sel].double().mean())
        return out

    def reduce(self, per_sample: Tensor, classes: Tensor | None = None) -> float:
        """Mean of the per-class accuracies (classes that occur), or the plain mean without classes/per_class."""
        if not self.per_class or classes is None:
            return super().reduce(per_sample, classes)
        acc = self.class_accuracy(per_sample, classes)
        return float(sum(acc.values()) / len(acc)) if acc else float('nan')


@EXPLANATION_METRICS.register_module()
class EnergyPointingGame(_RegionMetric):
    """Energy-based pointing game: share of non-negative saliency inside the object, in [0, 1] (higher is better).

    Args:
        region: ``'box'`` (default, Score-CAM's definition; the masks' tight box when only masks are given) or
            ``'mask'``.
        clamp_negative: count only positive saliency (default; Score-CAM's maps are non-negative); ``False`` sums
            the signed map, as Quantus's ``RelevanceMassAccuracy`` (the share may then leave [0, 1]).
    """

    name = 'energy_pointing_game'
    aliases = ('ebpg', 'energy')
    default_region = 'box'

    def __init__(self, region: str | None = None, clamp_negative: bool = True) -> None:
        super().__init__(region)
        self.clamp_negative = bool(clamp_negative)

    def compute(self, model: nn.Module | None, images: Tensor, maps: Tensor, targets: Tensor | None,
                masks: Tensor | None, boxes: Tensor | None) -> MetricResult:
        reg, has, region = self.regions(images, masks, boxes)
        energy = (maps.clamp(min=0) if self.clamp_negative else maps).flatten(1).double()
        inside = (energy * reg.flatten(1)).sum(1)
        total = energy.sum(1)
        share = torch.where(total != 0, inside / torch.where(total != 0, total, torch.ones_like(total)),
                            torch.zeros_like(total))
        per_sample = torch.where(has, share, torch.full_like(share, float('nan')))
        return self.result(per_sample, region, classes=self.groups(None, images, targets),
                           n_excluded=int((~has).sum()))


@EXPLANATION_METRICS.register_module()
class MaskCoverage(_RegionMetric):
    """Mask coverage curve: share of saliency mass inside the object among the pixels kept above each percentile.

    ``per_sample`` is the mean of the curve over ``percentiles`` (higher is better); ``curve`` is ``[B, Q]`` with
    ``curve_x`` = percentiles / 100.

    Args:
        percentiles: the ``q`` values in [0, 100); the threshold is the map's ``q``-th percentile (linear
            interpolation, as ``numpy.percentile``); pixels at or above it are kept.
        region: ``'mask'``, ``'box'`` or ``'auto'`` (default: the mask when masks are given, else the box).
    """

    name = 'mask_coverage'
    aliases = ('coverage',)

    def __init__(self, percentiles: Sequence[float] = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90),
                 region: str | None = None) -> None:
        super().__init__(region)
        if not percentiles or any(not 0 <= float(q) < 100 for q in percentiles):
            raise ConfigError(f'MaskCoverage: percentiles must be a non-empty list of values in [0, 100), got '
                              f'{percentiles!r}.')
        self.percentiles = tuple(float(q) for q in percentiles)

    def compute(self, model: nn.Module | None, images: Tensor, maps: Tensor, targets: Tensor | None,
                masks: Tensor | None, boxes: Tensor | None) -> MetricResult:
        reg, has, region = self.regions(images, masks, boxes)
        flat = maps.flatten(1).double()
        energy = flat.clamp(min=0)
        q = torch.tensor(self.percentiles, dtype=torch.float64, device=maps.device) / 100
        thresholds = torch.quantile(flat, q, dim=1).T  # [B, Q]
        inside_all = energy * reg.flatten(1)
        kept = [flat >= thresholds[:, j, None] for j in range(len(q))]  # one [B, HW] mask per percentile
        inside = torch.stack([(inside_all * k).sum(1) for k in kept], 1)
        total = torch.stack([(energy * k).sum(1) for k in kept], 1)
        curve = torch.where(total > 0, inside / torch.where(total > 0, total, torch.ones_like(total)),
                            torch.zeros_like(total))
        nan = torch.full_like(curve, float('nan'))
        curve = torch.where(has[:, None], curve, nan)
        return self.result(curve.mean(1), region, curve=curve, curve_x=q, classes=self.groups(None, images, targets),
                           n_excluded=int((~has).sum()))
