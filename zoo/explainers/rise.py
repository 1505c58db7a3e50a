"""RISE (Petsiuk et al., BMVC 2018): saliency as the score-weighted average of random smooth masks.

``N`` binary grids of ``s × s`` cells (each cell on with probability ``p``) are upsampled bilinearly to
``(s + 1)`` cells of ``ceil(H / s) × ceil(W / s)`` pixels and cropped at a random shift, giving smooth masks ``M_i``.
The map of image ``x`` for class ``c`` is ``sum_i f_c(x ⊙ M_i) M_i / (N p)``. Masks depend only on ``seed`` and the
image size, so the same seed gives the same maps; all (image, mask) pairs run in chunks of ``batch_size``.

Example:
    >>> import timm, torch
    >>> from zoo.explainers import RISE
    >>> model = timm.create_model('test_resnet', pretrained=False, num_classes=3)
    >>> rise = RISE(n_masks=64, grid_size=4, batch_size=64)
    >>> tuple(rise(model, torch.randn(2, 3, 32, 32)).shape)
    (2, 32, 32)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from registry import EXPLAINERS
from registry.errors import ConfigError

from ._targets import TargetScores, target_scores
from .base import Explainer, Targets, forward_logits
from .scorecam import show_progress


@EXPLAINERS.register_module()
class RISE(Explainer):
    """RISE.

    Args:
        n_masks: number of random masks ``N`` (the paper uses 4000 for ResNet-50, 8000 at most).
        grid_size: cells per side ``s`` of the low-resolution grid.
        p: probability that a cell is kept.
        seed: seed of the masks (a private CPU generator; global RNG state is untouched).
        batch_size: masked images per forward pass.
        score: ``'prob'`` (softmax probability, as the paper) or ``'logit'``, for class-index targets; a callable
            target gives the score itself.
        progress: show a tqdm bar; ``None`` shows one when there are 8 chunks or more.
        normalize, resize, eval_mode: see :class:`~zoo.explainers.base.Explainer` (RISE maps have the input's
            size already; with ``normalize=False`` they are the expected score under the masks).
    """

    aliases = ('rise',)
    supports_differentiable = False

    def __init__(self, n_masks: int = 4000, grid_size: int = 7, p: float = 0.5, seed: int = 0,
                 batch_size: int = 64, score: str = 'prob', progress: bool | None = None, normalize: bool = True,
                 resize: bool = True, differentiable: bool = False, eval_mode: bool = True) -> None:
        super().__init__(normalize=normalize, resize=resize, differentiable=differentiable, eval_mode=eval_mode)
        if score not in ('prob', 'logit'):
            raise ConfigError(f"RISE score must be 'prob' or 'logit', got {score!r}.")
        if not 0 < p <= 1:
            raise ConfigError(f'RISE p (probability that a cell is kept) must be in (0, 1], got {p!r}.')
        for key, val in (('n_masks', n_masks), ('grid_size', grid_size), ('batch_size', batch_size)):
            if not isinstance(val, int) or val < 1:
                raise ConfigError(f'RISE {key} must be a positive int, got {val!r}.')
        self.n_masks, self.grid_size, self.p, self.seed = n_masks, grid_size, p, seed
        self.batch_size, self.score, self.progress = batch_size, score, progress

    def mask_params(self) -> tuple[Tensor, Tensor]:
        """The seeded low-resolution grids ``[N, 1, s, s]`` and crop shifts ``[N, 2]`` in [0, 1) of a cell."""
        gen = torch.Generator().manual_seed(self.seed)
        s = self.grid_size
        grids = (torch.rand(self.n_masks, 1, s, s, generator=gen) < self.p).float()
        return grids, torch.rand(self.n_masks, 2, generator=gen)

    def masks(self, grids: Tensor, shifts: Tensor, size: tuple[int, int]) -> Tensor:
        """Smooth masks ``[n, H, W]`` from grids ``[n, 1, s, s]`` and shifts ``[n, 2]`` (on ``grids``' device)."""
        (height, width), s = size, self.grid_size
        cell_h, cell_w = math.ceil(height / s), math.ceil(width / s)
        up = F.interpolate(grids, size=((s + 1) * cell_h, (s + 1) * cell_w), mode='bilinear',
                           align_corners=False)[:, 0]
        dy = (shifts[:, 0] * cell_h).long()
        dx = (shifts[:, 1] * cell_w).long()
        rows = dy[:, None] + torch.arange(height, device=up.device)
        cols = dx[:, None] + torch.arange(width, device=up.device)
        return up[torch.arange(len(up), device=up.device)[:, None, None], rows[:, :, None], cols[:, None, :]]

    def _scores(self, logits: Tensor, target: TargetScores, rows: Tensor) -> Tensor:
        if target.kind != 'index':
            return target(logits, rows).float()
        out = logits.float().softmax(1) if self.score == 'prob' else logits.float()
        return out.gather(1, target.classes[rows][:, None])[:, 0]

    @torch.no_grad()
    def explain(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        batch, size = images.shape[0], tuple(images.shape[-2:])
        tgt = target_scores(targets, forward_logits(model, images))
        index = torch.arange(batch, device=images.device)
        grids, shifts = (t.to(images.device) for t in self.mask_params())
        per_chunk = max(1, self.batch_size // batch)  # masks per chunk; images split when batch > batch_size
        starts = range(0, self.n_masks, per_chunk)
        sal = torch.zeros(batch, *size, device=images.device)
        for start in tqdm(starts, desc='RISE', leave=False, disable=not show_progress(self.progress, len(starts))):
            m = self.masks(grids[start:start + per_chunk], shifts[start:start + per_chunk], size)  # [k, H, W]
            for i in range(0, batch, self.batch_size):
                x, rows = images[i:i + self.batch_size], index[i:i + self.batch_size]
                masked = (x[:, None] * m[None, :, None].to(x.dtype)).flatten(0, 1)  # [b*k, C, H, W]
                scores = self._scores(forward_logits(model, masked), tgt, rows.repeat_interleave(len(m)))
                sal[i:i + len(x)] += torch.einsum('bk,khw->bhw', scores.view(len(x), len(m)), m)
        return sal / (self.n_masks * self.p)
