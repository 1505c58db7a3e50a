"""One call from an image file (or a PIL image, or an RGB array) to a model input and the picture to draw on.

:func:`load_image` runs the model's own preprocessing: a zoo model's ``load_images`` + ``prepare`` (its test
pipeline and mean/std), a timm model's ``pretrained_cfg`` (resize, crop, interpolation, mean/std), else ImageNet's
224 px resize and mean/std (say so with ``preprocessing=``). The display image is the same crop, in [0, 1], HWC —
what :func:`zoo.viz.overlay` (or grad-cam's ``show_cam_on_image``) takes.

Example:
    >>> import numpy as np, timm
    >>> from PIL import Image
    >>> from zoo.viz import load_image
    >>> model = timm.create_model('test_resnet', pretrained=False)
    >>> x, rgb = load_image(model, Image.fromarray(np.zeros((90, 120, 3), np.uint8)))
    >>> tuple(x.shape), rgb.shape, model.pretrained_cfg['input_size']
    ((1, 3, 160, 160), (160, 160, 3), (3, 160, 160))
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from registry.errors import DataError
from zoo.models.preprocessing import Preprocessing


def model_preprocessing(model: nn.Module) -> Preprocessing:
    """The preprocessing a model declares: a zoo model's own, a timm ``pretrained_cfg``, else ImageNet defaults."""
    own = getattr(model, 'preprocessing', None)
    if isinstance(own, Preprocessing):
        return own
    cfg = getattr(model, 'pretrained_cfg', None)
    if isinstance(cfg, Mapping) and cfg.get('input_size'):
        return Preprocessing.from_timm(cfg)
    return Preprocessing(resize=256)


def _rgb(source: Any) -> np.ndarray:
    from zoo.datasets.base import read_rgb

    if isinstance(source, (str, os.PathLike)):
        return read_rgb(os.fspath(source))
    if hasattr(source, 'convert'):
        return np.array(source.convert('RGB'), dtype=np.uint8)
    arr = np.asarray(source)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, -1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DataError(f'an image must be a file, a PIL image or an RGB array [H, W, 3], got shape {arr.shape}.')
    if arr.dtype != np.uint8:
        if arr.size and (float(arr.min()) < 0 or float(arr.max()) > 1):
            raise DataError('a float image array must be in [0, 1] (or pass uint8 pixels).')
        arr = np.round(arr * 255).astype(np.uint8)
    return arr


def load_image(model: nn.Module, source: Any, size: int | tuple[int, int] | None = None,
               preprocessing: Preprocessing | None = None) -> tuple[Tensor, np.ndarray]:
    """``(input [1, 3, h, w] normalised on the model's device, display image float32 [h, w, 3] in [0, 1])``.

    Args:
        model: the model the input is for (its preprocessing is used, see the module docstring).
        source: an image file path, a PIL image or an RGB array (uint8, or float in [0, 1]).
        size: resize the shorter side and centre-crop to this size instead of the model's input size.
        preprocessing: use this instead of the model's.
    """
    if preprocessing is None and hasattr(model, 'load_images') and hasattr(model, 'prepare'):
        pixels = model.load_images([source if isinstance(source, (str, os.PathLike)) or hasattr(source, 'convert')
                                    else _rgb(source)], size=size)
        x = model.prepare(pixels)
    else:
        pre = preprocessing or model_preprocessing(model)
        pre = pre.with_size(size) if size is not None else pre
        pixels = pre.build_transform()(_rgb(source))[None]
        mean = torch.tensor(pre.mean_255).view(1, -1, 1, 1)
        std = torch.tensor(pre.std_255).view(1, -1, 1, 1)
        device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device('cpu'))
        x = ((pixels.float() - mean) / std).to(device)
    rgb = pixels[0].permute(1, 2, 0).cpu().numpy().astype(np.float32) / 255
    return x, rgb
