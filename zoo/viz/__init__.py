"""Pictures: saliency overlays and images × methods grids (tensors in, PNG out; matplotlib, no pyplot state).

Example:
    >>> import torch
    >>> from zoo.viz import overlay
    >>> tuple(overlay(torch.rand(3, 8, 8), torch.rand(8, 8)).shape)
    (3, 8, 8)
"""
from .grid import grid_figure, save_grid
from .overlay import colorize, denormalize, overlay, save_image, save_overlay, to_display

__all__ = ['colorize', 'denormalize', 'overlay', 'save_image', 'save_overlay', 'to_display', 'grid_figure',
           'save_grid']
