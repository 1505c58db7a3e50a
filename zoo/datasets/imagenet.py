"""``ImageNetFolder``: ImageNet (or any ImageFolder-style set) from class folders or from a list file.

Layout of ``data_root`` (what ``torchvision.datasets.ImageFolder`` reads; labels are the sorted class folders,
the order of torchvision's and timm's ImageNet classifiers)::

    train/n01440764/n01440764_10026.JPEG     class folders (ImageNet: the 1000 WordNet ids)
    val/n01440764/ILSVRC2012_val_00000293.JPEG   the validation images sorted into the same class folders

or, with ``ann_file``, any folder of images plus a list file of ``<path relative to data_root/split> <label>``
lines — e.g. the official flat ``val/ILSVRC2012_val_*.JPEG`` and L-CAM's 2000-image evaluation list
(``datalist/ILSVRC/Evaluation_2000.txt`` in ``bmezaris/L-CAM``).

Example:
    >>> import os, tempfile
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> for i, wnid in enumerate(['n02', 'n01']):
    ...     os.makedirs(os.path.join(root, 'val', wnid))
    ...     Image.new('RGB', (8, 8)).save(os.path.join(root, 'val', wnid, f'{i}.JPEG'))
    >>> ds = ImageNetFolder(data_root=root, split='val')
    >>> ds.class_names, [ds.get_data_info(i)['gt_label'] for i in range(len(ds))]
    (['n01', 'n02'], [0, 1])
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from registry import DATASETS
from registry.errors import DataError

from .base import ClsDataset

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


def _class_folders(folder: str) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir()) if os.path.isdir(folder) else []


@DATASETS.register_module()
class ImageNetFolder(ClsDataset):
    """Images in class folders (``<data_root>/<split>/<class>/<image>``) or listed in ``ann_file``.

    Args:
        data_root: the dataset folder (holding ``train/`` and ``val/``).
        split: the sub-folder to read (``'train'``, ``'val'``; default ``'val'`` when ``test_mode`` else
            ``'train'``).
        ann_file: a list file of ``<relative path> <label>`` lines (paths relative to ``data_root/split``);
            ``None`` reads the class folders.
        classes: class names in label order; default: the class folders of ``data_root/train`` (else of the
            split), else ``num_classes`` numbered names.
        num_classes: the class count when no names can be found (a list file over a flat folder).
        **kwargs: ``pipeline``, ``test_mode``, ``indices``, ... as :class:`ClsDataset`.
    """

    def __init__(self, data_root: str, split: str | None = None, ann_file: str | None = None,
                 classes: Sequence[str] | None = None, num_classes: int = 1000, **kwargs: Any) -> None:
        self.split = split or ('val' if kwargs.get('test_mode') else 'train')
        self.list_file = ann_file  # (mmengine's BaseDataset resets its own `ann_file`)
        folder = os.path.join(data_root, self.split)
        if not os.path.isdir(folder):
            raise DataError(f'ImageNetFolder: {folder!r} is not a folder. data_root must hold {self.split}/ (class '
                            'folders of images, or images listed by ann_file); see docs/lcam.md.')
        names = list(classes) if classes else (_class_folders(os.path.join(data_root, 'train'))
                                               or _class_folders(folder)
                                               or [f'class_{i}' for i in range(int(num_classes))])
        super().__init__(data_root=data_root, metainfo=dict(classes=tuple(names)), **kwargs)

    def load_data_list(self) -> list[dict[str, Any]]:
        folder = os.path.join(self.data_root, self.split)
        n = len(self.metainfo['classes'])
        if self.list_file:
            items = []
            try:
                with open(self.list_file, encoding='utf-8') as fh:
                    lines = [(i, line.split()) for i, line in enumerate(fh, 1) if line.strip()]
            except OSError as exc:
                raise DataError(f'ImageNetFolder: cannot read ann_file {self.list_file!r} ({exc}).') from exc
            for lineno, parts in lines:
                if len(parts) < 2 or not parts[-1].lstrip('-').isdigit() or not 0 <= int(parts[-1]) < n:
                    raise DataError(f'{self.list_file}:{lineno}: expected "<relative path> <label 0..{n - 1}>", got '
                                    f'{" ".join(parts)!r}.')
                items.append(dict(img_path=os.path.join(folder, ' '.join(parts[:-1])), gt_label=int(parts[-1])))
            return self._nonempty(items, self.list_file)
        index = {name: i for i, name in enumerate(self.metainfo['classes'])}
        items = []
        for name in _class_folders(folder):
            if name not in index:
                raise DataError(f'ImageNetFolder: {os.path.join(folder, name)!r} is not one of the '
                                f'{len(index)} classes (the class folders of train/, or `classes`).')
            for entry in sorted(os.scandir(os.path.join(folder, name)), key=lambda e: e.name):
                if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    items.append(dict(img_path=entry.path, gt_label=index[name]))
        return self._nonempty(items, folder)

    @staticmethod
    def _nonempty(items: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
        if not items:
            raise DataError(f'ImageNetFolder: no images in {where!r} (expected <class folder>/<image> files, or '
                            '"<relative path> <label>" lines in ann_file).')
        return items
