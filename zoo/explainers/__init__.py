"""Explainers (registry ``EXPLAINERS``): saliency maps for any image classifier.

The interface (stable; metrics, the zoo and the CLI rely on it)::

    explainer = build_explainer('gradcam')                       # alias, registered name or config dict
    explainer = build_explainer(dict(type='ScoreCAM', batch_size=64))
    maps = explainer(model, images, targets=None)                # -> [B, H, W], each map in [0, 1]

* ``model``: any ``nn.Module`` whose ``model(images)`` returns logits ``[B, num_classes]``.
* ``images``: normalised float ``[B, C, H, W]``; maps come back on the images' device.
* ``targets``: ``None`` (the predicted class), one int for the whole batch, one index per image, a callable
  ``f(logits [B, K]) -> [B]`` or one callable per image (grad-cam's ``ClassifierOutputTarget``); see
  :mod:`zoo.explainers._targets`.
* CAM methods need a target layer: ``target_layer='layer4'`` (dotted name, negative indices allowed:
  ``'blocks.-1.norm1'``) or a list of them (maps averaged); when omitted it is read from
  ``model.explain_meta['target_layer']``, which every ``ImageClassifier`` provides. Token outputs ``[B, N, C]`` are
  laid on the patch grid (``explain_meta`` ``patch_size``/``num_prefix_tokens``, or the timm/torchvision
  attributes); channels-last 4-D outputs (Swin) are recognised from their shape.
* ``normalize=False`` gives raw maps, ``resize=False`` the native resolution, ``differentiable=True`` maps that
  carry gradient, ``aug_smooth=True`` test-time augmentation, ``eigen_smooth=True`` (CAMs) the first principal
  component of the weighted channels. The model's modes, ``requires_grad`` flags and ``.grad`` are left as they were;
  no hook stays.

Names (CLI alias → registered class): gradcam → GradCAM, gradcam++ → GradCAMPlusPlus, xgradcam → XGradCAM,
layercam → LayerCAM, hirescam → HiResCAM, gradcamelementwise → GradCAMElementWise, shapleycam → ShapleyCAM,
finercam → FinerCAM, eigencam → EigenCAM, eigengradcam → EigenGradCAM, kpcacam → KPCACAM, scorecam → ScoreCAM,
sscam → SSCAM, iscam → ISCAM, ablationcam → AblationCAM, fullgrad → FullGrad, saliency → Saliency,
ig → IntegratedGradients, smoothgrad → SmoothGrad, guidedbackprop → GuidedBackprop,
guidedgradcam → GuidedGradCAM, rise → RISE, lcam → LCAM (models with a
trained L-CAM attention module), convis → ConVis (concept saliency on image-text models: targets are
concepts), promptcam → PromptCAM (Prompt-CAM models only). A new explainer is a subclass of :class:`Explainer` (or
:class:`CAMExplainer`) decorated with ``@EXPLAINERS.register_module()``; give it ``aliases = ('short-name',)`` to be
reachable from the CLI (see docs/explainers.md).

Example:
    >>> import timm, torch
    >>> from zoo.explainers import build_explainer
    >>> model = timm.create_model('resnet18', pretrained=False, num_classes=4)
    >>> maps = build_explainer('gradcam++', target_layer='layer4')(model, torch.randn(2, 3, 64, 64), targets=1)
    >>> tuple(maps.shape)
    (2, 64, 64)
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from registry import EXPLAINERS
from registry.aliases import alias_table, build_from_alias, resolve_alias

from . import ablation, convis, eigencam, finercam, fullgrad, gradcam, guided, lcam, pixel, prompt_cam, rise, scorecam  # noqa: F401
from ._targets import TargetScores, target_scores
from .ablation import AblationCAM
from .base import CAMExplainer, Capture, Explainer, minmax_normalize, model_state, resize_maps
from .convis import ConVis
from .eigencam import KPCACAM, EigenCAM, EigenGradCAM
from .finercam import FinerCAM
from .fullgrad import FullGrad
from .gradcam import GradCAM, GradCAMElementWise, GradCAMPlusPlus, HiResCAM, LayerCAM, ShapleyCAM, XGradCAM
from .guided import GuidedBackprop, GuidedGradCAM
from .lcam import LCAM
from .pixel import IntegratedGradients, PixelExplainer, Saliency, SmoothGrad
from .prompt_cam import PromptCAM, TraitRanking
from .rise import RISE
from .scorecam import ISCAM, SSCAM, ScoreCAM


def list_explainers() -> dict[str, str]:
    """``{alias: registered name}`` for every registered explainer (plugins included), aliases sorted."""
    return alias_table(EXPLAINERS, lambda name, cls: (*getattr(cls, 'aliases', ()), name.lower()))


def resolve_name(name: str) -> str:
    """The registered name for an alias or a registered name (case, ``-`` and ``_`` ignored)."""
    return resolve_alias(EXPLAINERS, name, list_explainers(), 'explainer')


def explainer_class(name_or_cfg: str | Mapping[str, Any] | type) -> type:
    """The registered class an alias, name or config dict refers to (nothing is built)."""
    kind = name_or_cfg.get('type') if isinstance(name_or_cfg, Mapping) else name_or_cfg
    if isinstance(kind, type) and issubclass(kind, Explainer):
        return kind
    return EXPLAINERS.get(resolve_name(kind))


def build_explainer(name_or_cfg: str | Mapping[str, Any] | Explainer, **kwargs: Any) -> Explainer:
    """An explainer from an alias (``'gradcam++'``), a registered name or a config dict; ``kwargs`` override.

    Only registered names resolve (``'os.getcwd'`` is refused, never imported).

    Example:
        >>> build_explainer('scorecam', batch_size=8).batch_size
        8
    """
    return build_from_alias(EXPLAINERS, name_or_cfg, list_explainers(), 'explainer', Explainer, **kwargs)


__all__ = ['Explainer', 'CAMExplainer', 'PixelExplainer', 'Capture', 'TargetScores', 'target_scores',
           'build_explainer', 'explainer_class', 'list_explainers', 'resolve_name', 'minmax_normalize', 'resize_maps',
           'model_state', 'GradCAM', 'GradCAMPlusPlus', 'XGradCAM', 'LayerCAM', 'HiResCAM', 'GradCAMElementWise',
           'ShapleyCAM', 'FinerCAM', 'EigenCAM', 'EigenGradCAM', 'KPCACAM', 'ScoreCAM', 'SSCAM', 'ISCAM',
           'AblationCAM', 'FullGrad', 'Saliency', 'IntegratedGradients', 'SmoothGrad', 'GuidedBackprop',
           'GuidedGradCAM', 'RISE', 'LCAM', 'ConVis',
           'PromptCAM', 'TraitRanking']
