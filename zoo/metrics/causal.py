"""Insertion and Deletion (Petsiuk et al., RISE, BMVC 2018), batched; Overall = Insertion − Deletion.

Pixels are visited by decreasing saliency (ties: row-major order, so results are deterministic). Deletion starts
from the image and replaces ``step`` pixels (all channels) per step by the substrate; insertion starts from the
substrate and copies the image's pixels back. The score of the scored class is recorded before the first and after
every step (``ceil(H*W / step) + 1`` values) and the area under that curve is the trapezoid rule on [0, 1] with
uniformly spaced points, exactly as RISE's ``auc``: ``(sum(a) - a[0]/2 - a[-1]/2) / (len(a) - 1)``.

Defaults are RISE's (``evaluation.py``/``Evaluation.ipynb``): the predicted class, softmax probability, one image
width of pixels per step (224 at 224 px), insertion from a Gaussian blur (kernel 11, σ 5, per channel, zero
padding), deletion to zeros in normalised space. All (image, step) pairs run through the model in chunks of
``batch_size``, so the whole batch costs ``B * (n_steps + 1) / batch_size`` forward passes; the predicted class
is read from the unperturbed image among them (deletion's first, insertion's last evaluation).

Example:
    >>> import timm, torch
    >>> from zoo.metrics import Insertion, Deletion
    >>> model = timm.create_model('test_resnet', pretrained=False, num_classes=3)
    >>> images, maps = torch.randn(2, 3, 16, 16), torch.rand(2, 16, 16)
    >>> ins = Insertion(step=32)(model, images, maps)
    >>> tuple(ins.curve.shape), 0.0 <= ins.aggregate <= 1.0
    ((2, 9), True)
    >>> round(overall(ins, Deletion(step=32)(model, images, maps)), 6) == round(ins.aggregate - Deletion(
    ...     step=32)(model, images, maps).aggregate, 6)
    True
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from registry import EXPLANATION_METRICS
from registry.errors import ConfigError
from zoo.ops.modules import forward_logits

from .base import MetricResult, ScoredMetric, descending_order

Substrate = str | float


def gaussian_kernel(size: int = 11, sigma: float = 5.0, truncate: float = 4.0) -> Tensor:
    """RISE's ``gkern``: a unit impulse at the centre of a ``size × size`` grid smoothed by a Gaussian of ``sigma``.

    Equal to ``scipy.ndimage.gaussian_filter(delta, sigma)`` (default ``mode='reflect'``, radius
    ``int(truncate * sigma + 0.5)``): because the radius exceeds the grid, mass reflected at the borders stays in the
    kernel, which therefore sums to 1 but is flatter than a truncated Gaussian.

    Example:
        >>> k = gaussian_kernel(11, 5.0)
        >>> tuple(k.shape), round(float(k.sum()), 6)
        ((11, 11), 1.0)
    """
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (offsets / sigma) ** 2)
    g = g / g.sum()
    centre = size // 2
    period = 2 * size
    k1 = torch.zeros(size, dtype=torch.float64)
    for x in range(size):  # output x gathers input x + t, reflected (d c b a | a b c d | d c b a) into the grid
        src = (torch.arange(-radius, radius + 1) + x) % period
        src = torch.where(src >= size, period - 1 - src, src)
        k1[x] = g[src == centre].sum()
    return (k1[:, None] * k1[None, :]).float()


def gaussian_blur(images: Tensor, size: int = 11, sigma: float = 5.0) -> Tensor:
    """Per-channel blur with :func:`gaussian_kernel` and zero padding ``size // 2`` (RISE's insertion substrate)."""
    c = images.shape[1]
    kernel = gaussian_kernel(size, sigma).to(images)
    return F.conv2d(images, kernel.expand(c, 1, size, size), padding=size // 2, groups=c)


class _CausalMetric(ScoredMetric):
    """Insertion/Deletion machinery. Subclasses set ``mode`` (``'insertion'`` or ``'deletion'``)."""

    mode = 'insertion'

    def __init__(self, step: int | None = None, substrate: Substrate = 'blur', scored_class: str = 'predicted',
                 use_softmax: bool = True, blur_size: int = 11, blur_sigma: float = 5.0,
                 substrate_mean: Sequence[float] | None = None, batch_size: int = 64) -> None:
        super().__init__(scored_class=scored_class, use_softmax=use_softmax, batch_size=batch_size)
        if step is not None and int(step) < 1:
            raise ConfigError(f'{type(self).__name__}: step (pixels per step) must be >= 1, got {step}.')
        if isinstance(substrate, str) and substrate not in ('blur', 'zeros', 'mean'):
            raise ConfigError(f"{type(self).__name__}: substrate must be 'blur', 'zeros', 'mean' or a number (a "
                              f'constant in normalised space), got {substrate!r}.')
        if isinstance(substrate, bool) or not isinstance(substrate, (str, int, float)):
            raise ConfigError(f'{type(self).__name__}: substrate must be a string or a number, got {substrate!r}.')
        self.step = None if step is None else int(step)
        self.substrate = substrate if isinstance(substrate, str) else float(substrate)
        self.blur_size, self.blur_sigma = int(blur_size), float(blur_sigma)
        self.substrate_mean = None if substrate_mean is None else [float(v) for v in substrate_mean]

    def make_substrate(self, model: nn.Module, images: Tensor) -> Tensor:
        """What removed pixels become, in the (normalised) space of ``images``."""
        if self.substrate == 'blur':
            return gaussian_blur(images, self.blur_size, self.blur_sigma)
        if self.substrate == 'zeros':
            return torch.zeros_like(images)
        if self.substrate == 'mean':
            pre = getattr(model, 'data_preprocessor', None)
            if pre is None or not hasattr(pre, 'mean') or not hasattr(pre, 'std'):
                raise ConfigError(f"{type(self).__name__}: substrate='mean' converts the dataset mean colour (0-255) "
                                  'with the model.data_preprocessor mean/std, which this model lacks. Use a number '
                                  "(a constant in normalised space) or 'zeros'.")
            mean = pre.mean.to(images).reshape(-1, 1, 1)
            colour = mean if self.substrate_mean is None else torch.as_tensor(
                self.substrate_mean, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
            value = (colour - mean) / pre.std.to(images).reshape(-1, 1, 1)
            return value.expand_as(images[0]).expand_as(images).clone()
        return torch.full_like(images, float(self.substrate))

    def resolved_step(self, images: Tensor) -> int:
        return self.step if self.step is not None else int(images.shape[-1])

    def conventions_for(self, images: Tensor) -> dict:
        h, w = images.shape[-2:]
        step = self.resolved_step(images)
        return dict(step_resolved=step, n_steps=math.ceil(h * w / step), image_size=[int(h), int(w)])

    def compute(self, model: nn.Module, images: Tensor, maps: Tensor, targets: Tensor | None,
                masks: Tensor | None, boxes: Tensor | None) -> MetricResult:
        b, c, h, w = images.shape
        hw = h * w
        step = self.resolved_step(images)
        n = math.ceil(hw / step)
        substrate = self.make_substrate(model, images)
        start, finish = (substrate, images) if self.mode == 'insertion' else (images, substrate)
        start, finish = start.flatten(2), finish.flatten(2)
        rank = torch.empty_like(maps.flatten(1), dtype=torch.long)
        order = descending_order(maps)
        rank.scatter_(1, order, torch.arange(hw, device=maps.device).expand(b, hw))
        changed = torch.arange(n + 1, device=images.device) * step  # pixels already switched at evaluation i
        total = b * (n + 1)
        rows: Tensor | None = None  # the scores of every class for every (image, step)
        for s in range(0, total, self.batch_size):
            k = torch.arange(s, min(s + self.batch_size, total), device=images.device)
            img, i = k // (n + 1), k % (n + 1)
            switched = (rank[img] < changed[i, None])[:, None]  # [k, 1, HW]
            x = torch.where(switched, finish[img], start[img]).view(-1, c, h, w)
            logits = forward_logits(model, x, check_finite=False)
            out = logits.softmax(1) if self.use_softmax else logits
            if rows is None:
                rows = out.new_empty(total, out.shape[1])
            rows[s:s + len(k)] = out
        # the unperturbed image is step 0 of deletion and the last step of insertion: its class needs no extra pass
        original = torch.arange(b, device=images.device) * (n + 1) + (n if self.mode == 'insertion' else 0)
        classes = self.choose_classes(rows[original], targets)
        curve = rows.view(b, n + 1, -1).gather(2, classes[:, None, None].expand(b, n + 1, 1))[..., 0]
        auc = (curve.sum(1) - curve[:, 0] / 2 - curve[:, -1] / 2) / n
        res = self.result(auc, curve=curve, curve_x=torch.linspace(0, 1, n + 1), classes=classes)
        res.conventions.update(self.conventions_for(images))
        return res


@EXPLANATION_METRICS.register_module()
class Insertion(_CausalMetric):
    """Insertion (RISE): area under the score curve as the most salient pixels are copied onto the substrate.

    Higher is better. Args (all recorded in the result's conventions):
        step: pixels switched per step; ``None`` = one image width (RISE: 224 at 224 px, i.e. 224 steps).
        substrate: ``'blur'`` (default, RISE), ``'zeros'`` (0 in normalised space = the normalisation mean colour),
            ``'mean'`` (``substrate_mean``, a 0-255 colour, or the preprocessor mean, normalised with
            ``model.data_preprocessor``), or a number (a constant in normalised space).
        scored_class: ``'predicted'`` (top-1 on the original image, RISE) or ``'target'`` (the given targets).
        use_softmax: score the softmax probability (RISE) or the logit.
        blur_size, blur_sigma: the Gaussian of the ``'blur'`` substrate (RISE: 11, 5).
        batch_size: images per forward pass (speed only).
    """

    name = 'insertion'
    aliases = ('ins',)
    mode = 'insertion'

    def __init__(self, step: int | None = None, substrate: Substrate = 'blur', scored_class: str = 'predicted',
                 use_softmax: bool = True, blur_size: int = 11, blur_sigma: float = 5.0,
                 substrate_mean: Sequence[float] | None = None, batch_size: int = 64) -> None:
        super().__init__(step, substrate, scored_class, use_softmax, blur_size, blur_sigma, substrate_mean,
                         batch_size)


@EXPLANATION_METRICS.register_module()
class Deletion(_CausalMetric):
    """Deletion (RISE): area under the score curve as the most salient pixels are replaced by the substrate.

    Lower is better. Same fields as :class:`Insertion`; the default substrate is ``'zeros'`` (RISE).
    """

    name = 'deletion'
    aliases = ('del',)
    higher_is_better = False
    mode = 'deletion'

    def __init__(self, step: int | None = None, substrate: Substrate = 'zeros', scored_class: str = 'predicted',
                 use_softmax: bool = True, blur_size: int = 11, blur_sigma: float = 5.0,
                 substrate_mean: Sequence[float] | None = None, batch_size: int = 64) -> None:
        super().__init__(step, substrate, scored_class, use_softmax, blur_size, blur_sigma, substrate_mean,
                         batch_size)


def overall(insertion: MetricResult | float, deletion: MetricResult | float) -> float:
    """Overall = Insertion − Deletion (as LICO and its response report it); higher is better."""
    ins = insertion.aggregate if isinstance(insertion, MetricResult) else float(insertion)
    dele = deletion.aggregate if isinstance(deletion, MetricResult) else float(deletion)
    return ins - dele
