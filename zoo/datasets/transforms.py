"""Data transforms (registry ``TRANSFORMS``): torchvision v2 transforms that keep boxes and masks aligned.

A pipeline works on a dict whose ``img`` is a ``tv_tensors.Image``, ``gt_box`` a ``tv_tensors.BoundingBoxes``
and ``gt_mask`` a ``tv_tensors.Mask`` (the dataset wraps them); torchvision v2 transforms every one of them
together and passes other keys through. ``PackInputs`` (appended automatically when missing) turns the dict into
``dict(inputs=uint8 [3, H, W], data_samples=DataSample)``.

Every public torchvision v2 transform is registered under its torchvision name with torchvision's arguments
(``Resize``, ``CenterCrop``, ``RandomResizedCrop``, ``ColorJitter``, ``ElasticTransform``, ...). Names only: a
registry never imports a dotted module path.

Example:
    >>> import torch
    >>> from torchvision import tv_tensors
    >>> from registry import TRANSFORMS
    >>> resize = TRANSFORMS.build(dict(type='Resize', size=(4, 4)))
    >>> out = resize(dict(img=tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8)), gt_label=1))
    >>> tuple(out['img'].shape), out['gt_label']
    ((3, 4, 4), 1)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from registry import TRANSFORMS

from ..structures import DataSample

for _name in sorted(dir(v2)):
    _cls = getattr(v2, _name)
    if (isinstance(_cls, type) and issubclass(_cls, v2.Transform) and not _name.startswith('_')
            and _name not in ('Transform', 'Lambda') and _name not in TRANSFORMS._module_dict):
        TRANSFORMS.register_module(module=_cls)


def to_tv_tensors(results: dict[str, Any]) -> dict[str, Any]:
    """Wrap ``img`` (HWC uint8 array / CHW tensor), ``gt_box`` (xyxy) and ``gt_mask`` (HW) as tv_tensors."""
    out = dict(results)
    img = out['img']
    if isinstance(img, np.ndarray):
        img = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    out['img'] = tv_tensors.Image(img)
    h, w = out['img'].shape[-2:]
    out.setdefault('ori_shape', (int(h), int(w)))
    if out.get('gt_box') is not None:
        box = torch.as_tensor(np.asarray(out['gt_box'], dtype=np.float32)).reshape(1, 4)
        out['gt_box'] = tv_tensors.BoundingBoxes(box, format='XYXY', canvas_size=(int(h), int(w)))
    if out.get('gt_mask') is not None:
        out['gt_mask'] = tv_tensors.Mask(torch.as_tensor(np.asarray(out['gt_mask'], dtype=bool)))
    return out


@TRANSFORMS.register_module()
class PackInputs:
    """Final step: ``dict(inputs=uint8 [3, H, W], data_samples=DataSample)``.

    The box is clamped to the image; ``has_object`` is False when the box/mask was cropped away (or unknown).
    """

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        img = results['img']
        h, w = int(img.shape[-2]), int(img.shape[-1])
        sample = DataSample(metainfo=dict(img_path=results.get('img_path'), sample_idx=results.get('sample_idx'),
                                          ori_shape=results.get('ori_shape'), img_shape=(h, w)))
        sample.set_gt_label(int(results['gt_label']))
        has_object = False
        if results.get('gt_mask') is not None:
            mask = torch.as_tensor(results['gt_mask']).bool().reshape(h, w)
            sample.gt_mask = mask
            has_object = bool(mask.any())
        if results.get('gt_box') is not None:
            box = torch.as_tensor(results['gt_box'], dtype=torch.float32).reshape(-1, 4)[0].clone()
            box[0::2] = box[0::2].clamp(0, w)
            box[1::2] = box[1::2].clamp(0, h)
            sample.gt_box = box
            box_ok = bool((box[2] > box[0]) & (box[3] > box[1]))
            has_object = box_ok if results.get('gt_mask') is None else has_object and box_ok
        sample.has_object = torch.tensor(has_object)
        return {'inputs': img.as_subclass(torch.Tensor).contiguous(), 'data_samples': sample}

    def __repr__(self) -> str:
        return 'PackInputs()'
