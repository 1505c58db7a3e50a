"""Score-CAM (Wang et al., CVPRW 2020) and its smoothed and integrated variants (SS-CAM, IS-CAM): channel weights
from masked forward passes, no gradients.

Each activation channel is upsampled to the input size (bilinear, ``align_corners=True``, as grad-cam), scaled to
[0, 1] (``(U - min) / (max - min + 1e-8)``) and multiplied with the image; the target score of that masked image is
the channel's score, and the weights are the softmax of the scores over channels. All (image, channel) pairs of the
batch go through the model in chunks of ``batch_size`` images. A channel that is constant at its own resolution
masks the whole image (its scaled mask is 0), so its score is the model's score on a zero image, computed once.

* :class:`SSCAM` (Wang et al., "SS-CAM: Smoothed Score-CAM", 2020): the score of a channel is the mean over
  ``num_samples`` of the score with Gaussian noise (std ``std``) added to the scaled mask (``smooth='mask'``,
  SS-CAM(1)) or to the image (``smooth='input'``, SS-CAM(2)); the noise comes from a private generator seeded by
  ``seed``.
* :class:`ISCAM` (Naidu et al., "IS-CAM: Integrated Score-CAM", 2020): the mean of the scores of the image masked
  by ``(i / N) · mask`` for ``i = 1..N`` (a Riemann sum along the path from the zero image).

Example:
    >>> import timm, torch
    >>> from zoo.explainers import ScoreCAM
    >>> model = timm.create_model('test_resnet', pretrained=False, num_classes=3)
    >>> tuple(ScoreCAM(target_layer='layer4', batch_size=64)(model, torch.randn(1, 3, 32, 32)).shape)
    (1, 32, 32)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from registry import EXPLAINERS
from registry.errors import ConfigError

from .base import CAMExplainer, Capture, forward_logits


def show_progress(progress: bool | None, chunks: int) -> bool:
    """``progress`` if given; by default a bar only for long runs (8 chunks or more)."""
    return bool(progress) if progress is not None else chunks >= 8


def _positive_int(owner: str, key: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f'{owner} {key} must be a positive int, got {value!r}.')
    return value


@EXPLAINERS.register_module()
class ScoreCAM(CAMExplainer):
    """Score-CAM.

    Args:
        target_layer: see :class:`~zoo.explainers.base.CAMExplainer` (a list: one Score-CAM per layer, averaged).
        batch_size: masked images per forward pass (memory ≈ ``batch_size`` × one image's activations).
        progress: show a tqdm bar; ``None`` shows one when there are 8 chunks or more.
        other arguments: see :class:`~zoo.explainers.base.CAMExplainer`. With ``differentiable=True`` only the
            activations carry gradient; the channel weights do not.
    """

    aliases = ('scorecam', 'score-cam')
    uses_gradients = False
    samples_per_pair: ClassVar[int] = 1
    constant_channel_shortcut: ClassVar[bool] = True
    """Whether a constant channel (scaled mask 0) scores as the zero image (true of Score-CAM and IS-CAM)."""

    def __init__(self, target_layer: str | nn.Module | Sequence[str | nn.Module] | None = None, batch_size: int = 32,
                 progress: bool | None = None, patch_size: int | Sequence[int] | None = None,
                 num_prefix_tokens: int | None = None, output_fmt: str | None = None, relu: bool = True,
                 normalize: bool = True, resize: bool = True, differentiable: bool = False, eval_mode: bool = True,
                 eigen_smooth: bool = False, aug_smooth: bool = False) -> None:
        _positive_int(type(self).__name__, 'batch_size', batch_size)
        super().__init__(target_layer=target_layer, patch_size=patch_size, num_prefix_tokens=num_prefix_tokens,
                         output_fmt=output_fmt, relu=relu, eigen_smooth=eigen_smooth, aug_smooth=aug_smooth,
                         normalize=normalize, resize=resize, differentiable=differentiable, eval_mode=eval_mode)
        self.batch_size = batch_size
        self.progress = progress

    def masks(self, acts: Tensor, size: tuple[int, int]) -> Tensor:
        """``[n, h, w]`` channels → ``[n, 1, H, W]`` masks: upsampled, then min-max scaled with ``+ 1e-8``."""
        up = F.interpolate(acts[:, None], size=size, mode='bilinear', align_corners=True)
        flat = up.flatten(1)
        low = flat.min(1).values[:, None, None, None]
        return (up - low) / (flat.max(1).values[:, None, None, None] - low + 1e-8)

    def pair_scores(self, cap: Capture, images: Tensor, masks: Tensor, rows: Tensor) -> Tensor:
        """Scores ``[n]`` of images ``[n, C, H, W]`` under their masks ``[n, 1, H, W]``; ``rows`` are the images'
        indices in the batch (for the target)."""
        logits = forward_logits(cap.model, images * masks.to(images.dtype))
        return cap.score(logits, rows).float()

    @torch.no_grad()
    def channel_weights(self, cap: Capture) -> Tensor:
        acts, images = cap.activations.detach().float(), cap.images
        size = tuple(images.shape[-2:])
        batch = acts.shape[0]
        scores = torch.zeros(acts.shape[:2], device=acts.device)
        flat = acts.flatten(2)
        skip = (flat.amax(2) == flat.amin(2)) & self.constant_channel_shortcut
        if bool(skip.any()):
            base = forward_logits(cap.model, torch.zeros_like(images[:1]))
            base_scores = cap.score(base.expand(batch, -1), torch.arange(batch, device=base.device)).float()
            scores = torch.where(skip, base_scores[:, None], scores)
        chunks = (~skip).nonzero().split(max(1, self.batch_size // self.samples_per_pair))
        for chunk in tqdm(chunks, desc=type(self).__name__, leave=False,
                          disable=not show_progress(self.progress, len(chunks))):
            b, c = chunk.unbind(1)
            scores[b, c] = self.pair_scores(cap, images[b], self.masks(acts[b, c], size), b)
        return scores.softmax(1)


class _SampledScoreCAM(ScoreCAM):
    def __init__(self, target_layer: str | nn.Module | Sequence[str | nn.Module] | None = None,
                 num_samples: int = 10, batch_size: int = 32, progress: bool | None = None,
                 patch_size: int | Sequence[int] | None = None, num_prefix_tokens: int | None = None,
                 output_fmt: str | None = None, relu: bool = True, normalize: bool = True, resize: bool = True,
                 differentiable: bool = False, eval_mode: bool = True, eigen_smooth: bool = False,
                 aug_smooth: bool = False) -> None:
        super().__init__(target_layer=target_layer, batch_size=batch_size, progress=progress, patch_size=patch_size,
                         num_prefix_tokens=num_prefix_tokens, output_fmt=output_fmt, relu=relu,
                         eigen_smooth=eigen_smooth, aug_smooth=aug_smooth, normalize=normalize, resize=resize,
                         differentiable=differentiable, eval_mode=eval_mode)
        self.num_samples = _positive_int(type(self).__name__, 'num_samples', num_samples)

    @property
    def samples_per_pair(self) -> int:  # type: ignore[override]
        return self.num_samples

    def variants(self, images: Tensor, masks: Tensor) -> Tensor:
        """``[n, N, C, H, W]`` inputs for ``n`` (image, mask) pairs."""
        raise NotImplementedError

    def pair_scores(self, cap: Capture, images: Tensor, masks: Tensor, rows: Tensor) -> Tensor:
        x = self.variants(images, masks.to(images.dtype))
        n, k = x.shape[:2]
        logits = forward_logits(cap.model, x.flatten(0, 1))
        return cap.score(logits, rows.repeat_interleave(k)).float().view(n, k).mean(1)


@EXPLAINERS.register_module()
class SSCAM(_SampledScoreCAM):
    """SS-CAM: Score-CAM whose channel scores are averaged over Gaussian perturbations.

    Args:
        num_samples: noise draws per channel (35 in the authors' code and torch-cam).
        std: standard deviation of the noise (2.0 there), in mask units (``smooth='mask'``) or in the units of the
            normalised image (``smooth='input'``).
        smooth: ``'mask'`` (SS-CAM(1), the default: noise added to the scaled mask) or ``'input'`` (SS-CAM(2):
            noise added to the image before masking).
        seed: seed of the private noise generator (global RNG untouched; the same seed gives the same maps).
        other arguments: see :class:`ScoreCAM`.
    """

    aliases = ('sscam', 'ss-cam')
    constant_channel_shortcut = False

    def __init__(self, target_layer: str | nn.Module | Sequence[str | nn.Module] | None = None,
                 num_samples: int = 35, std: float = 2.0, smooth: str = 'mask', seed: int = 0, batch_size: int = 32,
                 progress: bool | None = None, patch_size: int | Sequence[int] | None = None,
                 num_prefix_tokens: int | None = None, output_fmt: str | None = None, relu: bool = True,
                 normalize: bool = True, resize: bool = True, eval_mode: bool = True, eigen_smooth: bool = False,
                 aug_smooth: bool = False) -> None:
        if smooth not in ('mask', 'input'):
            raise ConfigError(f"SSCAM smooth must be 'mask' (noise on the masks) or 'input' (noise on the image), "
                              f'got {smooth!r}.')
        if not std >= 0:
            raise ConfigError(f'SSCAM std must be >= 0, got {std!r}.')
        super().__init__(target_layer=target_layer, num_samples=num_samples, batch_size=batch_size,
                         progress=progress, patch_size=patch_size, num_prefix_tokens=num_prefix_tokens,
                         output_fmt=output_fmt, relu=relu, eigen_smooth=eigen_smooth, aug_smooth=aug_smooth,
                         normalize=normalize, resize=resize, eval_mode=eval_mode)
        self.std, self.smooth, self.seed = float(std), smooth, seed
        self._generator: torch.Generator | None = None

    @torch.no_grad()
    def channel_weights(self, cap: Capture) -> Tensor:
        self._generator = torch.Generator().manual_seed(self.seed)
        try:
            return super().channel_weights(cap)
        finally:
            self._generator = None

    def variants(self, images: Tensor, masks: Tensor) -> Tensor:
        shape = (len(images), self.num_samples, *(masks.shape[1:] if self.smooth == 'mask' else images.shape[1:]))
        noise = (torch.randn(shape, generator=self._generator) * self.std).to(images.device, images.dtype)
        if self.smooth == 'mask':
            return images[:, None] * (masks[:, None] + noise)
        return (images[:, None] + noise) * masks[:, None]


@EXPLAINERS.register_module()
class ISCAM(_SampledScoreCAM):
    """IS-CAM: Score-CAM whose channel scores are averaged along the path ``(i / N) · mask``, ``i = 1..N``.

    Args:
        num_samples: ``N``, the steps of the path (10 in torch-cam). torch-cam multiplies step ``i`` by the running sum
            ``Σ_{j≤i} j / N`` instead of ``i / N``; we follow the paper's integral (``N = 1`` is Score-CAM).
        other arguments: see :class:`ScoreCAM`.
    """

    aliases = ('iscam', 'is-cam')

    def variants(self, images: Tensor, masks: Tensor) -> Tensor:
        steps = torch.arange(1, self.num_samples + 1, device=images.device, dtype=images.dtype) / self.num_samples
        return images[:, None] * (steps[None, :, None, None, None] * masks[:, None])
