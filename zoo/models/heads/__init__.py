"""Heads (registry ``HEADS``): classification heads and, from the LICO issue on, alignment heads."""
from .linear_head import LinearClsHead

__all__ = ['LinearClsHead']
