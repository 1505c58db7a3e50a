"""``LinearClsHead``: dropout + one linear layer on pooled backbone features.

Example:
    >>> import torch
    >>> from registry import HEADS
    >>> head = HEADS.build(dict(type='LinearClsHead', num_classes=3, in_channels=8))
    >>> tuple(head(torch.randn(2, 8)).shape)
    (2, 3)
"""
from __future__ import annotations

import torch
from torch import nn

from registry import HEADS, LOSSES
from registry.errors import ConfigError


@HEADS.register_module()
class LinearClsHead(nn.Module):
    """Linear classifier; its ``fc`` equals a timm model's classifier, so weights move between the two.

    Args:
        num_classes: number of classes.
        in_channels: feature width (the classifier fills it from the backbone).
        dropout: dropout probability before the linear layer (timm's ``drop_rate``).
        loss: config of the classification loss (registry ``LOSSES``).
    """

    component_args = {'loss': 'LOSSES'}

    def __init__(self, num_classes: int, in_channels: int, dropout: float = 0.0,
                 loss: dict | None = None) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f'LinearClsHead needs num_classes >= 1 (an int), got {num_classes!r}.')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes)
        self.loss_module = LOSSES.build(loss or dict(type='CrossEntropyLoss'))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(pooled))

    def loss(self, pooled: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{'loss_cls': ...}`` for pooled features and integer labels."""
        return {'loss_cls': self.loss_module(self(pooled), labels)}
