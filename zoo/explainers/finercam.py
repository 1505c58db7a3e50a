"""Finer-CAM (Zhang et al., CVPR 2025): what separates a class from the classes the model finds most similar.

The explained score of image ``i`` with main class ``m`` is ``Σ_k p_k (y_m - α y_k) / (Σ_k p_k + 1e-9)`` over the
comparison classes ``k`` — the classes ranked ``comparison`` (default 1st, 2nd and 3rd; rank 0 is ``m`` itself) by
closeness of their logit to ``y_m`` on the unmodified image — with ``p`` the softmax probabilities (inside the score,
so gradients flow through them too). Any explainer computes the map of that score (``method``, default Grad-CAM),
as grad-cam's ``FinerCAM(base_method=...)``.

Example:
    >>> import timm, torch
    >>> from zoo.explainers import FinerCAM
    >>> model = timm.create_model('test_resnet', pretrained=False, num_classes=5)
    >>> tuple(FinerCAM(target_layer='layer4')(model, torch.randn(2, 3, 32, 32)).shape)
    (2, 32, 32)
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from registry import EXPLAINERS
from registry.errors import ConfigError
from zoo.ops.tensors import targets_or_predicted

from ._targets import DeferredTargets, TargetScores, _is_callable_target
from .base import Explainer, Targets


class FinerScore(TargetScores):
    """Finer-CAM's weighted difference for main classes ``[B]`` and comparison classes ``[B, K]``."""

    def __init__(self, main: Tensor, comparison: Tensor, alpha: float) -> None:
        super().__init__('finer', classes=main)
        self.comparison, self.alpha = comparison, alpha

    def __call__(self, logits: Tensor, rows: Tensor | None = None) -> Tensor:
        main = self.classes if rows is None else self.classes[rows]
        comp = self.comparison if rows is None else self.comparison[rows]
        y_main = logits.gather(1, main[:, None])
        y_comp = logits.gather(1, comp)
        p = logits.softmax(1).gather(1, comp)
        return ((p * (y_main - self.alpha * y_comp)).sum(1) / (p.sum(1) + 1e-9)).float()

    def repeat(self, times: int) -> FinerScore:
        return FinerScore(self.classes.repeat(times), self.comparison.repeat(times, 1), self.alpha)


class FinerTargets(DeferredTargets):
    """Finer-CAM's targets, decided on the logits of the explainer's own first forward pass (no extra pass)."""

    def __init__(self, targets: Targets, comparison: Sequence[int], alpha: float) -> None:
        self.targets, self.comparison, self.alpha = targets, comparison, alpha

    def resolve(self, logits: Tensor) -> FinerScore:
        main = targets_or_predicted(self.targets, logits)
        order = torch.argsort((logits - logits.gather(1, main[:, None])).abs(), dim=1, stable=True)
        ranks = [k for k in self.comparison if k < logits.shape[1]]
        if not ranks:
            raise ConfigError(f'FinerCAM needs at least 2 classes to compare; the model predicts {logits.shape[1]}.')
        return FinerScore(main, order[:, ranks], self.alpha)


@EXPLAINERS.register_module()
class FinerCAM(Explainer):
    """Finer-CAM.

    Args:
        method: the explainer that maps the Finer score (alias, name or config dict; default ``'gradcam'``).
        alpha: weight of the comparison logits (1.0, as grad-cam; 0 explains the main logit alone, weighted).
        comparison: ranks of the comparison classes by logit closeness (rank 0 is the main class); ranks beyond
            the number of classes are dropped.
        target_layer: passed to ``method`` when given (else the method's default).
        method_args: other arguments of ``method`` (``dict(batch_size=64)``, ...).
        aug_smooth, normalize, resize, differentiable, eval_mode: see :class:`~zoo.explainers.base.Explainer`
            (passed to ``method`` as well).

    ``targets`` are the main classes (``None``: the predicted class; grad-cam's ``target_idx``); callables are refused
    (the score is Finer-CAM's own).
    """

    aliases = ('finercam', 'finer-cam')

    def __init__(self, method: str | Mapping[str, Any] = 'gradcam', alpha: float = 1.0,
                 comparison: Sequence[int] = (1, 2, 3), target_layer: Any = None,
                 method_args: Mapping[str, Any] | None = None, aug_smooth: bool = False, normalize: bool = True,
                 resize: bool = True, differentiable: bool = False, eval_mode: bool = True) -> None:
        from . import build_explainer  # the package registry (this module is imported by it)

        super().__init__(normalize=normalize, resize=resize, differentiable=differentiable, eval_mode=eval_mode,
                         aug_smooth=aug_smooth)
        comparison = [int(k) for k in comparison]
        if not comparison or min(comparison) < 1:
            raise ConfigError(f'FinerCAM comparison must list ranks >= 1 (rank 0 is the main class), got '
                              f'{comparison!r}.')
        args = dict(method_args or {})
        if target_layer is not None:
            args['target_layer'] = target_layer
        args.update(normalize=normalize, resize=resize, differentiable=differentiable, eval_mode=eval_mode)
        self.base = build_explainer(method, **args)
        if isinstance(self.base, FinerCAM):
            raise ConfigError('FinerCAM cannot use FinerCAM as its method.')
        self.method, self.alpha, self.comparison = method, float(alpha), comparison
        self.target_layer, self.method_args = target_layer, dict(method_args or {})

    def explain(self, model: nn.Module, images: Tensor, targets: Targets) -> Tensor:
        if _is_callable_target(targets) or (isinstance(targets, Sequence) and targets and
                                            _is_callable_target(targets[0])):
            raise ConfigError('FinerCAM takes class indices (or None) as targets: it builds its own score from the '
                              'main class and the most similar classes.')
        return self.base.explain(model, images, FinerTargets(targets, self.comparison, self.alpha))

    def postprocess(self, maps: Tensor, size: tuple[int, int]) -> Tensor:
        return self.base.postprocess(maps, size)
