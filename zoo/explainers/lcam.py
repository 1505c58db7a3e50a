"""L-CAM (Gkartzonika, Gkalelis & Mezaris, ECCV 2022 workshops): the saliency a trained attention module gives.

A model trained with L-CAM (``LCAMClassifier``, recipes ``configs/*_lcam-{fm,img}_*.py``) carries a 1x1-conv
attention module on its classifier's last feature map. Its explanation is the module's **pre-sigmoid** output for
the target class (the predicted class by default), min-max normalised at the feature-map resolution and then
upsampled bilinearly to the image size, as the official evaluation does — one forward pass for a whole batch, no
gradient.

The model is read through one method, never by importing model code::

    logits, attention = model.lcam_attention(images)    # [B, K] and pre-sigmoid [B, K, h, w], one forward pass

A model without it is refused with a one-line error.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Toy(nn.Module):   # any model with lcam_attention() can be explained
    ...     def lcam_attention(self, x):
    ...         att = torch.zeros(len(x), 2, 2, 2); att[:, 1, 0, 0] = 5.0
    ...         return torch.tensor([[0.0, 1.0]]).expand(len(x), 2), att
    >>> maps = LCAM(resize=False)(Toy(), torch.zeros(1, 3, 8, 8))
    >>> maps[0].tolist()
    [[1.0, 0.0], [0.0, 0.0]]
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from registry import EXPLAINERS
from registry.errors import ConfigError
from zoo.ops.tensors import is_constant, minmax_normalize, resize_maps
from zoo.ops.tensors import targets_or_predicted as resolve_targets

from .base import Explainer, Targets


@EXPLAINERS.register_module()
class LCAM(Explainer):
    """The L-CAM attention map of the target class (pre-sigmoid, min-max normalised, upsampled).

    Args:
        activation: ``'logit'`` (default, official inference: the attention before the sigmoid) or ``'sigmoid'``
            (the mask the training used). Min-max normalisation makes the two maps differ only through the
            sigmoid's curvature.
        normalize_first: min-max normalise at the attention's native resolution, then upsample (default, the
            official ``normalizeMinMax`` → ``F.interpolate`` order: the upsampled maximum may lie slightly below
            1); ``False`` upsamples first and normalises after, like the other explainers.
        normalize, resize, differentiable, eval_mode: see :class:`~zoo.explainers.base.Explainer`.
    """

    aliases = ('lcam', 'l-cam')

    def __init__(self, activation: str = 'logit', normalize_first: bool = True, normalize: bool = True,
                 resize: bool = True, differentiable: bool = False, eval_mode: bool = True) -> None:
        super().__init__(normalize=normalize, resize=resize, differentiable=differentiable, eval_mode=eval_mode)
        if activation not in ('logit', 'sigmoid'):
            raise ConfigError(f"LCAM: activation must be 'logit' (pre-sigmoid, official) or 'sigmoid', got "
                              f'{activation!r}.')
        self.activation = activation
        self.normalize_first = bool(normalize_first)

    def explain(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        attend = getattr(model, 'lcam_attention', None)
        if not callable(attend):
            raise ConfigError(f'LCAM explains models that carry a trained L-CAM attention module '
                              f'(model.lcam_attention, e.g. an LCAMClassifier); {type(model).__name__} has none. '
                              "Train one with a configs/*_lcam-*.py recipe, or use another explainer such as "
                              "method='gradcam'.")
        with torch.set_grad_enabled(self.differentiable):
            logits, attention = attend(images)
        if attention.ndim != 4 or attention.shape[:2] != logits.shape:
            raise ConfigError(f'{type(model).__name__}.lcam_attention must return logits [B, K] and attention '
                              f'[B, K, h, w]; got {tuple(logits.shape)} and {tuple(attention.shape)}.')
        t = resolve_targets(targets, logits.detach())
        maps = attention[torch.arange(len(t), device=t.device), t]
        return torch.sigmoid(maps) if self.activation == 'sigmoid' else maps

    def postprocess(self, maps: Tensor, size: tuple[int, int]) -> Tensor:
        if not (self.normalize_first and self.normalize):
            return super().postprocess(maps, size)
        maps = minmax_normalize(maps.float(), constant=is_constant(maps.float()))
        return resize_maps(maps, size) if self.resize else maps
