"""Metrics: accuracy for the Runner (``METRICS``) and explanation-quality metrics (``EXPLANATION_METRICS``).

:class:`DoublyRightAccuracy` (``METRICS``): RR/RW/WR/WW, right category for the right rationales (docs/ecor.md).

Explanation metrics (see docs/metrics.md): :class:`Insertion`, :class:`Deletion` (and :func:`overall`),
:class:`AverageDrop`, :class:`IncreaseInConfidence`, :class:`PointingGame`, :class:`EnergyPointingGame`,
:class:`MaskCoverage`, :class:`ROAD`; build one with :func:`build_explanation_metric` from an alias
(``'insertion'``, ``'pointing_game'``, ``'ebpg'``, ...), a registered name or a config dict.
:class:`ExplanationQuality` (``METRICS``) runs explainers × these metrics in the Runner's test loop, with
:class:`ExplanationHook` handing it the model.
"""
from .accuracy import Accuracy
from .base import (
    ExplanationMetric,
    MetricResult,
    ScoredMetric,
    build_explanation_metric,
    list_explanation_metrics,
    resolve_metric_name,
)
from .causal import Deletion, Insertion, gaussian_blur, gaussian_kernel, overall
from .confidence import AverageDrop, IncreaseInConfidence
from .doubly_right import DoublyRightAccuracy
from .evaluator import ExplanationHook, ExplanationQuality
from .pointing import EnergyPointingGame, MaskCoverage, PointingGame
from .road import ROAD, direct_impute, linear_impute

__all__ = ['Accuracy', 'DoublyRightAccuracy', 'ExplanationMetric', 'MetricResult', 'ScoredMetric',
           'build_explanation_metric', 'list_explanation_metrics', 'resolve_metric_name', 'Insertion', 'Deletion',
           'overall',
           'gaussian_kernel', 'gaussian_blur', 'AverageDrop', 'IncreaseInConfidence', 'PointingGame',
           'EnergyPointingGame', 'MaskCoverage', 'ROAD', 'linear_impute', 'direct_impute', 'ExplanationQuality',
           'ExplanationHook']
