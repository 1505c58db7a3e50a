"""Pictures: saliency overlays, images × methods grids, and one-call image loading for explaining (tensors, numpy
HWC arrays or PIL images in, PNG out; matplotlib, no pyplot state).

Example:
    >>> import torch
    >>> from zoo.viz import overlay
    >>> tuple(overlay(torch.rand(3, 8, 8), torch.rand(8, 8)).shape)
    (3, 8, 8)
"""
from .grid import grid_figure, save_grid
from .images import load_image, model_preprocessing
from .overlay import blend, colorize, denormalize, overlay, save_image, save_overlay, to_display, to_map

__all__ = ['blend', 'colorize', 'denormalize', 'overlay', 'save_image', 'save_overlay', 'to_display', 'to_map',
           'load_image', 'model_preprocessing', 'grid_figure', 'save_grid']
