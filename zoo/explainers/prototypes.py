"""``PrototypeSimilarity``: a prototype network's similarity maps as a saliency explainer (for the metrics).

It explains models that speak the prototype-network protocol — a method
``model.prototype_saliency(images, targets, reduction) -> (maps [B, h, w], logits [B, C])`` (``ProtoPNet`` has it)
— and refuses any other model with a one-line error. The maps are where the image looks like the prototypes of the
target class (see ``ProtoPNet.prototype_saliency``): ``'weighted'`` sums every prototype's similarity map weighted
by its positive last-layer connection to the class; ``'top'`` is the map of the prototype that adds most to the
class logit. They are upsampled (bilinear) and min-max normalised like every explainer's.

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> from zoo.explainers import build_explainer
    >>> model = MODELS.build(dict(type='ProtoPNet', num_classes=2, prototypes_per_class=2, prototype_dim=8,
    ...                           backbone=dict(type='TimmBackbone', model_name='test_resnet')))
    >>> maps = build_explainer('protosim')(model, torch.randn(2, 3, 32, 32))
    >>> tuple(maps.shape), bool(maps.max() <= 1)
    ((2, 32, 32), True)
"""
from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from registry import EXPLAINERS
from registry.errors import ConfigError

from .base import Explainer, Targets

REDUCTIONS = ('weighted', 'top')


@EXPLAINERS.register_module()
class PrototypeSimilarity(Explainer):
    """Prototype similarity maps of the target class (prototype networks only).

    Args:
        reduction: ``'weighted'`` (default: Σ_p max(w_cp, 0)·sim_p) or ``'top'`` (the most contributing
            prototype's map).
        normalize, resize, differentiable, eval_mode: see :class:`~zoo.explainers.base.Explainer`.
    """

    aliases: ClassVar[tuple[str, ...]] = ('prototype-similarity', 'protosim')

    def __init__(self, reduction: str = 'weighted', normalize: bool = True, resize: bool = True,
                 differentiable: bool = False, eval_mode: bool = True) -> None:
        super().__init__(normalize=normalize, resize=resize, differentiable=differentiable, eval_mode=eval_mode)
        if reduction not in REDUCTIONS:
            raise ConfigError(f'PrototypeSimilarity: reduction must be one of {REDUCTIONS}, got {reduction!r}.')
        self.reduction = reduction

    def explain(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        method = getattr(model, 'prototype_saliency', None)
        if not callable(method):
            raise ConfigError(f'PrototypeSimilarity explains prototype networks (a model with prototype_saliency(), '
                              f'such as ProtoPNet); {type(model).__name__} has none. Use a saliency explainer such '
                              "as 'gradcam'.")
        maps, _ = method(images, targets, self.reduction)
        return maps.float()
