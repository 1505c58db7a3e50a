"""``ClsDataPreprocessor``: stack a batch, move it to the model's device, normalise with mean/std.

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> pre = MODELS.build(dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3))
    >>> out = pre(dict(inputs=[torch.full((3, 2, 2), 255, dtype=torch.uint8)]))
    >>> out['inputs'].tolist()[0][0][0]
    [1.0, 1.0]
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.model import BaseDataPreprocessor

from registry import MODELS


@MODELS.register_module()
class ClsDataPreprocessor(BaseDataPreprocessor):
    """Turn ``dict(inputs=[uint8 CHW, ...], data_samples=[...])`` into a normalised float batch.

    Args:
        mean, std: per-channel, in the 0-255 pixel scale. ``None`` takes them from the backbone's timm
            preprocessing config (the classifier fills them in).
    """

    def __init__(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.register_buffer('mean', torch.zeros(3, 1, 1), persistent=False)
        self.register_buffer('std', torch.ones(3, 1, 1), persistent=False)
        self.mean_std_set = False
        if mean is not None and std is not None:
            self.set_mean_std(mean, std)

    def set_mean_std(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.mean.device).view(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.std.device).view(-1, 1, 1)
        self.mean_std_set = True

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """0-255 pixels ``[B, C, H, W]`` (any dtype) → normalised float."""
        return (images.float() - self.mean) / self.std

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(list(inputs))
        return {'inputs': self.normalize(inputs), 'data_samples': data.get('data_samples')}
