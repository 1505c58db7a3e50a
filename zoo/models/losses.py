"""Losses (registry ``LOSSES``).

Example:
    >>> import torch
    >>> from registry import LOSSES
    >>> loss = LOSSES.build(dict(type='CrossEntropyLoss', label_smoothing=0.1))
    >>> float(loss(torch.zeros(2, 4), torch.tensor([0, 1]))) > 0
    True
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from registry import LOSSES


@LOSSES.register_module()
class CrossEntropyLoss(nn.Module):
    """Softmax cross-entropy with optional label smoothing and a weight.

    Args:
        label_smoothing: as ``torch.nn.functional.cross_entropy``.
        loss_weight: multiplies the loss.
    """

    def __init__(self, label_smoothing: float = 0.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        self.loss_weight = loss_weight

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
