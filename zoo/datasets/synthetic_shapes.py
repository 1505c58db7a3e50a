"""``SyntheticShapes``: procedural coloured shapes on noise, with exact masks; needs no files.

Classes are ``colour × shape`` (``'red circle'``, ``'green triangle'``, ...), ordered colour-major. Every image is
a function of ``(seed, split, index)``.

Example:
    >>> from registry import DATASETS
    >>> ds = DATASETS.build(dict(type='SyntheticShapes', num_samples=4, image_size=32))
    >>> ds.class_names[:3]
    ['red circle', 'red square', 'red triangle']
    >>> s = ds[0]['data_samples']; bool(s.gt_mask.any()), s.gt_label.item() == ds.get_data_info(0)['gt_label']
    (True, True)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from registry import DATASETS
from registry.errors import DataError

from .base import ClsDataset

COLOURS = {'red': (220, 40, 40), 'green': (40, 190, 60), 'blue': (50, 80, 230), 'yellow': (230, 210, 40),
           'magenta': (210, 50, 200), 'cyan': (40, 200, 210)}
SHAPES = ('circle', 'square', 'triangle', 'cross', 'diamond')


def _draw(draw: Any, shape: str, x: int, y: int, s: int, fill: Any) -> None:
    if shape == 'circle':
        draw.ellipse([x, y, x + s - 1, y + s - 1], fill=fill)
    elif shape == 'square':
        draw.rectangle([x, y, x + s - 1, y + s - 1], fill=fill)
    elif shape == 'triangle':
        draw.polygon([(x + s / 2, y), (x + s - 1, y + s - 1), (x, y + s - 1)], fill=fill)
    elif shape == 'diamond':
        draw.polygon([(x + s / 2, y), (x + s - 1, y + s / 2), (x + s / 2, y + s - 1), (x, y + s / 2)], fill=fill)
    else:  # cross
        t = max(2, s // 3)
        draw.rectangle([x + (s - t) // 2, y, x + (s + t) // 2, y + s - 1], fill=fill)
        draw.rectangle([x, y + (s - t) // 2, x + s - 1, y + (s + t) // 2], fill=fill)


@DATASETS.register_module()
class SyntheticShapes(ClsDataset):
    """Coloured shapes at random positions and sizes on a noisy grey background.

    Args:
        num_samples: number of images.
        image_size: side in pixels.
        colours: colour names (keys of ``COLOURS``).
        shapes: shape names (``SHAPES``).
        object_size: (min, max) shape side as a fraction of ``image_size``.
        split: ``'train'`` or ``'test'`` (different images from the same seed); default from ``test_mode``.
        seed: everything is a function of (seed, split, index).
    """

    def __init__(self, num_samples: int = 1000, image_size: int = 64,
                 colours: Sequence[str] = ('red', 'green', 'blue'),
                 shapes: Sequence[str] = ('circle', 'square', 'triangle'),
                 object_size: Sequence[float] = (0.25, 0.5), split: str | None = None, seed: int = 0,
                 **kwargs: Any) -> None:
        bad = [c for c in colours if c not in COLOURS] + [s for s in shapes if s not in SHAPES]
        if bad:
            raise DataError(f'SyntheticShapes: unknown colour/shape {bad[0]!r}; colours: {", ".join(COLOURS)}; '
                            f'shapes: {", ".join(SHAPES)}.')
        if num_samples < 1:
            raise DataError(f'SyntheticShapes: num_samples must be >= 1, got {num_samples}.')
        self.num_samples, self.image_size, self.seed = int(num_samples), int(image_size), int(seed)
        self.colours, self.shapes, self.object_size = tuple(colours), tuple(shapes), tuple(object_size)
        self.split = split or ('test' if kwargs.get('test_mode') else 'train')
        classes = tuple(f'{c} {s}' for c in self.colours for s in self.shapes)
        super().__init__(metainfo={'classes': classes}, **kwargs)

    def load_data_list(self) -> list[dict[str, Any]]:
        n_cls = len(self.colours) * len(self.shapes)
        rng = np.random.default_rng([self.seed, 1 if self.split == 'train' else 2])
        labels = rng.integers(0, n_cls, self.num_samples)
        return [dict(gt_label=int(lab), sample_idx=i) for i, lab in enumerate(labels)]

    def render(self, info: dict[str, Any]) -> dict[str, Any]:
        from PIL import Image, ImageDraw

        rng = np.random.default_rng([self.seed, 1 if self.split == 'train' else 2, info['sample_idx'], 11])
        n = self.image_size
        colour = self.colours[info['gt_label'] // len(self.shapes)]
        shape = self.shapes[info['gt_label'] % len(self.shapes)]
        size = int(rng.uniform(*self.object_size) * n)
        size = max(4, min(size, n))
        x, y = (int(rng.integers(0, n - size + 1)) for _ in range(2))
        background = rng.normal(120, 30, (n, n, 1)).clip(0, 255).repeat(3, axis=2).astype(np.uint8)
        img, mask = Image.fromarray(background), Image.new('L', (n, n), 0)
        _draw(ImageDraw.Draw(img), shape, x, y, size, COLOURS[colour])
        _draw(ImageDraw.Draw(mask), shape, x, y, size, 255)
        mask_arr = np.asarray(mask) > 0
        ys, xs = np.nonzero(mask_arr)
        box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        return dict(info, img=np.asarray(img), gt_mask=mask_arr, gt_box=box)
