"""Pixel attributions: Saliency (Simonyan et al., 2014), Integrated Gradients (Sundararajan et al., 2017) and
SmoothGrad (Smilkov et al., 2017). Captum is the reference: ``attribute()`` returns the same ``[B, C, H, W]``
attributions as Captum's ``Saliency(abs=False)``, ``IntegratedGradients`` and ``NoiseTunnel(Saliency)``.

A :class:`PixelExplainer` has two outputs: ``explainer.attribute(model, images, targets)`` → per-channel
attributions ``[B, C, H, W]`` (model state restored, on the images' device), and the usual
``explainer(model, images, targets)`` → maps ``[B, H, W]``, the attributions reduced over channels (``reduce``:
``'max_abs'`` = ``max_c |a|``, Simonyan's saliency; ``'sum_abs'`` = ``Σ_c |a|``; ``'abs_sum'`` = ``|Σ_c a|``, Captum's
``visualize_image_attr(sign='absolute_value')``; ``'sum'`` = ``Σ_c a``, signed) and min-max scaled.

Example:
    >>> import timm, torch
    >>> from zoo.explainers import IntegratedGradients
    >>> model = timm.create_model('test_resnet', pretrained=False, num_classes=3)
    >>> ig = IntegratedGradients(n_steps=8)
    >>> tuple(ig.attribute(model, torch.randn(2, 3, 32, 32), targets=1).shape)
    (2, 3, 32, 32)
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from registry import EXPLAINERS
from registry.errors import ConfigError
from zoo.ops.modules import model_device, model_state

from ._targets import TargetScores, check_targets, target_scores
from .base import Explainer, Targets, check_images, forward_logits
from .scorecam import _positive_int

REDUCTIONS = ('max_abs', 'sum_abs', 'abs_sum', 'sum')
IG_METHODS = ('gausslegendre', 'riemann_trapezoid', 'riemann_left', 'riemann_right', 'riemann_middle')
NOISE_TYPES = ('smoothgrad', 'smoothgrad_sq', 'vargrad')


def reduce_channels(attributions: Tensor, how: str) -> Tensor:
    """``[B, C, H, W]`` → ``[B, H, W]`` (see the module docstring for ``how``)."""
    if how == 'max_abs':
        return attributions.abs().amax(1)
    if how == 'sum_abs':
        return attributions.abs().sum(1)
    if how == 'abs_sum':
        return attributions.sum(1).abs()
    return attributions.sum(1)


def input_gradients(model: nn.Module, x: Tensor, score: TargetScores | Targets, rows: Tensor) -> Tensor:
    """``∇_x`` of the scores of ``x`` ``[n, C, H, W]`` (rows ``rows`` of the batch), one forward and one backward pass.
    ``score`` may be plain targets when ``x`` are the unmodified images (resolved on their logits)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = forward_logits(model, x)
        score = target_scores(score, logits)
        return torch.autograd.grad(score(logits, rows).sum(), x)[0]


class PixelExplainer(Explainer):
    """Base of input-gradient explainers: :meth:`attributions` ``[B, C, H, W]`` reduced over channels.

    Args:
        reduce: channel reduction of the maps (see the module docstring).
        batch_size: images per forward/backward pass (interpolation steps or noise samples × images).
        aug_smooth, normalize, eval_mode: see :class:`~zoo.explainers.base.Explainer` (``resize`` does not apply:
            maps have the input's size).
    """

    default_reduce: ClassVar[str] = 'max_abs'
    supports_differentiable = False

    def __init__(self, reduce: str | None = None, batch_size: int = 64, aug_smooth: bool = False,
                 normalize: bool = True, eval_mode: bool = True) -> None:
        reduce = self.default_reduce if reduce is None else reduce
        if reduce not in REDUCTIONS:
            raise ConfigError(f"{type(self).__name__} reduce must be one of {', '.join(REDUCTIONS)}; got {reduce!r}.")
        super().__init__(normalize=normalize, resize=True, eval_mode=eval_mode, aug_smooth=aug_smooth)
        self.reduce = reduce
        self.batch_size = _positive_int(type(self).__name__, 'batch_size', batch_size)

    def attributions(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        """Per-channel attributions ``[B, C, H, W]`` for images on the model's device."""
        raise NotImplementedError

    def attribute(self, model: nn.Module, images: Tensor, targets: Targets = None) -> Tensor:
        """:meth:`attributions` with the interface's checks: any device, model state restored."""
        images = check_images(images)
        check_targets(targets)
        with torch.inference_mode(False):
            x = images.detach().clone().to(model_device(model, images.device))
            with model_state(model, eval_mode=self.eval_mode, freeze=True):
                return self.attributions(model, x, targets).detach().to(images.device)

    def explain(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        return reduce_channels(self.attributions(model, images, targets), self.reduce)

    def score(self, model: nn.Module, images: Tensor, targets: Targets) -> TargetScores:
        """The target scores, decided on the unmodified images (a forward pass only when ``targets`` need one)."""
        score = target_scores(targets, batch=len(images), device=images.device)
        if score is None:
            with torch.no_grad():
                score = target_scores(targets, forward_logits(model, images))
        return score


@EXPLAINERS.register_module()
class Saliency(PixelExplainer):
    """Saliency (vanilla gradient): ``∇_x s``; the map is ``max_c |∇_x s|`` (Simonyan et al.).

    ``attribute`` equals Captum's ``Saliency(model).attribute(x, target, abs=False)``.
    """

    aliases = ('saliency', 'vanilla-gradient', 'gradient')

    def attributions(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        return input_gradients(model, images, targets, torch.arange(len(images), device=images.device))


def ig_steps(n_steps: int, method: str) -> tuple[list[float], list[float]]:
    """``(alphas, weights)`` of the path integral, as Captum's ``approximation_methods`` (Gauss-Legendre nodes from
    numpy's ``leggauss`` mapped to [0, 1]; Riemann sums on ``linspace``)."""
    if method == 'gausslegendre':
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return (0.5 * (1 + nodes)).tolist(), (0.5 * weights).tolist()
    if n_steps < 2:
        raise ConfigError('IntegratedGradients with a Riemann method needs n_steps >= 2.')
    kind = method.split('_', 1)[1]
    weights = [1 / n_steps] * n_steps
    if kind == 'trapezoid':
        weights[0] /= 2
        weights[-1] /= 2
        return torch.linspace(0, 1, n_steps).tolist(), weights
    start, end = {'left': (0, 1 - 1 / n_steps), 'right': (1 / n_steps, 1),
                  'middle': (1 / (2 * n_steps), 1 - 1 / (2 * n_steps))}[kind]
    return torch.linspace(start, end, n_steps).tolist(), weights


@EXPLAINERS.register_module()
class IntegratedGradients(PixelExplainer):
    """Integrated Gradients: ``(x - x0) ⊙ Σ_k w_k ∇s(x0 + α_k (x - x0))``.

    Args:
        n_steps: points on the path (50, as Captum).
        method: ``'gausslegendre'`` (Captum's default) or ``'riemann_trapezoid'``/``_left``/``_right``/``_middle``.
        baseline: ``x0``: a number (default 0, in normalised-input units: the mean colour for ImageNet
            normalisation) or a tensor broadcastable to the images.
        reduce: default ``'abs_sum'`` (``|Σ_c a|``); other arguments: see :class:`PixelExplainer`.

    ``attribute`` equals Captum's ``IntegratedGradients(model).attribute(x, baselines, target, n_steps, method)``.
    """

    aliases = ('integratedgradients', 'integrated-gradients', 'ig')
    default_reduce = 'abs_sum'

    def __init__(self, n_steps: int = 50, method: str = 'gausslegendre', baseline: float | Tensor = 0.0,
                 reduce: str | None = None, batch_size: int = 64, aug_smooth: bool = False, normalize: bool = True,
                 eval_mode: bool = True) -> None:
        if method not in IG_METHODS:
            raise ConfigError(f"IntegratedGradients method must be one of {', '.join(IG_METHODS)}; got {method!r}.")
        super().__init__(reduce=reduce, batch_size=batch_size, aug_smooth=aug_smooth, normalize=normalize,
                         eval_mode=eval_mode)
        self.n_steps = _positive_int('IntegratedGradients', 'n_steps', n_steps)
        self.method, self.baseline = method, baseline
        ig_steps(n_steps, method)  # checks

    def attributions(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        score = self.score(model, images, targets)
        base = torch.as_tensor(self.baseline, dtype=images.dtype, device=images.device).expand_as(images)
        alphas, weights = ig_steps(self.n_steps, self.method)
        batch = len(images)
        per_chunk = max(1, self.batch_size // batch)
        total = torch.zeros_like(images)
        rows = torch.arange(batch, device=images.device)
        for start in range(0, self.n_steps, per_chunk):
            a = torch.tensor(alphas[start:start + per_chunk], dtype=images.dtype, device=images.device)
            w = torch.tensor(weights[start:start + per_chunk], dtype=images.dtype, device=images.device)
            x = (base[None] + a[:, None, None, None, None] * (images - base)[None]).flatten(0, 1)
            g = input_gradients(model, x, score, rows.repeat(len(a))).view(len(a), *images.shape)
            total += (g * w[:, None, None, None, None]).sum(0)
        return total * (images - base)


@EXPLAINERS.register_module()
class SmoothGrad(PixelExplainer):
    """SmoothGrad: the mean gradient over noisy copies ``x + ε``, ``ε ~ N(0, σ²)``.

    Args:
        n_samples: noisy copies per image (50 in the paper).
        noise_level: ``σ`` as a fraction of each image's value range (the paper's 10-20 %; default 0.15).
        stdev: an absolute ``σ`` instead (Captum's ``stdevs``; overrides ``noise_level``).
        nt_type: ``'smoothgrad'`` (mean gradient), ``'smoothgrad_sq'`` (mean squared gradient) or ``'vargrad'``
            (variance of the gradients), as Captum's ``NoiseTunnel``.
        seed: seed of the private noise generator (global RNG untouched; the same seed gives the same maps). Noise is
            drawn one ``[B, C, H, W]`` sample at a time, the draws Captum makes with ``nt_samples_batch_size=1``.
        other arguments: see :class:`PixelExplainer`.

    With ``stdev`` set, ``attribute`` equals Captum's ``NoiseTunnel(Saliency(model)).attribute(x, nt_type,
    nt_samples=n_samples, nt_samples_batch_size=1, stdevs=stdev, target, abs=False)`` run after
    ``torch.manual_seed(seed)``.
    """

    aliases = ('smoothgrad', 'smooth-grad')

    def __init__(self, n_samples: int = 50, noise_level: float = 0.15, stdev: float | None = None,
                 nt_type: str = 'smoothgrad', seed: int = 0, reduce: str | None = None, batch_size: int = 64,
                 aug_smooth: bool = False, normalize: bool = True, eval_mode: bool = True) -> None:
        if nt_type not in NOISE_TYPES:
            raise ConfigError(f"SmoothGrad nt_type must be one of {', '.join(NOISE_TYPES)}; got {nt_type!r}.")
        if not noise_level >= 0 or (stdev is not None and not stdev >= 0):
            raise ConfigError(f'SmoothGrad noise_level and stdev must be >= 0, got {noise_level!r}, {stdev!r}.')
        super().__init__(reduce=reduce, batch_size=batch_size, aug_smooth=aug_smooth, normalize=normalize,
                         eval_mode=eval_mode)
        self.n_samples = _positive_int('SmoothGrad', 'n_samples', n_samples)
        self.noise_level, self.stdev, self.nt_type, self.seed = float(noise_level), stdev, nt_type, seed

    def sigma(self, images: Tensor) -> Tensor:
        """``σ`` per image ``[B, 1, 1, 1]``."""
        if self.stdev is not None:
            return torch.full((len(images), 1, 1, 1), float(self.stdev), device=images.device, dtype=images.dtype)
        flat = images.flatten(1)
        return (self.noise_level * (flat.amax(1) - flat.amin(1))).view(-1, 1, 1, 1)

    def attributions(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        score = self.score(model, images, targets)
        gen = torch.Generator().manual_seed(self.seed)
        sigma = self.sigma(images)
        batch = len(images)
        per_chunk = max(1, self.batch_size // batch)
        rows = torch.arange(batch, device=images.device)
        total, total_sq = torch.zeros_like(images), torch.zeros_like(images)
        for start in range(0, self.n_samples, per_chunk):
            k = min(per_chunk, self.n_samples - start)
            noise = torch.stack([torch.randn(images.shape, generator=gen) for _ in range(k)])
            x = (images[None] + noise.to(images.device, images.dtype) * sigma[None]).flatten(0, 1)
            g = input_gradients(model, x, score, rows.repeat(k)).view(k, *images.shape)
            total += g.sum(0)
            total_sq += g.pow(2).sum(0)
        mean, mean_sq = total / self.n_samples, total_sq / self.n_samples
        if self.nt_type == 'smoothgrad':
            return mean
        return mean_sq if self.nt_type == 'smoothgrad_sq' else mean_sq - mean.pow(2)
