"""Score-CAM (Wang et al., CVPRW 2020): channel weights from masked forward passes, no gradients.

Each activation channel is upsampled to the input size (bilinear, ``align_corners=True``, as grad-cam), scaled to
[0, 1] and multiplied with the image; the target logit of that masked image is the channel's score, and the
weights are the softmax of the scores over channels. All (image, channel) pairs of the batch go through the model
in chunks of ``batch_size``; an all-zero channel masks the whole image, so its score is the model's logit on a
zero image, computed once.

Example:
    >>> import timm, torch
    >>> from zoo.explainers import ScoreCAM
    >>> model = timm.create_model('test_resnet', pretrained=False, num_classes=3)
    >>> tuple(ScoreCAM(target_layer='layer4', batch_size=64)(model, torch.randn(1, 3, 32, 32)).shape)
    (1, 32, 32)
"""
from __future__ import annotations

from collections.abc import Sequence

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


@EXPLAINERS.register_module()
class ScoreCAM(CAMExplainer):
    """Score-CAM.

    Args:
        target_layer: see :class:`~zoo.explainers.base.CAMExplainer`.
        batch_size: masked images per forward pass (memory ≈ ``batch_size`` × one image's activations).
        progress: show a tqdm bar; ``None`` shows one when there are 8 chunks or more.
        other arguments: see :class:`~zoo.explainers.base.CAMExplainer`. With ``differentiable=True`` only the
            activations carry gradient; the channel weights do not.
    """

    aliases = ('scorecam', 'score-cam')
    uses_gradients = False

    def __init__(self, target_layer: str | nn.Module | None = None, batch_size: int = 32,
                 progress: bool | None = None, patch_size: int | Sequence[int] | None = None,
                 num_prefix_tokens: int | None = None, output_fmt: str | None = None, relu: bool = True,
                 normalize: bool = True, resize: bool = True, differentiable: bool = False,
                 eval_mode: bool = True) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f'ScoreCAM batch_size must be a positive int, got {batch_size!r}.')
        super().__init__(target_layer=target_layer, patch_size=patch_size, num_prefix_tokens=num_prefix_tokens,
                         output_fmt=output_fmt, relu=relu, normalize=normalize, resize=resize,
                         differentiable=differentiable, eval_mode=eval_mode)
        self.batch_size = batch_size
        self.progress = progress

    @torch.no_grad()
    def channel_weights(self, cap: Capture) -> Tensor:
        acts, images, targets = cap.activations.detach().float(), cap.images, cap.targets
        size = tuple(images.shape[-2:])
        scores = torch.zeros(acts.shape[:2], device=acts.device)
        dead = (acts == 0).flatten(2).all(2)
        if bool(dead.any()):
            base = forward_logits(cap.model, torch.zeros_like(images[:1]))[0].float()
            scores = torch.where(dead, base[targets][:, None], scores)
        chunks = (~dead).nonzero().split(self.batch_size)
        for chunk in tqdm(chunks, desc=type(self).__name__, leave=False,
                          disable=not show_progress(self.progress, len(chunks))):
            b, c = chunk.unbind(1)
            up = F.interpolate(acts[b, c][:, None], size=size, mode='bilinear', align_corners=True)
            flat = up.flatten(1)
            low = flat.min(1).values[:, None, None, None]
            mask = (up - low) / (flat.max(1).values[:, None, None, None] - low + 1e-8)
            logits = forward_logits(cap.model, images[b] * mask.to(images.dtype))
            scores[b, c] = logits.gather(1, targets[b, None])[:, 0].float()
        return scores.softmax(1)
