"""Metrics: accuracy (``METRICS``) and explanation-quality metrics (``EXPLANATION_METRICS``)."""
