"""Small numeric kernels with no model knowledge.

Importing this package costs only ``torch``; heavier dependencies (POT) are imported inside the functions that
need them.

Example:
    >>> from zoo.ops import sinkhorn_log
    >>> callable(sinkhorn_log)
    True
"""
from .sinkhorn import sinkhorn_log

__all__ = ['sinkhorn_log']
