"""``ClsDataset``: the mmengine ``BaseDataset`` all xzoo datasets derive from.

A subclass implements ``load_data_list()`` (one dict per sample: ``gt_label`` plus ``img_path`` or an in-memory
``img``; optional ``gt_box`` xyxy, ``gt_mask`` or ``gt_mask_path``) and, for in-memory data, ``render(info)``.
Images are read with PIL and converted to RGB (greyscale, palette, RGBA and CMYK files are converted; an
unreadable or truncated file raises :class:`~registry.errors.DataError` naming it). The pipeline is built from
``TRANSFORMS`` and ``PackInputs`` is appended when missing.

Example:
    >>> from registry import DATASETS
    >>> ds = DATASETS.build(dict(type='SyntheticShapes', num_samples=4, image_size=32))
    >>> sorted(ds[0])
    ['data_samples', 'inputs']
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from mmengine.dataset import BaseDataset

from registry import TRANSFORMS
from registry.errors import DataError

from .transforms import PackInputs, to_tv_tensors


def read_rgb(path: str) -> np.ndarray:
    """Read an image file as an RGB uint8 array ``[H, W, 3]``; :class:`DataError` names a bad file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode != 'RGB':
                im = im.convert('RGBA').convert('RGB') if im.mode in ('P', 'LA') else im.convert('RGB')
            return np.array(im, dtype=np.uint8)  # a writable copy (torch warns on read-only arrays)
    except FileNotFoundError as exc:
        raise DataError(f'Image file {path!r} does not exist (listed by the dataset annotations).') from exc
    except Image.DecompressionBombError as exc:  # refused from the header, before any pixel is decoded
        raise DataError(f'Cannot read image {path!r}: {exc} PIL refuses images this large '
                        '(PIL.Image.MAX_IMAGE_PIXELS); shrink it, or raise that limit if you trust the file.') from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f'Cannot read image {path!r} ({type(exc).__name__}: {exc}). The file is truncated or '
                        'not an image: replace it or remove it from the dataset.') from exc


def read_mask(path: str, threshold: int = 128) -> np.ndarray:
    """Read a mask PNG as a bool array (pixel >= ``threshold`` in greyscale)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert('L')) >= threshold
    except (OSError, Image.DecompressionBombError) as exc:
        raise DataError(f'Cannot read mask {path!r} ({type(exc).__name__}: {exc}).') from exc


class ClsDataset(BaseDataset):
    """Classification dataset with optional object box and mask per sample.

    Args:
        data_root: folder of the data (meaning depends on the subclass).
        pipeline: list of ``TRANSFORMS`` configs or callables.
        test_mode: evaluation split when the subclass has no explicit ``split``.
        indices: keep only these sample indices (an int keeps the first N), as mmengine.
        lazy_init, serialize_data, max_refetch: as mmengine's ``BaseDataset``.
    """

    METAINFO: dict = {'classes': ()}

    component_args = {'pipeline': 'TRANSFORMS'}

    def __init__(self, data_root: str = '', pipeline: Sequence[dict | Callable] = (), test_mode: bool = False,
                 indices: int | Sequence[int] | None = None, lazy_init: bool = False, serialize_data: bool = True,
                 max_refetch: int = 1, metainfo: dict | None = None) -> None:
        steps = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        if not steps or not isinstance(steps[-1], PackInputs):
            steps.append(PackInputs())
        super().__init__(data_root=data_root or '', pipeline=steps, test_mode=test_mode, indices=indices,
                         lazy_init=lazy_init, serialize_data=serialize_data, max_refetch=max_refetch,
                         metainfo=metainfo)

    def _join_prefix(self) -> None:  # our subclasses resolve their own paths
        pass

    @property
    def class_names(self) -> list[str]:
        return list(self.metainfo['classes'])

    def full_init(self) -> None:
        super().full_init()
        if len(self) == 0:
            raise DataError(f'{type(self).__name__} at {self.data_root!r} has no samples for this split. '
                            'Check data_root and the split/indices settings.')

    def render(self, info: dict[str, Any]) -> dict[str, Any]:
        """Produce ``img`` (and ``gt_box``/``gt_mask``) for an in-memory sample; file datasets need not."""
        raise NotImplementedError(f'{type(self).__name__} lists samples without img_path: implement render()')

    def load_sample(self, info: dict[str, Any]) -> dict[str, Any]:
        """Read or render one sample into the pipeline's input dict (tv_tensors)."""
        results = dict(info)
        if results.get('img') is None:
            if results.get('img_path'):
                results['img'] = read_rgb(results['img_path'])
            else:
                results = self.render(results)
        if results.get('gt_mask') is None and results.get('gt_mask_path'):
            results['gt_mask'] = read_mask(results['gt_mask_path'])
        results.pop('gt_mask_path', None)
        return to_tv_tensors(results)

    def prepare_data(self, idx: int) -> Any:
        """Load sample ``idx`` and run the pipeline; a failure is a :class:`DataError` naming the sample and step."""
        info = self.get_data_info(idx)
        where = info.get('img_path') or f'sample {idx}'
        try:
            results = self.load_sample(info)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - a sample that cannot be made (bad settings or file)
            raise DataError(f'{type(self).__name__}: cannot load {where!r} ({type(exc).__name__}: '
                            f'{_first_line(exc)}). Check the dataset settings.') from exc
        for step in getattr(self.pipeline, 'transforms', [self.pipeline]):
            try:
                results = step(results)
            except DataError:
                raise
            except Exception as exc:  # noqa: BLE001 - a transform rejected this sample
                raise DataError(f'{type(self).__name__}: transform {step!r} failed on {where!r} '
                                f'({type(exc).__name__}: {_first_line(exc)}). Check the pipeline settings, e.g. a '
                                'crop larger than the images.') from exc
            if results is None:
                return None
        return results


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ''
