"""``PromptCAM``: the explanation of a Prompt-CAM model — its class prompt's last-block attention, per head — and the
greedy head-blurring ranking of those heads ("traits").

The model provides one method (explainers never import model classes):
``model.prompt_attention(images, targets=None, blur=None)`` → ``{'attention': [B, heads, h, w], 'logits': [B, C],
'targets': [B], 'grid': (h, w)}`` (``zoo.models.PromptCAMViT`` has it; ``blur`` is bool ``[B, heads]`` or
``[B, S, heads]``: heads whose pre-softmax logits of the target prompt's query row are set to 0). Any other model
is refused with a one-line error.

- ``PromptCAM()(model, images, targets)`` → ``[B, H, W]``: the mean over heads, or with ``top_traits=k`` the mean
  of the ``k`` most important heads;
- :meth:`PromptCAM.head_maps` → ``[B, heads, H, W]``, one map per head;
- :meth:`PromptCAM.rank_traits` → :class:`TraitRanking`: Prompt-CAM's greedy ranking. Starting from nothing
  blurred, blur one more head at a time, always the one whose blurring keeps the target class probability highest
  (the least important); the reverse of that order ranks the heads, most important first.

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> from zoo.explainers import build_explainer
    >>> model = MODELS.build(dict(type='PromptCAMViT', num_classes=3,
    ...                           backbone=dict(type='TimmBackbone', model_name='test_vit', img_size=32)))
    >>> x = torch.randn(2, 3, 32, 32)
    >>> explainer = build_explainer('promptcam', top_traits=1)
    >>> tuple(explainer(model, x).shape), tuple(explainer.head_maps(model, x).shape)
    ((2, 32, 32), (2, 2, 32, 32))
    >>> sorted(explainer.rank_traits(model, x, targets=0).order[0].tolist())
    [0, 1]
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from registry import EXPLAINERS
from registry.errors import ConfigError
from zoo.ops.modules import model_device, model_state

from .base import Explainer, Targets, check_images


@dataclass
class TraitRanking:
    """Prompt-CAM's ranking of the last block's heads for each image's target class.

    Attributes:
        order: ``[B, heads]`` head indices, most important first.
        blur_order: ``[B, heads]`` the greedy blurring sequence (least important first; ``order`` reversed).
        probability: ``[B]`` the target class probability with nothing blurred.
        probability_without: ``[B, heads]``: entry ``r`` is the target probability once head ``order[:, r]`` and
            every less important head are blurred (so the last entry has every head blurred).
        targets: ``[B]`` the explained classes.
        maps: ``[B, heads, H, W]`` every head's map (resized and normalised as the explainer says).
    """

    order: Tensor
    blur_order: Tensor
    probability: Tensor
    probability_without: Tensor
    targets: Tensor
    maps: Tensor


def prompt_attention_of(model: nn.Module) -> Callable[..., dict[str, Any]]:
    """``model.prompt_attention``, or a :class:`ConfigError` saying which models PromptCAM explains."""
    fn = getattr(model, 'prompt_attention', None)
    if not callable(fn):
        raise ConfigError(f'PromptCAM explains Prompt-CAM models only (a model with prompt_attention(), e.g. '
                          f"MODELS type 'PromptCAMViT'); {type(model).__name__} has none. Use another explainer "
                          "(e.g. 'gradcam') for it.")
    return fn


def _float(x: Tensor) -> Tensor:
    """float32 or wider (half-precision logits are promoted before the softmax)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def greedy_blur_ranking(attend: Callable[..., dict[str, Any]], images: Tensor,
                        targets: Targets) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Prompt-CAM's greedy head blurring, batched over images and candidate heads.

    Returns ``(blur_order [B, heads], blurred_probability [B, heads], probability [B], targets [B],
    raw maps [B, heads, h, w])``: ``blurred_probability[:, j]`` is the target probability once the first ``j + 1``
    heads of ``blur_order`` are blurred. Ties go to the lowest head index (as the official loop).
    """
    first = attend(images, targets)
    t, raw = first['targets'], first['attention']
    b, num_heads = raw.shape[:2]
    probability = _float(first['logits']).softmax(-1).gather(1, t[:, None])[:, 0]
    blurred = torch.zeros(b, num_heads, dtype=torch.bool, device=t.device)
    eye = torch.eye(num_heads, dtype=torch.bool, device=t.device)
    order, probs = [], []
    rows = torch.arange(b, device=t.device)
    for _ in range(num_heads):
        candidates = blurred[:, None, :] | eye[None]  # [B, S = heads, heads]: blur one more head
        logits = _float(attend(images, t, blur=candidates)['logits'])  # [B, S, C]
        p = logits.softmax(-1).gather(2, t[:, None, None].expand(b, num_heads, 1))[..., 0]
        p = p.masked_fill(blurred, float('-inf'))
        best = p.argmax(1)
        order.append(best)
        probs.append(p[rows, best])
        blurred[rows, best] = True
    return torch.stack(order, 1), torch.stack(probs, 1), probability, t, raw


@EXPLAINERS.register_module()
class PromptCAM(Explainer):
    """Prompt-CAM maps: the target class prompt's attention over the patches in the last block.

    Args:
        top_traits: ``None``: the mean of every head's map; ``k``: the mean of the ``k`` most important heads by
            the greedy blurring ranking (``k = 1``: the top trait alone).
        normalize, resize, differentiable, eval_mode: see :class:`~zoo.explainers.base.Explainer` (the ranking
            itself never carries gradient).
    """

    aliases = ('promptcam', 'prompt-cam')

    def __init__(self, top_traits: int | None = None, normalize: bool = True, resize: bool = True,
                 differentiable: bool = False, eval_mode: bool = True) -> None:
        super().__init__(normalize=normalize, resize=resize, differentiable=differentiable, eval_mode=eval_mode)
        if top_traits is not None and (isinstance(top_traits, bool) or not isinstance(top_traits, int)
                                       or top_traits < 1):
            raise ConfigError(f'PromptCAM: top_traits must be a positive integer or None, got {top_traits!r}.')
        self.top_traits = top_traits

    def explain(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        attend = prompt_attention_of(model)
        if self.top_traits is None:
            return attend(images, targets)['attention'].mean(1)
        with torch.no_grad():
            blur_order, _, _, t, raw = greedy_blur_ranking(attend, images, targets)
        heads = raw.shape[1]
        if self.top_traits > heads:
            raise ConfigError(f'PromptCAM: top_traits={self.top_traits} but the model has {heads} heads in its last '
                              'block; pass at most that many.')
        if self.differentiable:
            raw = attend(images, t)['attention']
        top = blur_order.flip(1)[:, :self.top_traits]
        return raw.gather(1, top[:, :, None, None].expand(-1, -1, *raw.shape[-2:])).mean(1)

    # --- per-head maps and the ranking ------------------------------------------------------------------------
    def _guarded(self, model: nn.Module, images: Tensor, fn: Callable[[Tensor], Any]) -> Any:
        """Run ``fn(images on the model's device)`` as :meth:`__call__` runs :meth:`explain` (input checks, eval
        mode and frozen parameters, every flag restored, no gradient)."""
        images = check_images(images)
        with torch.inference_mode(False):
            if images.is_inference():
                images = images.clone()
            images = images.to(model_device(model, images.device)).detach()
            with model_state(model, eval_mode=self.eval_mode, freeze=True), torch.no_grad():
                return fn(images)

    def _per_head(self, raw: Tensor, size: tuple[int, int]) -> Tensor:
        b, heads = raw.shape[:2]
        return self.postprocess(raw.flatten(0, 1), size).reshape(b, heads, *(
            size if self.resize else raw.shape[-2:]))

    def head_maps(self, model: nn.Module, images: Tensor, targets: Targets = None) -> Tensor:
        """One map per head, ``[B, heads, H, W]`` (each resized and normalised as the constructor says; with
        ``normalize=False, resize=False`` the attention probabilities themselves)."""
        attend = prompt_attention_of(model)
        out_device = images.device if isinstance(images, Tensor) else None

        def run(x: Tensor) -> Tensor:
            return self._per_head(_float(attend(x, targets)['attention']), tuple(x.shape[-2:]))

        return self._guarded(model, images, run).to(out_device)

    def rank_traits(self, model: nn.Module, images: Tensor, targets: Targets = None) -> TraitRanking:
        """Prompt-CAM's greedy head-blurring ranking for each image (see the module docstring)."""
        attend = prompt_attention_of(model)
        out_device = images.device if isinstance(images, Tensor) else None

        def run(x: Tensor) -> TraitRanking:
            blur_order, blurred_p, p, t, raw = greedy_blur_ranking(attend, x, targets)
            maps = self._per_head(_float(raw), tuple(x.shape[-2:]))
            return TraitRanking(order=blur_order.flip(1).to(out_device), blur_order=blur_order.to(out_device),
                                probability=p.to(out_device), probability_without=blurred_p.flip(1).to(out_device),
                                targets=t.to(out_device), maps=maps.to(out_device))

        return self._guarded(model, images, run)
