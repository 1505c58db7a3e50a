"""Average Drop and Increase in Confidence (Chattopadhay et al., Grad-CAM++, WACV 2018; as L-CAM uses them).

With ``Y_i`` the score of class ``c`` on image ``i`` and ``O_i`` its score on the *explanation image* (the image
multiplied by its min-max-normalised map):

* Average Drop ``= 100 · mean_i max(0, Y_i − O_i) / Y_i`` (lower is better);
* Increase in Confidence ``= 100 · mean_i 1[O_i > Y_i]`` (higher is better).

Defaults follow L-CAM (``bmezaris/L-CAM``): the predicted class, softmax probabilities, and the map multiplies the
image **in pixel space** (``multiply='pixels'``: un-normalise with ``model.data_preprocessor`` mean/std, multiply,
normalise again, so that removed pixels are black). ``multiply='normalized'`` multiplies the normalised tensor, as
``pytorch_grad_cam.metrics.cam_mult_image`` does.

The L-CAM paper's variants: ``keep_top=p`` keeps the map only on its ``p`` share of most salient pixels (the rest
set to 0), L-CAM's ``--percentage 1 - p`` (``drop_Npercent``). Several shares at once, ``keep_top=(1.0, 0.5, 0.15)``
(the paper's 100 %, 50 % and 15 %), score every level from one pass over the originals: ``per_sample`` is the first
level, ``curve`` ``[B, T]`` holds every level (``curve_x`` = the shares) and ``extras['levels']`` their means.
``keep_rule`` decides the pixel count and ties: ``'stable'`` keeps ``round(p · H · W)`` pixels, equal values in
row-major order; ``'lcam'`` is ``drop_Npercent`` exactly (threshold at the ``int(H · W · (1 − p))``-th smallest
value, ``ceil(p · H · W)`` pixels kept, surplus ties at the threshold dropped first in row-major order).

With ground-truth ``targets``, ``extras`` also hold the explained model's top-1/top-5 accuracy (%) on the images
and on the explanation images of the first level (``top1``, ``top5``, ``top1_explanation``, ``top5_explanation``),
as L-CAM's evaluation prints them.

Example:
    >>> import timm, torch
    >>> from zoo.metrics import AverageDrop
    >>> model = timm.create_model('test_resnet', pretrained=False, num_classes=3)
    >>> r = AverageDrop(multiply='normalized')(model, torch.randn(2, 3, 16, 16), torch.ones(2, 16, 16))
    >>> r.per_sample.tolist()        # a map of ones leaves the image unchanged
    [0.0, 0.0]
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from registry import EXPLANATION_METRICS
from registry.errors import ConfigError
from zoo.ops.modules import forward_logits

from .base import MetricResult, ScoredMetric, descending_order


def minmax(maps: Tensor) -> Tensor:
    """Each map of ``[B, H, W]`` scaled to [0, 1]; a constant map is only clipped to [0, 1] (zeros stay zeros)."""
    flat = maps.flatten(1)
    low = flat.min(1).values[:, None, None]
    rng = flat.max(1).values[:, None, None] - low
    ok = rng > 0
    return torch.where(ok, (maps - low) / torch.where(ok, rng, torch.ones_like(rng)), maps.clamp(0, 1))


def keep_top_share(maps: Tensor, share: float, rule: str = 'stable') -> Tensor:
    """``maps`` ``[B, H, W]`` (in [0, 1]) zeroed outside their ``share`` of most salient pixels.

    ``rule='stable'``: the ``round(share · H · W)`` (at least 1) highest values, equal values in row-major order.
    ``rule='lcam'``: L-CAM's ``drop_Npercent(map, 1 - share)`` — values below the ``int(H·W·(1 − share))``-th
    smallest are zeroed; while more than ``ceil(share · H · W)`` positive values remain, values equal to that
    threshold are zeroed first in row-major order.

    Example:
        >>> keep_top_share(torch.tensor([[[0.0, 0.5], [1.0, 0.25]]]), 0.5).tolist()
        [[[0.0, 0.5], [1.0, 0.0]]]
    """
    b, hw = maps.shape[0], maps[0].numel()
    flat = maps.reshape(b, hw)
    if rule == 'stable':
        n_keep = max(1, round(share * hw))
        keep = torch.zeros(b, hw, dtype=torch.bool, device=maps.device)
        keep.scatter_(1, descending_order(maps)[:, :n_keep], True)
        return (flat * keep).view_as(maps)
    drop = 1 - share  # L-CAM's `percentage`, in its own floating-point arithmetic
    kth = int(hw * drop)
    if drop == 0 or kth < 1:
        return maps
    threshold = flat.sort(1).values[:, kth - 1:kth]
    out = torch.where(flat < threshold, torch.zeros_like(flat), flat)
    surplus = (out > 0).sum(1, keepdim=True) - math.ceil((1 - drop) * hw)
    ties = out == threshold
    out = torch.where(ties & (ties.cumsum(1) <= surplus), torch.zeros_like(out), out)
    return out.view_as(maps)


def _topk_hits(logits: Tensor, targets: Tensor, k: int) -> Tensor:
    return (logits.topk(min(k, logits.shape[1]), 1).indices == targets[:, None]).any(1).float() * 100


class _ConfidenceMetric(ScoredMetric):
    def __init__(self, scored_class: str = 'predicted', use_softmax: bool = True, multiply: str = 'pixels',
                 keep_top: float | Sequence[float] | None = None, keep_rule: str = 'stable',
                 normalize_map: bool = True, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, batch_size: int = 64) -> None:
        super().__init__(scored_class=scored_class, use_softmax=use_softmax, batch_size=batch_size)
        if multiply not in ('pixels', 'normalized'):
            raise ConfigError(f"{type(self).__name__}: multiply must be 'pixels' (L-CAM: the image in pixel space "
                              f"times the map) or 'normalized' (grad-cam), got {multiply!r}.")
        if keep_rule not in ('stable', 'lcam'):
            raise ConfigError(f"{type(self).__name__}: keep_rule must be 'stable' (round(p·H·W) pixels, ties in "
                              f"row-major order) or 'lcam' (L-CAM's drop_Npercent), got {keep_rule!r}.")
        levels = [keep_top] if keep_top is None or not isinstance(keep_top, Sequence) else list(keep_top)
        if not levels:
            raise ConfigError(f'{type(self).__name__}: keep_top is an empty list; give shares such as [1.0, 0.5, '
                              '0.15], one share, or None (the whole map).')
        for level in levels:
            if level is not None and (isinstance(level, bool) or not isinstance(level, (int, float))
                                      or not 0 < float(level) <= 1):
                raise ConfigError(f'{type(self).__name__}: keep_top is the share of pixels kept, in (0, 1] (or a '
                                  f'list of shares); got {keep_top!r}.')
        self.levels = [None if v is None else float(v) for v in levels]
        self.keep_top = self.levels[0] if len(self.levels) == 1 else list(self.levels)
        self.keep_rule = keep_rule
        self.multiply = multiply
        self.normalize_map = bool(normalize_map)
        self.mean = None if mean is None else [float(v) for v in mean]
        self.std = None if std is None else [float(v) for v in std]

    def _mean_std(self, model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
        pre = getattr(model, 'data_preprocessor', None)
        mean = self.mean if self.mean is not None else getattr(pre, 'mean', None)
        std = self.std if self.std is not None else getattr(pre, 'std', None)
        if mean is None or std is None:
            raise ConfigError(f"{type(self).__name__} with multiply='pixels' needs the normalisation mean/std: the "
                              'model has no data_preprocessor with mean/std. Pass mean=[...] and std=[...] (0-255 '
                              "scale), or use multiply='normalized'.")
        shape = (1, -1, 1, 1)
        return (torch.as_tensor(mean, dtype=images.dtype, device=images.device).reshape(shape),
                torch.as_tensor(std, dtype=images.dtype, device=images.device).reshape(shape))

    def explanation_images(self, model: nn.Module, images: Tensor, maps: Tensor,
                           keep_top: float | None | str = 'first') -> Tensor:
        """The images multiplied by their maps (after min-max and ``keep_top``: the first level unless given),
        back in normalised space."""
        share = self.levels[0] if keep_top == 'first' else keep_top
        m = minmax(maps) if self.normalize_map else maps
        if share is not None:
            m = keep_top_share(m, share, self.keep_rule)
        m = m[:, None]
        if self.multiply == 'normalized':
            return images * m
        mean, std = self._mean_std(model, images)
        return ((images * std + mean) * m - mean) / std

    def _logits(self, model: nn.Module, images: Tensor) -> Tensor:
        step = self.batch_size
        return torch.cat([forward_logits(model, images[s:s + step], check_finite=False)
                          for s in range(0, images.shape[0], step)])

    def confidences(self, model: nn.Module, images: Tensor, maps: Tensor,
                    targets: Tensor | None) -> tuple[Tensor, Tensor, Tensor, dict]:
        """``(classes, Y: scores on the images [B], O: scores on the explanation images [B, levels], extras)``."""
        logits = self._logits(model, images)
        classes = self.choose_classes(logits, targets)

        def score(lg: Tensor) -> Tensor:
            return (lg.softmax(1) if self.use_softmax else lg).gather(1, classes[:, None])[:, 0]

        outs, extras = [], {}
        for i, share in enumerate(self.levels):
            out_logits = self._logits(model, self.explanation_images(model, images, maps, share))
            outs.append(score(out_logits))
            if i == 0 and targets is not None:
                extras.update(top1=_topk_hits(logits, targets, 1), top5=_topk_hits(logits, targets, 5),
                              top1_explanation=_topk_hits(out_logits, targets, 1),
                              top5_explanation=_topk_hits(out_logits, targets, 5))
        return classes, score(logits), torch.stack(outs, 1), extras

    def finish(self, per_level: Tensor, classes: Tensor, y: Tensor, o: Tensor, extras: dict) -> MetricResult:
        """The result: the first level per sample; every level as a curve when there are several."""
        many = len(self.levels) > 1
        info = {k: float(v.mean()) for k, v in extras.items()}
        if many:
            info['levels'] = {('1.0' if v is None else str(v)): float(per_level[:, i].double().mean())
                              for i, v in enumerate(self.levels)}
        xs = torch.tensor([1.0 if v is None else v for v in self.levels]) if many else None
        return self.result(per_level[:, 0], curve=per_level if many else None, curve_x=xs, classes=classes,
                           score=y.cpu(), explanation_score=o[:, 0].cpu(), **info)


@EXPLANATION_METRICS.register_module()
class AverageDrop(_ConfidenceMetric):
    """Average Drop in percent: ``100 · max(0, Y − O) / Y`` per image, averaged (lower is better).

    Args:
        scored_class: ``'predicted'`` (default, L-CAM) or ``'target'``.
        use_softmax: probabilities (default; the definition assumes them) or logits.
        multiply: ``'pixels'`` (default, L-CAM) or ``'normalized'`` (grad-cam's ``cam_mult_image``).
        keep_top: keep only this share of most salient pixels of the map (``None``: the whole map), or a list of
            shares (L-CAM's 100 %, 50 %, 15 %: ``[1.0, 0.5, 0.15]``): the first is reported, all are the curve.
        keep_rule: ``'stable'`` or ``'lcam'`` (``drop_Npercent`` exactly): see :func:`keep_top_share`.
        normalize_map: min-max each map to [0, 1] first (default, as L-CAM).
        mean, std: 0-255 normalisation for ``multiply='pixels'`` (default: ``model.data_preprocessor``'s).
        batch_size: images per forward pass (speed only).
    """

    name = 'average_drop'
    aliases = ('ad', 'drop')
    higher_is_better = False

    def compute(self, model: nn.Module, images: Tensor, maps: Tensor, targets: Tensor | None,
                masks: Tensor | None, boxes: Tensor | None) -> MetricResult:
        classes, y, o, extras = self.confidences(model, images, maps, targets)
        return self.finish(100 * (y[:, None] - o).clamp(min=0) / y[:, None], classes, y, o, extras)


@EXPLANATION_METRICS.register_module()
class IncreaseInConfidence(_ConfidenceMetric):
    """Increase in Confidence in percent: ``100 · 1[O > Y]`` per image, averaged (higher is better).

    Same fields as :class:`AverageDrop`.
    """

    name = 'increase_in_confidence'
    aliases = ('ic', 'increase')

    def compute(self, model: nn.Module, images: Tensor, maps: Tensor, targets: Tensor | None,
                masks: Tensor | None, boxes: Tensor | None) -> MetricResult:
        classes, y, o, extras = self.confidences(model, images, maps, targets)
        return self.finish(100 * (o > y[:, None]).float(), classes, y, o, extras)
