"""Ablation-CAM (Desai & Ramaswamy, WACV 2020): channel weights from the score drop when a channel is ablated.

``w_c = (y - y_c) / y``: ``y`` is the target score, ``y_c`` the score with channel ``c`` of the target layer set to
the ablation value (the rest of the network unchanged). Every (image, channel) pair is one forward pass with the
layer's output replaced by a forward hook; pairs of the whole batch run in chunks of ``batch_size`` on the model's
device. No gradients.

Example:
    >>> import timm, torch
    >>> from zoo.explainers import AblationCAM
    >>> model = timm.create_model('test_resnet', pretrained=False, num_classes=3)
    >>> tuple(AblationCAM(target_layer='layer4', batch_size=64)(model, torch.randn(2, 3, 32, 32)).shape)
    (2, 32, 32)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from registry import EXPLAINERS
from registry.errors import ConfigError

from ._layers import channel_dim
from .base import CAMExplainer, Capture, forward_logits
from .scorecam import _positive_int, show_progress

ABLATION_OFFSET = 1e7
"""``ablation_value='auto'`` on a layer with negative values: the image's minimum activation minus this."""


@EXPLAINERS.register_module()
class AblationCAM(CAMExplainer):
    """Ablation-CAM.

    Args:
        target_layer: see :class:`~zoo.explainers.base.CAMExplainer` (tokens: the channel is ablated in every
            token, prefix tokens included, as grad-cam's ``AblationLayerVit``).
        batch_size: ablated copies per forward pass.
        ablation_value: ``'auto'`` (grad-cam's rule: 0 when the image's activations have minimum 0, e.g. after a
            ReLU, else that minimum minus 1e7) or a number (the paper sets channels to 0: ``0.0``).
        progress: show a tqdm bar; ``None`` shows one when there are 8 chunks or more.
        other arguments: see :class:`~zoo.explainers.base.CAMExplainer`.

    A target score of exactly 0 would divide by zero; its weights are then ``y - y_c``.
    """

    aliases = ('ablationcam', 'ablation-cam')
    uses_gradients = False
    supports_differentiable = False

    def __init__(self, target_layer: str | nn.Module | Sequence[str | nn.Module] | None = None, batch_size: int = 32,
                 ablation_value: str | float = 'auto', progress: bool | None = None,
                 patch_size: int | Sequence[int] | None = None, num_prefix_tokens: int | None = None,
                 output_fmt: str | None = None, relu: bool = True, normalize: bool = True, resize: bool = True,
                 eval_mode: bool = True, eigen_smooth: bool = False, aug_smooth: bool = False) -> None:
        if ablation_value != 'auto' and (isinstance(ablation_value, (str, bool)) or
                                         not isinstance(ablation_value, (int, float))):
            raise ConfigError(f"AblationCAM ablation_value must be 'auto' or a number, got {ablation_value!r}.")
        super().__init__(target_layer=target_layer, patch_size=patch_size, num_prefix_tokens=num_prefix_tokens,
                         output_fmt=output_fmt, relu=relu, eigen_smooth=eigen_smooth, aug_smooth=aug_smooth,
                         normalize=normalize, resize=resize, eval_mode=eval_mode)
        self.batch_size = _positive_int('AblationCAM', 'batch_size', batch_size)
        self.ablation_value = ablation_value
        self.progress = progress

    def values(self, raw: Tensor) -> Tensor:
        """The ablation value of each image ``[B]`` (native layer output ``raw``)."""
        if self.ablation_value != 'auto':
            return torch.full((raw.shape[0],), float(self.ablation_value), device=raw.device, dtype=raw.dtype)
        low = raw.flatten(1).amin(1)
        return torch.where(low == 0, torch.zeros_like(low), low - ABLATION_OFFSET)

    @torch.no_grad()
    def channel_weights(self, cap: Capture) -> Tensor:
        raw = cap.raw_activations.detach()
        cdim = channel_dim(raw, cap.fmt)
        batch, channels = raw.shape[0], raw.shape[cdim]
        rows = torch.arange(batch, device=raw.device)
        original = cap.score(cap.logits, rows).float()
        values = self.values(raw)
        scores = torch.empty(batch, channels, device=raw.device)
        pairs = torch.cartesian_prod(rows, torch.arange(channels, device=raw.device)).split(self.batch_size)
        state: dict[str, Any] = {}

        def replace(_module: nn.Module, _args: Any, output: Tensor) -> Tensor:
            state['seen'] += 1
            return state['ablated'] if state['seen'] == cap.calls else output

        handle = cap.layer.register_forward_hook(replace)
        try:
            for chunk in tqdm(pairs, desc='AblationCAM', leave=False,
                              disable=not show_progress(self.progress, len(pairs))):
                b, c = chunk.unbind(1)
                ablated = raw[b].clone()
                view = ablated.movedim(cdim, 1)  # a view: writes land in `ablated`
                view[torch.arange(len(b), device=raw.device), c] = values[b].view(-1, *[1] * (view.ndim - 2))
                state.update(seen=0, ablated=ablated)
                logits = forward_logits(cap.model, cap.images[b])
                scores[b, c] = cap.score(logits, b).float()
        finally:
            handle.remove()
        denom = torch.where(original == 0, torch.ones_like(original), original)[:, None]
        return (original[:, None] - scores) / denom
