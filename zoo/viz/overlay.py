"""Saliency overlays: a map coloured with a matplotlib colormap and alpha-blended onto its image.

Images may be what people have: torch tensors ``[3, H, W]``/``[1, H, W]``, numpy arrays ``[H, W, 3]``/``[H, W]``
(HWC, as OpenCV and PIL give them) or PIL images — float in [0, 1] or uint8. Maps are ``[H, W]`` tensors or arrays
(any range: min-max scaled here; another size: resized bilinearly). :func:`overlay` returns the image's own kind:
a float ``[3, H, W]`` tensor for a tensor, an HWC array of the image's dtype family for an array (uint8 in → uint8
out; float in → float32 in [0, 1]), a PIL image for a PIL image.

Example:
    >>> import numpy as np, torch, tempfile, os
    >>> from zoo.viz import overlay, save_overlay
    >>> rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)   # HWC uint8
    >>> out = overlay(rgb, np.random.default_rng(1).random((4, 6)))
    >>> out.shape, out.dtype.name
    ((32, 48, 3), 'uint8')
    >>> save_overlay(os.path.join(tempfile.mkdtemp(), 'o.png'), torch.rand(3, 32, 48), torch.rand(4, 6)).name
    'o.png'
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from registry.errors import DataError

from .files import save_pixels

FLOAT_SLACK = 1e-3
"""Float images may exceed [0, 1] by this much (rounding); beyond it they are refused, not silently clipped."""


def _is_pil(x: Any) -> bool:
    return hasattr(x, 'convert') and hasattr(x, 'size') and not isinstance(x, (Tensor, np.ndarray))


def to_display(image: Any) -> Tensor:
    """An image → float ``[3, H, W]`` in [0, 1] on the CPU.

    Accepts ``[3|1, H, W]`` tensors, ``[H, W, 3|1]`` or ``[H, W]`` arrays, and PIL images; uint8 or float in [0, 1].
    """
    if _is_pil(image):
        image = np.asarray(image.convert('RGB'))
    if isinstance(image, np.ndarray):
        arr = image[..., None] if image.ndim == 2 else image
        if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
            raise DataError(f'an image array to draw must be [H, W, 3], [H, W, 1] or [H, W] (HWC), got shape '
                            f'{image.shape}.')
        image = torch.from_numpy(np.array(arr)).permute(2, 0, 1)  # a writable copy
    if not isinstance(image, Tensor):
        raise DataError(f'an image to draw must be a tensor, a numpy array or a PIL image, got {type(image).__name__}.')
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise DataError(f'an image tensor to draw must be [3, H, W] or [1, H, W], got shape {tuple(image.shape)} '
                        '(numpy arrays are read as HWC).')
    image = image.detach().cpu()
    if image.dtype == torch.uint8:
        return (image.float() / 255).expand(3, -1, -1)
    image = image.float()
    if image.numel() and (float(image.min()) < -FLOAT_SLACK or float(image.max()) > 1 + FLOAT_SLACK):
        raise DataError(f'a float image to draw must be in [0, 1], got values in [{float(image.min()):.3g}, '
                        f'{float(image.max()):.3g}]. Pass uint8 pixels, divide by 255, or undo the normalisation '
                        '(zoo.viz.denormalize).')
    return image.expand(3, -1, -1).clamp(0, 1)


def to_map(saliency: Any) -> Tensor:
    """A saliency map (tensor or array, ``[H, W]``, ``[1, H, W]`` or ``[H, W, 1]``) → float ``[H, W]`` on the CPU."""
    sal = torch.as_tensor(np.asarray(saliency)) if not isinstance(saliency, Tensor) else saliency
    sal = sal.detach().float().cpu()
    if sal.ndim == 3 and 1 in (sal.shape[0], sal.shape[-1]):
        sal = sal[0] if sal.shape[0] == 1 else sal[..., 0]
    if sal.ndim != 2:
        raise DataError(f'a saliency map to draw must be [H, W], got shape {tuple(sal.shape)}.')
    if not bool(torch.isfinite(sal).all()):
        raise DataError('a saliency map to draw contains NaN or Inf values.')
    return sal


def denormalize(images: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor,
                max_value: float = 255.0) -> Tensor:
    """Undo ``(x - mean) / std`` and scale to [0, 1]; ``mean``/``std`` in the pixel scale ``max_value``."""
    shape = (-1, 1, 1)
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).reshape(shape)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).reshape(shape)
    return ((images * std_t + mean_t) / max_value).clamp(0, 1)


def colorize(saliency: Any, cmap: str = 'jet') -> Tensor:
    """``[H, W]`` map → ``[3, H, W]`` RGB in [0, 1] through a matplotlib colormap (min-max scaled first)."""
    import matplotlib

    sal = to_map(saliency)
    low, high = sal.min(), sal.max()
    sal = (sal - low) / (high - low) if float(high - low) > 0 else torch.zeros_like(sal)
    lut = torch.as_tensor(matplotlib.colormaps[cmap](torch.linspace(0, 1, 256).numpy())[:, :3], dtype=torch.float32)
    return lut[(sal * 255).round().long()].permute(2, 0, 1)


def blend(image: Any, saliency: Any, alpha: float = 0.5, cmap: str = 'jet') -> Tensor:
    """``(1 - alpha) · image + alpha · colorize(saliency)`` as float ``[3, H, W]`` in [0, 1], whatever the inputs."""
    if not 0 <= alpha <= 1:
        raise DataError(f'alpha (the weight of the heat map) must be in [0, 1], got {alpha}.')
    img = to_display(image)
    sal = to_map(saliency)
    if tuple(sal.shape) != tuple(img.shape[-2:]):
        sal = F.interpolate(sal[None, None], size=img.shape[-2:], mode='bilinear', align_corners=False)[0, 0]
    return ((1 - alpha) * img + alpha * colorize(sal, cmap)).clamp(0, 1)


def overlay(image: Any, saliency: Any, alpha: float = 0.5, cmap: str = 'jet') -> Any:
    """The map coloured and blended onto the image, returned in the image's own kind (see the module docstring).

    ``alpha`` is the weight of the heat map (grad-cam's ``show_cam_on_image`` takes ``image_weight = 1 - alpha``).
    """
    out = blend(image, saliency, alpha=alpha, cmap=cmap)
    if isinstance(image, Tensor):
        return out
    hwc = out.permute(1, 2, 0).contiguous().numpy()
    if _is_pil(image):
        from PIL import Image

        return Image.fromarray((hwc * 255).round().astype(np.uint8))
    return (hwc * 255).round().astype(np.uint8) if image.dtype == np.uint8 else hwc.astype(np.float32)


def save_image(path: str | Path, image: Any) -> Path:
    """Write an image (any kind :func:`to_display` takes) as a PNG, creating parent folders."""
    pixels = (to_display(image) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return save_pixels(path, pixels)


def save_overlay(path: str | Path, image: Any, saliency: Any, alpha: float = 0.5, cmap: str = 'jet') -> Path:
    """:func:`overlay` written to ``path`` (PNG)."""
    return save_image(path, blend(image, saliency, alpha=alpha, cmap=cmap))
