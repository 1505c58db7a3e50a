"""Metrics: accuracy for the Runner (``METRICS``) and explanation-quality metrics (``EXPLANATION_METRICS``)."""
from .accuracy import Accuracy

__all__ = ['Accuracy']
