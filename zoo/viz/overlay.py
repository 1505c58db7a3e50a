"""Saliency overlays: a map coloured with a matplotlib colormap and alpha-blended onto its image.

Images are ``[3, H, W]`` (or ``[1, H, W]``) tensors, float in [0, 1] or uint8; maps are ``[H, W]`` (any range:
min-max scaled here; another size: resized bilinearly). Everything stays in torch until the PNG is written.

Example:
    >>> import torch, tempfile, os
    >>> from zoo.viz import save_overlay
    >>> path = save_overlay(os.path.join(tempfile.mkdtemp(), 'o.png'), torch.rand(3, 32, 48), torch.rand(4, 6))
    >>> path.name
    'o.png'
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from registry.errors import DataError

from .files import save_pixels


def to_display(image: Tensor) -> Tensor:
    """``[3|1, H, W]`` uint8 or float in [0, 1] → float ``[3, H, W]`` in [0, 1] on the CPU."""
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise DataError(f'an image to draw must be [3, H, W] or [1, H, W], got shape {tuple(image.shape)}.')
    image = image.detach().cpu()
    image = image.float() / 255 if not image.is_floating_point() else image.float()
    return image.expand(3, -1, -1).clamp(0, 1)


def denormalize(images: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor,
                max_value: float = 255.0) -> Tensor:
    """Undo ``(x - mean) / std`` and scale to [0, 1]; ``mean``/``std`` in the pixel scale ``max_value``."""
    shape = (-1, 1, 1)
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).reshape(shape)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).reshape(shape)
    return ((images * std_t + mean_t) / max_value).clamp(0, 1)


def colorize(saliency: Tensor, cmap: str = 'jet') -> Tensor:
    """``[H, W]`` map → ``[3, H, W]`` RGB in [0, 1] through a matplotlib colormap (min-max scaled first)."""
    import matplotlib

    sal = saliency.detach().float().cpu()
    low, high = sal.min(), sal.max()
    sal = (sal - low) / (high - low) if float(high - low) > 0 else torch.zeros_like(sal)
    lut = torch.as_tensor(matplotlib.colormaps[cmap](torch.linspace(0, 1, 256).numpy())[:, :3], dtype=torch.float32)
    return lut[(sal * 255).round().long()].permute(2, 0, 1)


def overlay(image: Tensor, saliency: Tensor, alpha: float = 0.5, cmap: str = 'jet') -> Tensor:
    """``(1 - alpha) · image + alpha · colorize(saliency)`` as float ``[3, H, W]`` in [0, 1]."""
    img = to_display(image)
    if saliency.ndim != 2:
        raise DataError(f'a saliency map to draw must be [H, W], got shape {tuple(saliency.shape)}.')
    if tuple(saliency.shape) != tuple(img.shape[-2:]):
        saliency = F.interpolate(saliency.detach().float().cpu()[None, None], size=img.shape[-2:],
                                 mode='bilinear', align_corners=False)[0, 0]
    return ((1 - alpha) * img + alpha * colorize(saliency, cmap)).clamp(0, 1)


def save_image(path: str | Path, image: Tensor) -> Path:
    """Write a ``[3, H, W]`` image (float in [0, 1] or uint8) as a PNG, creating parent folders."""
    pixels = (to_display(image) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return save_pixels(path, pixels)


def save_overlay(path: str | Path, image: Tensor, saliency: Tensor, alpha: float = 0.5, cmap: str = 'jet') -> Path:
    """:func:`overlay` written to ``path`` (PNG)."""
    return save_image(path, overlay(image, saliency, alpha=alpha, cmap=cmap))
