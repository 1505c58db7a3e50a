"""Backbones (registry ``BACKBONES``)."""
from .timm_backbone import BackboneOutput, TimmBackbone

__all__ = ['BackboneOutput', 'TimmBackbone']
