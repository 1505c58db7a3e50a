"""``ClutteredFashionMNIST``: real Fashion-MNIST items pasted onto CC0 textures, with an exact box and mask.

Each sample is rendered on the fly, deterministically from ``(seed, split, index)``: a Fashion-MNIST item is
scaled to ``object_size`` pixels, tinted and alpha-composited at a random position onto a random crop of a
scikit-image CC0 texture (grass, gravel, brick), with ``num_clutter`` fragments of other items as distractors that
never touch the object's box. The mask is the set of item pixels brighter than ``mask_threshold`` (exact: we
placed them); the box is the mask's tight box. With the default 128-px canvas a stride-16 backbone gives an 8×8
feature map, enough for saliency metrics to mean something.

Splits: ``'test'`` draws from Fashion-MNIST's 10k test items; ``'train'`` and ``'val'`` from its 60k training items,
split once by a seeded permutation: the last ``val_fraction`` of it (6,000 items by default) is the validation pool,
never seen in training, the rest the training pool. ``num_samples`` takes a seeded subset of a pool.

Fashion-MNIST files (``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``) are looked up in ``data_root``, then
``$XZOO_FASHION_MNIST``, Debian's ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``), then
``data/fashion-mnist`` (where ``make data`` puts them).

Example::

    from registry import DATASETS
    ds = DATASETS.build(dict(type='ClutteredFashionMNIST', split='test', num_samples=8))
    ds[0]['data_samples'].gt_mask.shape
    torch.Size([128, 128])
"""
from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from registry import DATASETS
from registry.errors import DataError
from zoo.core.assets import Asset, LocalPath

from .base import ClsDataset

CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
           'Ankle boot')
DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'
LOCAL_DIR = os.path.join('data', 'fashion-mnist')
_PREFIX = {'train': 'train', 'test': 't10k'}
_SPLITS = ('train', 'val', 'test')
_SPLIT_CODE = {'train': 1, 'test': 2, 'val': 3}  # seeds each split's permutation and renders
_HOW = ('Get them with `make data` (downloads Debian\'s dataset-fashion-mnist .deb and unpacks it into '
        'data/fashion-mnist), `sudo apt-get install dataset-fashion-mnist`, or download the four files from '
        'https://github.com/zalandoresearch/fashion-mnist (data/fashion) into a folder passed as data_root.')


def find_fashion_mnist(data_root: str | None = None) -> str:
    """The first folder holding the Fashion-MNIST files, or :class:`DataError` saying how to get them."""
    candidates = [data_root, os.environ.get('XZOO_FASHION_MNIST'), DEBIAN_DIR, LOCAL_DIR]
    for folder in filter(None, candidates):
        folder = os.path.expanduser(folder)
        if any(os.path.isfile(os.path.join(folder, 't10k-images-idx3-ubyte' + ext)) for ext in ('.gz', '')):
            return folder
    if data_root:
        raise DataError(f'ClutteredFashionMNIST: no Fashion-MNIST files in data_root {data_root!r}. {_HOW}')
    raise DataError(f'ClutteredFashionMNIST: Fashion-MNIST files not found (looked in $XZOO_FASHION_MNIST, '
                    f'{DEBIAN_DIR}, {LOCAL_DIR}). {_HOW}')


def _read_idx(path: str, offset: int) -> np.ndarray:
    for candidate in (path + '.gz', path):
        if os.path.isfile(candidate):
            opener = gzip.open if candidate.endswith('.gz') else open
            try:
                with opener(candidate, 'rb') as fh:
                    return np.frombuffer(fh.read(), np.uint8, offset=offset)
            except (OSError, EOFError, ValueError) as exc:
                raise DataError(f'Cannot read {candidate!r} ({exc}): the file is corrupt. {_HOW}') from exc
    raise DataError(f'{path}[.gz] is missing. {_HOW}')


@functools.lru_cache(maxsize=4)
def load_fashion_mnist(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 28, 28] uint8, labels [N] uint8)`` of one split."""
    prefix = os.path.join(folder, _PREFIX[split])
    images = _read_idx(prefix + '-images-idx3-ubyte', 16)
    labels = _read_idx(prefix + '-labels-idx1-ubyte', 8)
    if images.size != labels.size * 28 * 28:
        raise DataError(f'Fashion-MNIST {split} files in {folder!r} disagree: {labels.size} labels, '
                        f'{images.size // 784} images. {_HOW}')
    return images.reshape(-1, 28, 28), labels


@functools.lru_cache(maxsize=1)
def load_textures(names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """CC0 greyscale textures from scikit-image's bundled data, as float arrays in [0, 1]."""
    import skimage.data

    out = []
    for name in names:
        fn = getattr(skimage.data, name, None)
        if fn is None:
            raise DataError(f'scikit-image has no texture {name!r}; use grass, gravel or brick.')
        img = np.asarray(fn(), dtype=np.float32)
        out.append((img.mean(-1) if img.ndim == 3 else img) / 255.0)
    return tuple(out)


def _resize(patch: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(patch).resize((size, size), Image.BILINEAR), dtype=np.float32)


@DATASETS.register_module()
class ClutteredFashionMNIST(ClsDataset):
    """Fashion-MNIST in clutter on textures, 10 classes, exact object box and mask.

    Args:
        data_root: folder with the Fashion-MNIST files (optional; see the module doc for the lookup order).
        split: ``'train'``, ``'val'`` (both from the 60k training items, disjoint) or ``'test'`` (the 10k test
            items); default from ``test_mode``.
        num_samples: use a seeded random subset of this many items of the split (``None``: all).
        val_fraction: share of the 60k training items held out as the ``'val'`` pool (0.1: 6,000); the same value
            must be used for ``'train'`` and ``'val'`` (they are the two parts of one permutation).
        canvas_size: output image side in pixels.
        object_size: (min, max) side of the pasted item in pixels.
        num_clutter: distractor fragments per image.
        clutter_size: (min, max) side of a distractor fragment in pixels.
        textures: scikit-image texture names.
        mask_threshold: item grey level (0-255, after scaling) from which a pixel is object.
        seed: everything is a function of (seed, split, index).
    """

    METAINFO = {'classes': CLASSES}

    def __init__(self, data_root: str | None = None, split: str | None = None, num_samples: int | None = None,
                 canvas_size: int = 128, object_size: Sequence[int] = (40, 64), num_clutter: int = 4,
                 clutter_size: Sequence[int] = (10, 18), textures: Sequence[str] = ('grass', 'gravel', 'brick'),
                 mask_threshold: int = 25, seed: int = 0, val_fraction: float = 0.1, **kwargs: Any) -> None:
        if split not in (None, *_SPLITS):
            raise DataError(f"ClutteredFashionMNIST: split must be 'train', 'val' or 'test', got {split!r}.")
        if not 0 <= val_fraction < 1:
            raise DataError(f'ClutteredFashionMNIST: val_fraction must be in [0, 1), got {val_fraction!r}.')
        if not (0 < object_size[0] <= object_size[1] <= canvas_size):
            raise DataError(f'ClutteredFashionMNIST: object_size {tuple(object_size)} must satisfy '
                            f'0 < min <= max <= canvas_size ({canvas_size}).')
        self.split = split or ('test' if kwargs.get('test_mode') else 'train')
        self.folder = find_fashion_mnist(data_root)
        self.num_samples, self.canvas_size, self.seed = num_samples, int(canvas_size), int(seed)
        self.object_size, self.clutter_size = tuple(object_size), tuple(clutter_size)
        self.num_clutter, self.textures, self.mask_threshold = int(num_clutter), tuple(textures), mask_threshold
        self.val_fraction = float(val_fraction)
        super().__init__(data_root=self.folder, **kwargs)

    @property
    def source_split(self) -> str:
        """The Fashion-MNIST files the split reads (``'val'`` reads the training files)."""
        return 'test' if self.split == 'test' else 'train'

    @classmethod
    def required_assets(cls, args: dict[str, Any]) -> list[Asset]:
        """The Fashion-MNIST files of the split, where :func:`find_fashion_mnist` looks (:mod:`zoo.core.assets`);
        ``tools/prepare_data.py`` fetches Debian's package when none has them."""
        split = args.get('split') or ('test' if args.get('test_mode') else 'train')
        split = 'test' if split == 'test' else 'train'  # 'val' is carved from the training files
        root = args.get('data_root')
        paths = (root,) if root else tuple(filter(None, [os.environ.get('XZOO_FASHION_MNIST'), DEBIAN_DIR, LOCAL_DIR]))
        names = [f'{_PREFIX[s]}-{kind}-ubyte' for s in dict.fromkeys(('test', split)) for kind in ('images-idx3',
                                                                                                 'labels-idx1')]
        return [LocalPath(what='Fashion-MNIST', arg='data_root', paths=paths, maker='fashion-mnist',
                          expect=tuple((n + '.gz', n) for n in names), page='https://github.com/zalandoresearch/'
                          'fashion-mnist (data/fashion)', terms='MIT licence', instead=('PATH (a folder holding the '
                          'Fashion-MNIST files)',), layout='{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]')]

    def load_data_list(self) -> list[dict[str, Any]]:
        _, labels = load_fashion_mnist(self.folder, self.source_split)
        code = _SPLIT_CODE[self.source_split]
        order = np.random.default_rng([self.seed, code]).permutation(len(labels))
        if self.source_split == 'train':
            n_val = int(round(self.val_fraction * len(order)))
            order = order[len(order) - n_val:] if self.split == 'val' else order[:len(order) - n_val]
        if self.num_samples is not None:
            order = order[:int(self.num_samples)]
        if not len(order):
            raise DataError(f'ClutteredFashionMNIST: the {self.split!r} split is empty (val_fraction='
                            f'{self.val_fraction}, num_samples={self.num_samples}).')
        return [dict(src=int(src), gt_label=int(labels[src]), sample_idx=i) for i, src in enumerate(order)]

    def render(self, info: dict[str, Any]) -> dict[str, Any]:
        images, _ = load_fashion_mnist(self.folder, self.source_split)
        rng = np.random.default_rng([self.seed, _SPLIT_CODE[self.split], info['sample_idx'], 7])
        c = self.canvas_size
        texture = load_textures(self.textures)[rng.integers(len(self.textures))]
        ty, tx = (rng.integers(0, max(1, s - c + 1)) for s in texture.shape)
        crop = texture[ty:ty + c, tx:tx + c]
        if crop.shape != (c, c):
            crop = _resize((crop * 255).astype(np.uint8), c) / 255.0
        canvas = (0.15 + 0.55 * crop)[..., None] * rng.uniform(0.5, 1.0, 3) * 255.0
        size = int(rng.integers(self.object_size[0], self.object_size[1] + 1))
        x0, y0 = (int(rng.integers(0, c - size + 1)) for _ in range(2))
        for _ in range(self.num_clutter):  # distractor fragments of other items, outside the object's box
            other = images[rng.integers(len(images))]
            ps = int(rng.integers(self.clutter_size[0], self.clutter_size[1] + 1))
            py, px = (int(rng.integers(4, 28 - 10)) for _ in range(2))
            frag = _resize(np.ascontiguousarray(other[py:py + 10, px:px + 10]), ps)
            for _try in range(10):
                fx, fy = (int(rng.integers(0, c - ps + 1)) for _ in range(2))
                if fx + ps <= x0 or fx >= x0 + size or fy + ps <= y0 or fy >= y0 + size:
                    self._paste(canvas, frag, fx, fy, rng.uniform(0.6, 1.0, 3))
                    break
        item = _resize(np.ascontiguousarray(images[info['src']]), size)
        self._paste(canvas, item, x0, y0, rng.uniform(0.6, 1.0, 3))
        mask = np.zeros((c, c), dtype=bool)
        mask[y0:y0 + size, x0:x0 + size] = item > self.mask_threshold
        ys, xs = np.nonzero(mask)
        box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)] if len(xs) else \
            [float(x0), float(y0), float(x0 + size), float(y0 + size)]
        return dict(info, img=np.clip(canvas, 0, 255).astype(np.uint8), gt_mask=mask, gt_box=box)

    @staticmethod
    def _paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int, colour: np.ndarray) -> None:
        alpha = (patch / 255.0)[..., None]
        h, w = patch.shape
        region = canvas[y:y + h, x:x + w]
        canvas[y:y + h, x:x + w] = region * (1 - alpha) + alpha * colour * 255.0
