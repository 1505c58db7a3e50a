"""Average Drop and Increase in Confidence (Chattopadhay et al., Grad-CAM++, WACV 2018; as L-CAM uses them).

With ``Y_i`` the score of class ``c`` on image ``i`` and ``O_i`` its score on the *explanation image* (the image
multiplied by its min-max-normalised map):

* Average Drop ``= 100 · mean_i max(0, Y_i − O_i) / Y_i`` (lower is better);
* Increase in Confidence ``= 100 · mean_i 1[O_i > Y_i]`` (higher is better).

Defaults follow L-CAM (``bmezaris/L-CAM``): the predicted class, softmax probabilities, and the map multiplies the
image **in pixel space** (``multiply='pixels'``: un-normalise with ``model.data_preprocessor`` mean/std, multiply,
normalise again, so that removed pixels are black). ``multiply='normalized'`` multiplies the normalised tensor, as
``pytorch_grad_cam.metrics.cam_mult_image`` does. ``keep_top=p`` keeps the map only on its ``p`` share of most
salient pixels (the rest set to 0; ties by row-major order), L-CAM's ``--percentage 1 - p``.

Example:
    >>> import timm, torch
    >>> from zoo.metrics import AverageDrop
    >>> model = timm.create_model('test_resnet', pretrained=False, num_classes=3)
    >>> r = AverageDrop(multiply='normalized')(model, torch.randn(2, 3, 16, 16), torch.ones(2, 16, 16))
    >>> r.per_sample.tolist()        # a map of ones leaves the image unchanged
    [0.0, 0.0]
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from registry import EXPLANATION_METRICS
from registry.errors import ConfigError

from .base import MetricResult, ScoredMetric, class_scores, descending_order


def minmax(maps: Tensor) -> Tensor:
    """Each map of ``[B, H, W]`` scaled to [0, 1]; a constant map is only clipped to [0, 1] (zeros stay zeros)."""
    flat = maps.flatten(1)
    low = flat.min(1).values[:, None, None]
    rng = flat.max(1).values[:, None, None] - low
    ok = rng > 0
    return torch.where(ok, (maps - low) / torch.where(ok, rng, torch.ones_like(rng)), maps.clamp(0, 1))


class _ConfidenceMetric(ScoredMetric):
    def __init__(self, scored_class: str = 'predicted', use_softmax: bool = True, multiply: str = 'pixels',
                 keep_top: float | None = None, normalize_map: bool = True, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, batch_size: int = 64) -> None:
        super().__init__(scored_class=scored_class, use_softmax=use_softmax, batch_size=batch_size)
        if multiply not in ('pixels', 'normalized'):
            raise ConfigError(f"{type(self).__name__}: multiply must be 'pixels' (L-CAM: the image in pixel space "
                              f"times the map) or 'normalized' (grad-cam), got {multiply!r}.")
        if keep_top is not None and not 0 < float(keep_top) <= 1:
            raise ConfigError(f'{type(self).__name__}: keep_top is the share of pixels kept, in (0, 1]; got '
                              f'{keep_top}.')
        self.multiply = multiply
        self.keep_top = None if keep_top is None else float(keep_top)
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

    def explanation_images(self, model: nn.Module, images: Tensor, maps: Tensor) -> Tensor:
        """The images multiplied by their maps (after min-max and ``keep_top``), back in normalised space."""
        m = minmax(maps) if self.normalize_map else maps
        if self.keep_top is not None:
            b, hw = m.shape[0], m[0].numel()
            n_keep = max(1, round(self.keep_top * hw))
            keep = torch.zeros(b, hw, dtype=torch.bool, device=m.device)
            keep.scatter_(1, descending_order(m)[:, :n_keep], True)
            m = m * keep.view_as(m)
        m = m[:, None]
        if self.multiply == 'normalized':
            return images * m
        mean, std = self._mean_std(model, images)
        return ((images * std + mean) * m - mean) / std

    def confidences(self, model: nn.Module, images: Tensor, maps: Tensor,
                    targets: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """``(classes, Y: scores on the images, O: scores on the explanation images)``."""
        classes, y = self.scored(model, images, targets)
        o = class_scores(model, self.explanation_images(model, images, maps), classes, self.use_softmax,
                         self.batch_size)
        return classes, y, o


@EXPLANATION_METRICS.register_module()
class AverageDrop(_ConfidenceMetric):
    """Average Drop in percent: ``100 · max(0, Y − O) / Y`` per image, averaged (lower is better).

    Args:
        scored_class: ``'predicted'`` (default, L-CAM) or ``'target'``.
        use_softmax: probabilities (default; the definition assumes them) or logits.
        multiply: ``'pixels'`` (default, L-CAM) or ``'normalized'`` (grad-cam's ``cam_mult_image``).
        keep_top: keep only this share of most salient pixels of the map (``None``: the whole map).
        normalize_map: min-max each map to [0, 1] first (default, as L-CAM).
        mean, std: 0-255 normalisation for ``multiply='pixels'`` (default: ``model.data_preprocessor``'s).
        batch_size: images per forward pass (speed only).
    """

    name = 'average_drop'
    aliases = ('ad', 'drop')
    higher_is_better = False

    def compute(self, model: nn.Module, images: Tensor, maps: Tensor, targets: Tensor | None,
                masks: Tensor | None, boxes: Tensor | None) -> MetricResult:
        classes, y, o = self.confidences(model, images, maps, targets)
        drop = 100 * (y - o).clamp(min=0) / y
        return self.result(drop, classes=classes, score=y.cpu(), explanation_score=o.cpu())


@EXPLANATION_METRICS.register_module()
class IncreaseInConfidence(_ConfidenceMetric):
    """Increase in Confidence in percent: ``100 · 1[O > Y]`` per image, averaged (higher is better).

    Same fields as :class:`AverageDrop`.
    """

    name = 'increase_in_confidence'
    aliases = ('ic', 'increase')

    def compute(self, model: nn.Module, images: Tensor, maps: Tensor, targets: Tensor | None,
                masks: Tensor | None, boxes: Tensor | None) -> MetricResult:
        classes, y, o = self.confidences(model, images, maps, targets)
        return self.result(100 * (o > y).float(), classes=classes, score=y.cpu(), explanation_score=o.cpu())
