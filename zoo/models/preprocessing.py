"""``Preprocessing``: how images become model input — owned by every zoo model, JSON- and timm-compatible.

One route for every image a zoo model sees: the test pipeline (``Resize`` + ``CenterCrop`` …, torchvision v2
through ``TRANSFORMS``) then mean/std. Built from timm's ``pretrained_cfg``, from a training config's test pipeline,
or from an export's ``config.json`` (checked as untrusted there).

Example:
    >>> p = Preprocessing.from_timm({'input_size': (3, 224, 224), 'crop_pct': 0.875,
    ...                              'interpolation': 'bicubic', 'mean': (0.5,) * 3, 'std': (0.5,) * 3})
    >>> p.resize, [s['type'] for s in p.steps()]
    (256, ['Resize', 'CenterCrop'])
"""
from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from registry.errors import ConfigError
from zoo.core.limits import MAX_IMAGE_SIDE

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INTERPOLATION_CODES = {0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming'}
_RESIZE_KINDS = {'Resize', 'RandomResizedCrop'}
_CROP_KINDS = {'CenterCrop', 'RandomCrop'}


def _pair(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    size = list(size)
    return (int(size[0]), int(size[0])) if len(size) == 1 else (int(size[0]), int(size[1]))


_SIZE_KEYS = ('image_size', 'canvas_size', 'img_size')


def _dataset_image_size(dataset: Mapping[str, Any]) -> Any:
    """A generated dataset's image side, from its config or its class's default."""
    for key in _SIZE_KEYS:
        if key in dataset:
            return dataset[key]
    from registry import DATASETS

    kind = dataset.get('type')
    cls = DATASETS.find(kind) if isinstance(kind, str) else kind
    if cls is None:
        return None
    params = inspect.signature(cls).parameters
    return next((params[k].default for k in _SIZE_KEYS if k in params and isinstance(params[k].default, int)),
                None)


def interpolation_name(value: Any) -> str:
    """``2`` / ``'InterpolationMode.BICUBIC'`` / ``'bicubic'`` → ``'bicubic'``."""
    if isinstance(value, int):
        return _INTERPOLATION_CODES.get(value, str(value))
    return str(getattr(value, 'value', value)).rsplit('.', 1)[-1].lower()


@dataclass(frozen=True)
class Preprocessing:
    """How images become model input: resize, crop, mean/std — owned by the model, JSON- and timm-compatible.

    Attributes:
        input_size: ``(channels, height, width)`` of the model input.
        mean, std: per channel, in the 0-1 scale (timm's convention); the data preprocessor holds them ×255.
        interpolation: resize filter (``'bilinear'``, ``'bicubic'``, ...).
        crop_pct: crop side ÷ resized side (1.0: no crop).
        crop_mode: ``'center'`` (shorter side resized, then centre crop) or ``'squash'`` (both sides resized to an
            exact size, then centre crop) — timm's vocabulary.
        resize: the resize size of the pipeline (int: shorter side; pair: exact), if any.
        pipeline: the exact test pipeline (``TRANSFORMS`` configs, without ``PackInputs``); empty: built from the
            fields above.

    Example:
        >>> p = Preprocessing.from_timm({'input_size': (3, 224, 224), 'crop_pct': 0.875,
        ...                              'interpolation': 'bicubic', 'mean': (0.5,) * 3, 'std': (0.5,) * 3})
        >>> p.resize, [s['type'] for s in p.steps()]
        (256, ['Resize', 'CenterCrop'])
        >>> p.to_pretrained_cfg()['crop_pct']
        0.875
    """

    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = 'bilinear'
    crop_pct: float = 1.0
    crop_mode: str = 'center'
    resize: int | tuple[int, int] | None = None
    pipeline: tuple[dict[str, Any], ...] = field(default=(), compare=True)

    def __post_init__(self) -> None:
        mean, std = tuple(self.mean), tuple(self.std)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                      for v in mean + std)
        if not numbers or len(mean) != len(std) or not mean or min(std) <= 0:
            raise ConfigError(f'Preprocessing needs finite mean and positive std of one length, got mean={mean!r}, '
                              f'std={std!r}; a zero std would divide every image by zero.')

    # --- constructors ---------------------------------------------------------------------------------------
    @classmethod
    def from_timm(cls, cfg: Mapping[str, Any]) -> Preprocessing:
        """From a timm ``pretrained_cfg`` (``input_size``, ``crop_pct``, ``interpolation``, ``mean``, ``std``)."""
        size = tuple(int(v) for v in cfg.get('input_size', (3, 224, 224)))
        crop_pct = float(cfg.get('crop_pct') or 1.0)
        resize = None if crop_pct >= 1.0 else int(round(min(size[1:]) / crop_pct))
        return cls(input_size=size, mean=tuple(float(v) for v in cfg.get('mean', IMAGENET_MEAN)),
                   std=tuple(float(v) for v in cfg.get('std', IMAGENET_STD)),
                   interpolation=interpolation_name(cfg.get('interpolation') or 'bilinear'), crop_pct=crop_pct,
                   crop_mode=str(cfg.get('crop_mode') or 'center'), resize=resize)

    @classmethod
    def from_pipeline(cls, steps: Sequence[Mapping[str, Any]], mean: Sequence[float], std: Sequence[float],
                      image_size: Any = None) -> Preprocessing:
        """From a test pipeline (``TRANSFORMS`` configs) and mean/std in the 0-1 scale.

        ``image_size`` is the dataset's own image side, used when the pipeline neither resizes nor crops.
        """
        from .serialization import to_json

        steps = [to_json(dict(t), 'test pipeline') for t in steps if dict(t).get('type') != 'PackInputs']
        resize = crop = None
        interpolation = 'bilinear'
        for step in steps:
            kind = str(step.get('type', '')).rsplit('.', 1)[-1]
            if kind in _RESIZE_KINDS:
                resize = step.get('size')
                interpolation = interpolation_name(step.get('interpolation', 2))
            elif kind in _CROP_KINDS:
                crop = _pair(step.get('size'))
        resized = _pair(resize)
        hw = crop or resized or _pair(image_size)
        if hw is None:
            raise ConfigError('Cannot tell the model input size: the test pipeline has no Resize/CenterCrop and the '
                              "dataset no image size. Add dict(type='Resize', size=...) to the test pipeline.")
        crop_pct = round(crop[0] / resized[0], 6) if crop and resized else 1.0
        return cls(input_size=(3, hw[0], hw[1]), mean=tuple(round(float(m), 6) for m in mean),
                   std=tuple(round(float(s), 6) for s in std), interpolation=interpolation, crop_pct=crop_pct,
                   crop_mode='squash' if isinstance(resize, (list, tuple)) else 'center',
                   resize=tuple(resize) if isinstance(resize, (list, tuple)) else resize, pipeline=tuple(steps))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], mean: Sequence[float], std: Sequence[float]) -> Preprocessing:
        """From an mmengine config's test (or val) pipeline, with mean/std in the 0-1 scale; a generated dataset's
        own image size (``image_size``, ``canvas_size``, ``img_size``: config or class default) when the pipeline
        neither resizes nor crops."""
        loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
        dataset = dict(loader.get('dataset') or {})
        return cls.from_pipeline(dataset.get('pipeline') or [], mean, std, _dataset_image_size(dataset))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = 'preprocessing') -> Preprocessing:
        """From the ``preprocessing`` object of a ``config.json`` (checked: every problem is a one-line error)."""
        from .serialization import check_preprocessing

        return check_preprocessing(cls, data, source)

    # --- views ----------------------------------------------------------------------------------------------
    @property
    def hw(self) -> tuple[int, int]:
        return int(self.input_size[1]), int(self.input_size[2])

    @property
    def mean_255(self) -> list[float]:
        return [255 * float(m) for m in self.mean]

    @property
    def std_255(self) -> list[float]:
        return [255 * float(s) for s in self.std]

    def steps(self) -> list[dict[str, Any]]:
        """The test pipeline: the stored one, else ``Resize`` (+ ``CenterCrop``) from the fields."""
        if self.pipeline:
            return [copy.deepcopy(dict(s)) for s in self.pipeline]
        h, w = self.hw
        interp = self.interpolation
        if self.crop_pct >= 1.0 and self.resize is None:
            return [{'type': 'Resize', 'size': [h, w], 'interpolation': interp, 'antialias': True}]
        resize = self.resize if self.resize is not None else int(round(min(h, w) / self.crop_pct))
        size = list(resize) if isinstance(resize, (list, tuple)) else resize
        return [{'type': 'Resize', 'size': size, 'interpolation': interp, 'antialias': True},
                {'type': 'CenterCrop', 'size': [h, w]}]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the ``preprocessing`` object of ``config.json``)."""
        out = asdict(self)
        out['input_size'] = list(self.input_size)
        out['mean'], out['std'] = list(self.mean), list(self.std)
        out['resize'] = list(self.resize) if isinstance(self.resize, tuple) else self.resize
        out['pipeline'] = self.steps()
        return out

    def to_pretrained_cfg(self, num_classes: int | None = None,
                          label_names: Sequence[str] | None = None) -> dict[str, Any]:
        """timm's ``pretrained_cfg`` keys, so ``timm.data.resolve_data_config(model=model)`` works."""
        return {'input_size': tuple(self.input_size), 'interpolation': self.interpolation, 'crop_pct': self.crop_pct,
                'crop_mode': self.crop_mode, 'mean': tuple(self.mean), 'std': tuple(self.std),
                'num_classes': num_classes, 'label_names': list(label_names) if label_names else None}

    def with_size(self, size: int | Sequence[int]) -> Preprocessing:
        """The same normalisation at another input size: resize the shorter side, centre-crop to ``size``."""
        hw = _pair(size)
        if hw is None or min(hw) < 1 or max(hw) > MAX_IMAGE_SIDE:
            raise ConfigError(f'An input size must be between 1 and {MAX_IMAGE_SIDE} px, got {size!r}.')
        return replace(self, input_size=(self.input_size[0], *hw), crop_pct=1.0, resize=min(hw), pipeline=(),
                       crop_mode='center')

    def build_transform(self) -> Callable[[Any], Tensor]:
        """``f(RGB uint8 [H, W, 3] array or [3, H, W] tensor) -> uint8 [3, h, w]`` (the test pipeline)."""
        from torchvision import tv_tensors

        from registry import TRANSFORMS

        steps = [TRANSFORMS.build(s) for s in self.steps()]

        def transform(rgb: Any) -> Tensor:
            img = rgb if isinstance(rgb, Tensor) else torch.from_numpy(np.array(rgb))  # copy: PIL arrays are read-only
            if img.ndim == 3 and img.shape[-1] in (1, 3) and img.shape[0] not in (1, 3):
                img = img.permute(2, 0, 1)
            out: Any = {'img': tv_tensors.Image(img.contiguous())}
            for step in steps:
                out = step(out)
            return out['img'].as_subclass(Tensor)

        return transform


__all__ = ['Preprocessing', 'IMAGENET_MEAN', 'IMAGENET_STD', 'interpolation_name']
