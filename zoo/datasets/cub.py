"""``CUB200``: Caltech-UCSD Birds-200-2011 read from its official folder, with boxes and (optional) masks.

Layout of ``data_root`` (the official ``CUB_200_2011`` folder)::

    images.txt                 <image_id> <class_folder>/<file>.jpg
    classes.txt                <class_id> 001.Black_footed_Albatross
    image_class_labels.txt     <image_id> <class_id>          (1-based)
    train_test_split.txt       <image_id> <1 = train, 0 = test>
    bounding_boxes.txt         <image_id> <x> <y> <width> <height>
    images/<class_folder>/<file>.jpg
    segmentations/<class_folder>/<file>.png   (optional; from the separate CUB segmentation release)

Splits: ``'test'`` is the official test split; ``'train'`` and ``'val'`` divide the official training split, class
by class, with a seeded permutation: ``val_fraction`` of each class's training images (rounded: 3 of 30) form
``'val'`` (about 600 images), the rest ``'train'``; ``'trainval'`` is the whole official training split. Select
checkpoints on ``'val'`` and report on ``'test'``.

Class names are human-readable: ``'001.Black_footed_Albatross'`` → ``'Black footed Albatross'``. A segmentation
PNG is a soft annotator-agreement map; a pixel belongs to the mask when it is >= ``mask_threshold`` (128: a
majority of annotators).

Example:
    >>> from zoo.datasets.cub import class_name_from_folder
    >>> class_name_from_folder('001.Black_footed_Albatross')
    'Black footed Albatross'
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from registry import DATASETS
from registry.errors import DataError
from zoo.core.assets import Asset, LocalPath

from .base import ClsDataset

_FILES = ('images.txt', 'classes.txt', 'image_class_labels.txt', 'train_test_split.txt')
_URL = 'https://www.vision.caltech.edu/datasets/cub_200_2011/'
_TERMS = 'images for non-commercial research and educational use only'
_LAYOUT = ('CUB_200_2011.tgz extracted: the CUB_200_2011 folder holding images.txt, classes.txt, '
           'image_class_labels.txt, train_test_split.txt, bounding_boxes.txt and images/<class>/<image>.jpg '
           '(segmentations/<class>/<image>.png from the separate segmentation release, optional)')

_SPLITS = ('train', 'val', 'trainval', 'test')


def val_ids(labels_of: dict[int, int], fraction: float, seed: int) -> set[int]:
    """Image ids held out for validation: ``round(fraction * n_c)`` of each class's ``n_c`` ids, seeded.

    Example:
        >>> sorted(val_ids({i: i % 2 for i in range(20)}, 0.2, seed=0))
        [5, 8, 12, 19]
    """
    by_class: dict[int, list[int]] = {}
    for image_id in sorted(labels_of):
        by_class.setdefault(labels_of[image_id], []).append(image_id)
    rng = np.random.default_rng(seed)
    held: set[int] = set()
    for label in sorted(by_class):
        ids = by_class[label]
        held.update(ids[i] for i in rng.permutation(len(ids))[:int(round(fraction * len(ids)))])
    return held


def class_name_from_folder(folder: str) -> str:
    """``'001.Black_footed_Albatross'`` → ``'Black footed Albatross'``."""
    return folder.split('.', 1)[-1].replace('_', ' ').strip()


def _read_table(path: str) -> dict[int, list[str]]:
    table: dict[int, list[str]] = {}
    try:
        with open(path, encoding='utf-8') as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    table[int(parts[0])] = parts[1:]
                except ValueError as exc:
                    raise DataError(f'{path}:{lineno}: expected "<id> ...", got {line.strip()!r}.') from exc
    except FileNotFoundError as exc:
        raise DataError(f'CUB200: {path!r} is missing. data_root must be the official CUB_200_2011 folder '
                        f'holding {", ".join(_FILES)} and images/ ({_URL}).') from exc
    return table


@DATASETS.register_module()
class CUB200(ClsDataset):
    """CUB-200-2011 (200 bird species; 5,994 official train / 5,794 test images).

    Args:
        data_root: the ``CUB_200_2011`` folder.
        split: ``'train'``, ``'val'`` (both from the official training split, disjoint), ``'trainval'`` (their
            union) or ``'test'`` (default: ``'test'`` when ``test_mode`` else ``'train'``).
        val_fraction: share of each class's official training images held out as ``'val'`` (0.1; 0 puts them
            all in ``'train'``). Use the same value and ``split_seed`` for ``'train'`` and ``'val'``.
        split_seed: seed of the train/val division.
        with_box: attach the bounding box of ``bounding_boxes.txt``.
        with_mask: attach the segmentation mask when ``segmentations/`` exists.
        mask_threshold: grey level (0-255) from which a segmentation pixel counts as object.
        **kwargs: ``pipeline``, ``test_mode``, ``indices``, ... as :class:`ClsDataset`.
    """

    def __init__(self, data_root: str, split: str | None = None, with_box: bool = True, with_mask: bool = True,
                 mask_threshold: int = 128, val_fraction: float = 0.1, split_seed: int = 0, **kwargs: Any) -> None:
        if split not in (None, *_SPLITS):
            raise DataError(f"CUB200: split must be one of {', '.join(map(repr, _SPLITS))}, got {split!r}.")
        if not 0 <= val_fraction < 1:
            raise DataError(f'CUB200: val_fraction must be in [0, 1), got {val_fraction!r}.')
        self.split = split or ('test' if kwargs.get('test_mode') else 'train')
        self.val_fraction, self.split_seed = float(val_fraction), int(split_seed)
        self.with_box, self.with_mask, self.mask_threshold = with_box, with_mask, mask_threshold
        super().__init__(data_root=data_root, **kwargs)

    @classmethod
    def required_assets(cls, args: dict[str, Any]) -> list[Asset]:
        """The CUB_200_2011 folder and the files this split reads (:mod:`zoo.core.assets`)."""
        expect = (*_FILES, *(('bounding_boxes.txt',) if args.get('with_box', True) else ()), 'images')
        return [LocalPath(what='CUB200', arg='data_root', paths=(str(args.get('data_root') or ''),),
                          expect=tuple((name,) for name in expect), page=_URL, terms=_TERMS, layout=_LAYOUT,
                          instead=('PATH (the CUB_200_2011 folder)',))]

    def load_data_list(self) -> list[dict[str, Any]]:
        root = os.path.expanduser(self.data_root or '')
        if os.path.isfile(root):
            archive = root.endswith(('.tgz', '.tar.gz', '.tar'))
            hint = ' (an archive? extract it first: tar -xzf CUB_200_2011.tgz)' if archive else ''
            raise DataError(f'CUB200: data_root {root!r} is a file{hint}; it must be the CUB_200_2011 folder that '
                            'holds images.txt. Set --cfg-options train_dataloader.dataset.data_root=PATH '
                            '(and val/test).')
        if not root or not os.path.isdir(root):
            raise DataError(f'CUB200: data_root {root!r} does not exist. Download CUB_200_2011 from {_URL} and '
                            'set --cfg-options train_dataloader.dataset.data_root=PATH (and val/test).')
        images = _read_table(os.path.join(root, 'images.txt'))
        classes = _read_table(os.path.join(root, 'classes.txt'))
        labels = _read_table(os.path.join(root, 'image_class_labels.txt'))
        split = _read_table(os.path.join(root, 'train_test_split.txt'))
        boxes = _read_table(os.path.join(root, 'bounding_boxes.txt')) if self.with_box else {}
        if self.with_box and not boxes:
            raise DataError(f'CUB200: {os.path.join(root, "bounding_boxes.txt")!r} is empty.')
        class_ids = sorted(classes)
        if class_ids != list(range(1, len(class_ids) + 1)):
            raise DataError(f'CUB200: classes.txt must number classes 1..N, got ids {class_ids[:5]}...')
        self._metainfo['classes'] = tuple(class_name_from_folder(classes[i][0]) for i in class_ids)
        seg_root = os.path.join(root, 'segmentations')
        use_masks = self.with_mask and os.path.isdir(seg_root)
        want = '0' if self.split == 'test' else '1'
        chosen = [i for i in sorted(images) if split.get(i, [None])[0] == want]
        for image_id in chosen:
            if image_id not in labels:
                raise DataError(f'CUB200: image {image_id} ({images[image_id][0]}) has no label in '
                                'image_class_labels.txt.')
        if self.split in ('train', 'val'):
            held = val_ids({i: int(labels[i][0]) for i in chosen}, self.val_fraction, self.split_seed)
            chosen = [i for i in chosen if (i in held) == (self.split == 'val')]
            if not chosen:
                raise DataError(f'CUB200: the {self.split!r} split is empty (val_fraction={self.val_fraction}: '
                                'too few training images per class for a validation share).')
        data_list = []
        for image_id in chosen:
            rel = images[image_id][0]
            info: dict[str, Any] = dict(img_path=os.path.join(root, 'images', rel),
                                        gt_label=int(labels[image_id][0]) - 1, sample_idx=image_id)
            if self.with_box:
                if image_id not in boxes:
                    raise DataError(f'CUB200: image {image_id} ({rel}) has no line in bounding_boxes.txt.')
                x, y, w, h = (float(v) for v in boxes[image_id][:4])
                info['gt_box'] = [x, y, x + w, y + h]
            if use_masks:
                mask_path = os.path.join(seg_root, os.path.splitext(rel)[0] + '.png')
                if os.path.isfile(mask_path):
                    info['gt_mask_path'] = mask_path
            data_list.append(info)
        return data_list

    def load_sample(self, info: dict[str, Any]) -> dict[str, Any]:
        if info.get('gt_mask_path'):
            from .base import read_mask
            info = dict(info, gt_mask=read_mask(info['gt_mask_path'], self.mask_threshold))
        return super().load_sample(info)
