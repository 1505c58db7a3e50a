"""Heads (registry ``HEADS``): the linear classification head and LICO's training-only alignment heads."""
from .linear_head import LinearClsHead
from .manifold_head import ManifoldAlignmentHead
from .ot_head import OTAlignmentHead

__all__ = ['LinearClsHead', 'ManifoldAlignmentHead', 'OTAlignmentHead']
