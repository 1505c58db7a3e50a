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


class DataSample(BaseDataElement):
    """Annotations (``gt_*``) and predictions (``pred_*``) of one image."""

    def set_gt_label(self, label: int | torch.Tensor) -> DataSample:
        self.gt_label = torch.as_tensor(label, dtype=torch.long).reshape(())
        return self

    def set_pred_score(self, score: torch.Tensor) -> DataSample:
        self.pred_score = score
        self.pred_label = score.argmax(-1)
        return self


def stack_field(samples: list[DataSample], name: str) -> torch.Tensor | None:
    """Stack one field over a batch; ``None`` if any sample lacks it.

    Example:
        >>> stack_field([DataSample().set_gt_label(1), DataSample().set_gt_label(2)], 'gt_label').tolist()
        [1, 2]
    """
    values = [s.get(name) for s in samples]
    if not values or any(v is None for v in values):
        return None
    return torch.stack([torch.as_tensor(v) for v in values])
