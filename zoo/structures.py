"""``DataSample``: one image's annotations and predictions, as mmpretrain users know it.

Fields (all optional): ``gt_label`` (int64 scalar tensor), ``gt_box`` (float32 ``[4]`` x1, y1, x2, y2 in the
current image's pixels), ``gt_mask`` (bool ``[H, W]``), ``has_object`` (bool: box/mask known and not cropped
away), ``pred_score`` (float ``[C]`` probabilities), ``pred_label`` (int64 scalar). Meta: ``img_path``,
``sample_idx``, ``ori_shape``, ``img_shape``.

Example:
    >>> s = DataSample().set_gt_label(3)
    >>> int(s.gt_label)
    3
"""
from __future__ import annotations

import torch
from mmengine.structures import BaseDataElement

from zoo.ops.tensors import stack_field

__all__ = ['DataSample', 'stack_field']


class DataSample(BaseDataElement):
    """Annotations (``gt_*``) and predictions (``pred_*``) of one image."""

    def set_gt_label(self, label: int | torch.Tensor) -> DataSample:
        self.gt_label = torch.as_tensor(label, dtype=torch.long).reshape(())
        return self

    def set_pred_score(self, score: torch.Tensor) -> DataSample:
        self.pred_score = score
        self.pred_label = score.argmax(-1)
        return self
