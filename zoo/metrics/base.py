"""The shared machinery of the explanation metrics (registry ``EXPLANATION_METRICS``).

Every metric is built from a config dict and called the same way::

    metric = build_explanation_metric(dict(type='Insertion', step=224))      # or an alias: 'insertion'
    result = metric(model, images, maps, targets=None, masks=None, boxes=None)
    result.per_sample, result.aggregate, result.curve, result.conventions

* ``model``: any ``nn.Module`` whose ``model(images)`` returns logits ``[B, num_classes]`` (run in eval mode, no
  gradient; every module's mode is restored afterwards).
* ``images``: what the model consumes, i.e. **normalised** float ``[B, C, H, W]``. Substrates such as
  ``'zeros'`` are therefore zeros *in normalised space* (RISE's convention: the normalisation mean colour).
* ``maps``: saliency ``[B, h, w]``; resized bilinearly (half-pixel centres) to ``H × W`` when ``h, w`` differ.
* ``targets``: ground-truth classes (int or ``[B]``); used when ``scored_class='target'`` and to group
  per-class averages. ``masks`` (bool ``[B, H, W]``; integer masks count where non-zero, float masks in [0, 1] where
  >= 0.5, see :func:`as_bool_masks`) and ``boxes`` (``[B, 4]`` x1, y1, x2, y2 in pixels, x2/y2
  exclusive edges) describe the object; an empty mask or a box without area means "no object".

A metric states its conventions as constructor fields; :meth:`ExplanationMetric.conventions` lists them and
every :class:`MetricResult` carries them, so that a number never travels without the way it was computed.

Example:
    >>> import torch
    >>> from zoo.metrics import build_explanation_metric
    >>> pg = build_explanation_metric('pointing_game', tolerance=0)
    >>> masks = torch.zeros(1, 8, 8, dtype=torch.bool); masks[0, 2:4, 2:4] = True
    >>> maps = torch.zeros(1, 8, 8); maps[0, 3, 3] = 1.0
    >>> r = pg(None, torch.zeros(1, 3, 8, 8), maps, targets=0, masks=masks)
    >>> r.aggregate, r.conventions['tolerance']
    (1.0, 0)
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from registry import EXPLANATION_METRICS
from registry.aliases import alias_table, build_from_alias, resolve_alias
from registry.errors import ConfigError, DataError
from zoo.ops.modules import eval_mode, forward_logits, model_device
from zoo.ops.tensors import as_class_indices, resize_maps


def to_plain(v: Any) -> Any:
    """JSON-ready copy: tensors and arrays as lists, ``NaN`` as ``None``, mapping keys as strings."""
    if isinstance(v, Tensor) or hasattr(v, 'tolist'):
        return to_plain(v.tolist())
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (list, tuple)):
        return [to_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): to_plain(x) for k, x in v.items()}
    return v


Targets = int | Tensor | list | None


@dataclass
class MetricResult:
    """What a metric returns.

    Attributes:
        name: the metric's short name (``'insertion'``).
        per_sample: float ``[B]`` on the CPU (float64 where computed so); ``NaN`` marks a sample the metric
            excludes (e.g. no object).
        aggregate: the reported number over this batch (see the metric: a mean, or a mean of per-class means).
        curve: ``[B, T]`` per-sample curves (insertion/deletion scores per step, ROAD per percentile, ...) or
            ``None``; ``curve_x`` (``[T]``) gives their x values.
        conventions: the metric's fields (``type`` included) with the values resolved for this call.
        classes: ``[B]`` the class each sample was scored or grouped under.
        higher_is_better: direction of ``per_sample`` and ``aggregate``.
        extras: anything else worth keeping (excluded counts, per-class values, partial curves).
    """

    name: str
    per_sample: Tensor
    aggregate: float
    curve: Tensor | None
    conventions: dict[str, Any]
    curve_x: Tensor | None = None
    classes: Tensor | None = None
    higher_is_better: bool = True
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_excluded(self) -> int:
        return int(torch.isnan(self.per_sample).sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists instead of tensors, ``NaN`` as ``None``."""
        return to_plain(dict(name=self.name, aggregate=self.aggregate, per_sample=self.per_sample,
                             n_excluded=self.n_excluded, higher_is_better=self.higher_is_better,
                             conventions=self.conventions, classes=self.classes, curve_x=self.curve_x,
                             curve=self.curve, extras=self.extras))


def class_scores(model: nn.Module, images: Tensor, classes: Tensor, use_softmax: bool,
                 batch_size: int) -> Tensor:
    """The score (softmax probability or logit) of ``classes[i]`` for ``images[i]``, in chunks of ``batch_size``."""
    out = []
    for start in range(0, images.shape[0], batch_size):
        logits = forward_logits(model, images[start:start + batch_size], check_finite=False)
        scores = logits.softmax(1) if use_softmax else logits
        out.append(scores.gather(1, classes[start:start + batch_size, None])[:, 0])
    return torch.cat(out) if out else images.new_zeros(0)


def box_masks(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Boxes ``[B, 4]`` (x1, y1, x2, y2 pixels) → bool ``[B, H, W]``: pixels whose centre lies inside the box.

    Example:
        >>> box_masks(torch.tensor([[1., 0., 3., 2.]]), (3, 4)).int()[0].tolist()
        [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    h, w = size
    boxes = boxes.float().reshape(-1, 4)
    ys = torch.arange(h, device=boxes.device, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=boxes.device, dtype=torch.float32) + 0.5
    inx = (xs[None] >= boxes[:, 0:1]) & (xs[None] <= boxes[:, 2:3])
    iny = (ys[None] >= boxes[:, 1:2]) & (ys[None] <= boxes[:, 3:4])
    return iny[:, :, None] & inx[:, None, :]


def tight_boxes(masks: Tensor) -> Tensor:
    """Bool masks ``[B, H, W]`` → their tight boxes ``[B, 4]`` (x2, y2 exclusive); zeros for an empty mask."""
    b, h, w = masks.shape
    rows, cols = masks.any(2), masks.any(1)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y1 = torch.where(rows, ar_h, h).min(1).values
    y2 = torch.where(rows, ar_h + 1, 0).max(1).values
    x1 = torch.where(cols, ar_w, w).min(1).values
    x2 = torch.where(cols, ar_w + 1, 0).max(1).values
    out = torch.stack([x1, y1, x2, y2], 1).float()
    return torch.where(masks.flatten(1).any(1)[:, None], out, torch.zeros_like(out))


def as_bool_masks(masks: Any, metric: str) -> Tensor:
    """Object masks as bool: bool masks as they are, integer masks where non-zero (0/1 or 0/255), float masks in
    ``[0, 1]`` where ``>= 0.5`` (a soft mask is thresholded, never read as "non-zero"); other floats are an error.

    Example:
        >>> as_bool_masks(torch.tensor([[0.1, 0.6], [0.0, 1.0]]), 'PointingGame').tolist()
        [[False, True], [False, True]]
    """
    masks = torch.as_tensor(masks)
    if masks.dtype == torch.bool:
        return masks
    if masks.is_floating_point():
        if masks.numel() and not bool(((masks >= 0) & (masks <= 1)).all()):
            lo, hi = float(masks.nan_to_num(0).min()), float(masks.nan_to_num(0).max())
            raise DataError(f'{metric}: float masks must hold values in [0, 1] (thresholded at 0.5), got values in '
                            f'[{lo:g}, {hi:g}] (or NaN). Pass bool masks, or scale them to [0, 1].')
        return masks >= 0.5
    if masks.is_complex():
        raise DataError(f'{metric}: masks must be bool, integer or float, got {masks.dtype}.')
    return masks != 0


def object_regions(region: str, size: tuple[int, int], masks: Tensor | None, boxes: Tensor | None,
                   metric: str) -> Tensor:
    """Bool ``[B, H, W]`` object regions from masks (``region='mask'``) or boxes (``region='box'``).

    ``'box'`` uses ``boxes``, or the masks' tight boxes when only masks are given. An empty region (empty mask, box
    without area, NaN box) means the sample has no object.
    """
    if region == 'mask':
        if masks is None:
            raise ConfigError(f"{metric} with region='mask' needs masks (bool [B, H, W]); none were given. Pass "
                              "masks, or set region='box' and pass boxes.")
        masks = as_bool_masks(masks, metric)
        if masks.ndim == 2:
            masks = masks[None]
        if tuple(masks.shape[-2:]) != tuple(size):
            raise DataError(f'{metric}: masks are {tuple(masks.shape[-2:])} but the images are {tuple(size)}; '
                            'masks must be at the image resolution.')
        return masks
    if region == 'box':
        if boxes is None:
            if masks is None:
                raise ConfigError(f"{metric} with region='box' needs boxes ([B, 4] x1, y1, x2, y2) or masks.")
            return box_masks(tight_boxes(as_bool_masks(masks, metric)), size)
        boxes = torch.as_tensor(boxes).float().reshape(-1, 4)
        return box_masks(torch.nan_to_num(boxes, nan=0.0), size)
    raise ConfigError(f"{metric}: region must be 'mask' or 'box', got {region!r}.")


def descending_order(maps: Tensor) -> Tensor:
    """Pixel indices ``[B, H*W]`` by decreasing saliency; equal values keep row-major order (deterministic)."""
    return torch.sort(maps.flatten(1), dim=1, descending=True, stable=True).indices


class ExplanationMetric:
    """Base of every explanation metric: ``metric(model, images, maps, targets, masks, boxes)`` → :class:`MetricResult`.

    Subclasses set ``name`` (short key), ``higher_is_better``, ``needs_model``, and implement :meth:`compute`;
    :meth:`reduce` turns per-sample values (of any number of batches) into the reported number.
    """

    name: ClassVar[str] = 'metric'
    aliases: ClassVar[tuple[str, ...]] = ()
    higher_is_better: ClassVar[bool] = True
    needs_model: ClassVar[bool] = True

    def conventions(self) -> dict[str, Any]:
        """The constructor fields and their values (with ``type``): how a number from this metric was computed."""
        params = inspect.signature(type(self)).parameters
        out: dict[str, Any] = {'type': type(self).__name__}
        for k in params:
            if hasattr(self, k):
                v = getattr(self, k)
                out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def __repr__(self) -> str:
        cfg = self.conventions()
        return f"{cfg.pop('type')}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"

    def __call__(self, model: nn.Module | None, images: Tensor, maps: Tensor, targets: Targets = None,
                 masks: Tensor | None = None, boxes: Tensor | None = None) -> MetricResult:
        images, maps = self.check(model, images, maps)
        device = images.device
        t = as_class_indices(targets, images.shape[0], device)
        masks = None if masks is None else torch.as_tensor(masks).to(device)
        boxes = None if boxes is None else torch.as_tensor(boxes).to(device)
        with eval_mode(model):
            return self.compute(model, images, maps, t, masks, boxes)

    def check(self, model: nn.Module | None, images: Any, maps: Any) -> tuple[Tensor, Tensor]:
        """Validate shapes; move images and maps to the model's device; maps float at image resolution."""
        if self.needs_model and model is None:
            raise ConfigError(f'{type(self).__name__} scores model outputs: pass the model (got None).')
        if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise DataError(f'{type(self).__name__}: images must be normalised float [B, C, H, W], got {shape}.')
        maps = torch.as_tensor(maps)
        if maps.ndim == 4 and maps.shape[1] == 1:
            maps = maps[:, 0]
        if images.shape[0] == 0:
            raise DataError(f'{type(self).__name__}: the batch is empty (images of shape {tuple(images.shape)}); pass '
                            'at least one image.')
        if maps.ndim != 3 or maps.shape[0] != images.shape[0]:
            raise DataError(f'{type(self).__name__}: maps must be [B, h, w] with B = {images.shape[0]} (one map per '
                            f'image), got shape {tuple(maps.shape)}.')
        device = model_device(model, images.device)
        images = images.detach().to(device)
        maps = resize_maps(maps.detach().to(device).float(), tuple(images.shape[-2:]))
        if not bool(torch.isfinite(maps).all()):
            raise DataError(f'{type(self).__name__}: maps contain NaN or Inf values.')
        return images, maps

    def compute(self, model: nn.Module | None, images: Tensor, maps: Tensor, targets: Tensor | None,
                masks: Tensor | None, boxes: Tensor | None) -> MetricResult:
        raise NotImplementedError

    def reduce(self, per_sample: Tensor, classes: Tensor | None = None) -> float:
        """The reported number from per-sample values (NaN = excluded): their mean."""
        valid = per_sample[~torch.isnan(per_sample)]
        return float(valid.double().mean()) if valid.numel() else float('nan')

    def result(self, per_sample: Tensor, curve: Tensor | None = None, curve_x: Tensor | None = None,
               classes: Tensor | None = None, **extras: Any) -> MetricResult:
        per_sample = per_sample.detach().cpu()
        per_sample = per_sample if per_sample.is_floating_point() else per_sample.float()
        classes = None if classes is None else classes.detach().cpu()
        return MetricResult(name=self.name, per_sample=per_sample, aggregate=self.reduce(per_sample, classes),
                            curve=None if curve is None else curve.detach().float().cpu(),
                            curve_x=None if curve_x is None else curve_x.detach().float().cpu(),
                            conventions=self.conventions(), classes=classes,
                            higher_is_better=self.higher_is_better, extras=extras)


class ScoredMetric(ExplanationMetric):
    """A metric that scores one class per image: ``scored_class`` and ``use_softmax`` fields and their helpers."""

    def __init__(self, scored_class: str = 'predicted', use_softmax: bool = True, batch_size: int = 64) -> None:
        if scored_class not in ('predicted', 'target'):
            raise ConfigError(f"{type(self).__name__}: scored_class must be 'predicted' (the model's top-1 on the "
                              f"original image) or 'target' (the given ground truth), got {scored_class!r}.")
        if int(batch_size) < 1:
            raise ConfigError(f'{type(self).__name__}: batch_size must be >= 1, got {batch_size}.')
        self.scored_class = scored_class
        self.use_softmax = bool(use_softmax)
        self.batch_size = int(batch_size)

    def scored(self, model: nn.Module, images: Tensor, targets: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(classes [B], scores of those classes on the original images [B])``."""
        step = self.batch_size
        chunks = [forward_logits(model, images[s:s + step], check_finite=False)
                  for s in range(0, images.shape[0], step)]
        logits = torch.cat(chunks)
        classes = self.choose_classes(logits, targets)
        scores = logits.softmax(1) if self.use_softmax else logits
        return classes, scores.gather(1, classes[:, None])[:, 0]

    def choose_classes(self, outputs: Tensor, targets: Tensor | None) -> Tensor:
        """The scored classes ``[B]`` given the model outputs ``[B, K]`` (logits or probabilities) on the images."""
        if self.scored_class == 'predicted':
            return outputs.argmax(1)
        if targets is None:
            raise ConfigError(f"{type(self).__name__} with scored_class='target' needs targets (the ground-truth "
                              "classes); none were given.")
        if bool(((targets < 0) | (targets >= outputs.shape[1])).any()):
            raise ConfigError(f'a target class is out of range for a model with {outputs.shape[1]} classes.')
        return targets


def list_explanation_metrics() -> dict[str, str]:
    """``{alias: registered name}`` for every registered explanation metric (plugins included)."""
    return alias_table(EXPLANATION_METRICS,
                       lambda name, cls: (getattr(cls, 'name', None), *getattr(cls, 'aliases', ()), name))


def resolve_metric_name(name: str) -> str:
    """The registered name for an alias (``'pointing_game'``, ``'ebpg'``) or registered name."""
    return resolve_alias(EXPLANATION_METRICS, name, list_explanation_metrics(), 'explanation metric')


def build_explanation_metric(name_or_cfg: str | Mapping[str, Any] | ExplanationMetric,
                             **kwargs: Any) -> ExplanationMetric:
    """A metric from an alias, a registered name or a config dict; ``kwargs`` override config fields.

    Example:
        >>> build_explanation_metric('deletion', step=16).conventions()['step']
        16
    """
    return build_from_alias(EXPLANATION_METRICS, name_or_cfg, list_explanation_metrics(), 'explanation metric',
                            ExplanationMetric, **kwargs)
