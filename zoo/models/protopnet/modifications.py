"""The image modifications of "Explaining Prototypes" (Nauta et al.), batched on uint8 tensors ``[B, 3, H, W]``.

The paper's settings (``preprocessing/mod_values.py`` of the official code) are the defaults:

========== =========================================================================================================
contrast   ×0.45 (torchvision ``adjust_contrast``: blend with the mean grey level)
saturation ×0.7 (``adjust_saturation``)
hue        shift 0.1 of the hue circle (``adjust_hue``)
brightness ×0.8 (``adjust_brightness``)
texture    non-local-means denoising, 7×7 patches, 21×21 search window, strength ``h = 4`` (0-255 scale)
shape      sine warp: row ``i`` rolled sideways by ``int(A·sin(π·i·w))`` pixels, then column ``j`` rolled
           vertically by ``int(A·sin(π·j·w))``; ``A = 4``, ``w = 0.05``
========== =========================================================================================================

Conventions that differ from the official code (which wrote JPEG copies of the cropped CUB images first):

- the colour operations are torchvision's tensor implementations of ``ColorJitter``'s (the official code runs
  them on PIL images: rounding and PIL's integer mean grey level make small differences);
- texture uses scikit-image's ``denoise_nl_means`` on RGB (``fast_mode``, ``h = 4/255`` on [0, 1] images);
  the official code uses OpenCV's ``fastNlMeansDenoisingColored`` (``h = hColor = 4``), which denoises in CIELAB;
- every modification is applied to the pixels the model sees (after the test pipeline's resize and crop), so the
  shape warp's amplitude is in model-input pixels; the official code warps the crop at its original size.

Example:
    >>> import torch
    >>> pixels = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    >>> out = modify(pixels, ('contrast', 'shape'))
    >>> sorted(out), tuple(out['shape'].shape), out['shape'].dtype
    (['contrast', 'shape'], (2, 3, 16, 16), torch.uint8)
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from registry.errors import ConfigError, DataError

MODIFICATIONS = ('contrast', 'saturation', 'hue', 'shape', 'texture', 'brightness')
"""The six modifications, in the official code's order."""
PAPER_SETTINGS: dict[str, float] = {'contrast': 0.45, 'saturation': 0.7, 'hue': 0.1, 'brightness': 0.8,
                                    'texture_h': 4.0, 'shape_amplitude': 4.0, 'shape_frequency': 0.05}
"""The paper's modification settings."""


def sine_shifts(length: int, amplitude: float, frequency: float) -> Tensor:
    """``int(A·sin(π·i·w))`` for ``i = 0 .. length-1`` (truncated toward zero, in float64 as numpy does)."""
    return torch.tensor([int(amplitude * math.sin(math.pi * i * frequency)) for i in range(length)],
                        dtype=torch.long)


def sine_warp(pixels: Tensor, amplitude: float = 4.0, frequency: float = 0.05) -> Tensor:
    """The shape modification: each row ``i`` rolled along the width by ``s_i``, then each column ``j`` rolled
    along the height by ``s_j`` (``s = int(A·sin(π·index·w))``; ``numpy.roll`` semantics, wrapping around)."""
    b, c, h, w = pixels.shape
    rows = sine_shifts(h, amplitude, frequency).to(pixels.device)
    cols = sine_shifts(w, amplitude, frequency).to(pixels.device)
    # np.roll by s: out[x] = in[(x - s) mod n]
    across = (torch.arange(w, device=pixels.device).view(1, w) - rows.view(h, 1)) % w          # [H, W]
    out = pixels.gather(3, across.expand(b, c, h, w))
    down = (torch.arange(h, device=pixels.device).view(h, 1) - cols.view(1, w)) % h            # [H, W]
    return out.gather(2, down.expand(b, c, h, w))


def denoise_texture(pixels: Tensor, h: float = 4.0, patch_size: int = 7, patch_distance: int = 10) -> Tensor:
    """The texture modification: scikit-image non-local means per image (``h`` on the 0-255 scale; a
    ``patch_distance`` of 10 is the 21×21 search window)."""
    from skimage.restoration import denoise_nl_means

    out = torch.empty_like(pixels)
    arrays = pixels.detach().cpu().permute(0, 2, 3, 1).numpy().astype(np.float32) / 255.0
    for i, img in enumerate(arrays):
        den = denoise_nl_means(img, patch_size=patch_size, patch_distance=patch_distance, h=h / 255.0,
                               fast_mode=True, channel_axis=-1)
        out[i] = torch.from_numpy(np.clip(np.rint(den * 255.0), 0, 255).astype(np.uint8)).permute(2, 0, 1)
    return out


def modify_one(pixels: Tensor, name: str, settings: Mapping[str, float] | None = None) -> Tensor:
    """One modification of uint8 pixels ``[B, 3, H, W]`` (settings: :data:`PAPER_SETTINGS` keys)."""
    import torchvision.transforms.v2.functional as TF

    s = {**PAPER_SETTINGS, **dict(settings or {})}
    if name == 'contrast':
        return TF.adjust_contrast(pixels, s['contrast'])
    if name == 'saturation':
        return TF.adjust_saturation(pixels, s['saturation'])
    if name == 'hue':
        return TF.adjust_hue(pixels, s['hue'])
    if name == 'brightness':
        return TF.adjust_brightness(pixels, s['brightness'])
    if name == 'texture':
        return denoise_texture(pixels, s['texture_h'])
    if name == 'shape':
        return sine_warp(pixels, s['shape_amplitude'], s['shape_frequency'])
    raise ConfigError(f'Unknown modification {name!r}; the modifications are {", ".join(MODIFICATIONS)}.')


def check_settings(modifications: Sequence[str], settings: Mapping[str, Any] | None) -> dict[str, float]:
    """The modifications and settings, checked (unknown names, out-of-range values), merged with the paper's."""
    unknown = [m for m in modifications if m not in MODIFICATIONS]
    if unknown or not modifications:
        raise ConfigError(f'Unknown modification {unknown[0]!r}; choose from {", ".join(MODIFICATIONS)}.' if unknown
                          else 'Give at least one modification.')
    extra = sorted(set(settings or {}) - set(PAPER_SETTINGS))
    if extra:
        raise ConfigError(f'Unknown modification setting {extra[0]!r}; the settings are {", ".join(PAPER_SETTINGS)}.')
    s = {**PAPER_SETTINGS, **{k: float(v) for k, v in dict(settings or {}).items()}}
    if not -0.5 <= s['hue'] <= 0.5:
        raise ConfigError(f"The hue shift must be in [-0.5, 0.5] (a fraction of the hue circle), got {s['hue']}.")
    for key in ('contrast', 'saturation', 'brightness', 'texture_h'):
        if s[key] < 0:
            raise ConfigError(f'The {key} setting must be >= 0, got {s[key]}.')
    return s


def modify(pixels: Tensor, modifications: Sequence[str] = MODIFICATIONS,
           settings: Mapping[str, float] | None = None) -> dict[str, Tensor]:
    """``{name: modified uint8 pixels}`` for each modification of ``pixels`` (uint8 ``[B, 3, H, W]``)."""
    if not isinstance(pixels, Tensor) or pixels.dtype != torch.uint8 or pixels.ndim != 4 or pixels.shape[1] != 3:
        shape = tuple(pixels.shape) if isinstance(pixels, Tensor) else type(pixels).__name__
        raise DataError(f'modify() takes uint8 RGB pixels [B, 3, H, W], got {shape}.')
    s = check_settings(modifications, settings)
    return {name: modify_one(pixels, name, s) for name in modifications}
