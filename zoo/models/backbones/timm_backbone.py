"""``TimmBackbone``: any timm model as a feature extractor with explainer metadata.

Example:
    >>> import torch
    >>> from registry import BACKBONES
    >>> bb = BACKBONES.build(dict(type='TimmBackbone', model_name='resnet18', pretrained=False))
    >>> out = bb(torch.randn(2, 3, 64, 64))
    >>> tuple(out.feature_map.shape), tuple(out.pooled.shape), bb.default_target_layer
    ((2, 512, 2, 2), (2, 512), 'model.layer4')
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from registry import BACKBONES
from registry.errors import CheckpointError, ConfigError, did_you_mean
from zoo.core.assets import Asset

from ..assets import timm_weights

_GENERIC_CONTAINERS = ('stages', 'blocks', 'features', 'layers')


@dataclass
class BackboneOutput:
    """What a backbone returns: the last feature map (NCHW), pooled features, and the raw timm output."""

    feature_map: torch.Tensor
    pooled: torch.Tensor
    raw: torch.Tensor


def _create(model_name: str, pretrained: bool | str, kwargs: dict[str, Any]) -> nn.Module:
    import timm

    if not timm.is_model(model_name.split('.')[0]) and not model_name.startswith(('hf-hub:', 'local-dir:')):
        raise ConfigError(f'timm has no model {model_name!r}.'
                          f'{did_you_mean(model_name, timm.list_models())} '
                          "List names with timm.list_models('pattern*').")
    if isinstance(pretrained, (str, os.PathLike)) and str(pretrained):
        path = os.path.expanduser(str(pretrained))
        if not os.path.isfile(path):
            raise CheckpointError(f'Backbone weights file {path!r} does not exist. Pass pretrained=True to '
                                  'download from the Hugging Face Hub, False for random init, or a .safetensors/'
                                  '.pth file of timm-format weights.')
        model = _create(model_name, False, kwargs)
        _load_local_weights(model, path)
        return model
    try:
        return timm.create_model(model_name, pretrained=bool(pretrained), **kwargs)
    except TypeError as exc:
        raise ConfigError(f'timm model {model_name!r} rejected an argument: {exc}. Check model.backbone in the '
                          'config.') from exc
    except (OSError, RuntimeError, ValueError) as exc:
        if not pretrained:
            raise
        raise CheckpointError(
            f'Could not get ImageNet weights for timm model {model_name!r} from the Hugging Face Hub '
            f'({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ""}). Offline? Pass '
            "--cfg-options model.backbone.pretrained=False (random init) or a local weights file path.") from exc


def _load_local_weights(model: nn.Module, path: str) -> None:
    """Load a timm-format weights file strictly (classifier weights are dropped: the backbone has none)."""
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            state = load_file(path)
        else:  # weights_only: plain tensors only, never arbitrary objects
            state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt / truncated / pickle with objects
        raise CheckpointError(f'Cannot read backbone weights {path!r} ({type(exc).__name__}: {exc}).') from exc
    for key in ('state_dict', 'model', 'state_dict_ema'):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    classifier = (getattr(model, 'pretrained_cfg', {}) or {}).get('classifier') or ()
    for name in (classifier,) if isinstance(classifier, str) else classifier:
        state.pop(f'{name}.weight', None)
        state.pop(f'{name}.bias', None)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = ' '.join(str(exc).split())[:300]
        raise CheckpointError(f'Weights file {path!r} does not fit timm model '
                              f"{getattr(model, 'default_cfg', {}).get('architecture', '')!r}: {first}") from exc


@BACKBONES.register_module()
class TimmBackbone(nn.Module):
    """A timm model (classifier removed) returning its last feature map and pooled features.

    Args:
        model_name: any ``timm.list_models()`` name, optionally with a pretrained tag (``'resnet50.a1_in1k'``).
        pretrained: ``True`` downloads timm's weights from the Hugging Face Hub, ``False`` is random init, a path
            loads a local timm-format ``.safetensors``/``.pth`` file.
        target_layer: dotted name (relative to this backbone) that explainers target by default; found
            automatically when ``None`` (the module that produces the last feature map; ``norm1`` of the last
            block for vision transformers).
        freeze_until: dotted name of a module of the timm model (``'layer3'``, ``'blocks.4'``); every module
            registered before it is frozen (no gradient, BatchNorm statistics fixed in training). ``None``
            trains everything.
        **timm_kwargs: passed to ``timm.create_model`` (``output_stride``, ``drop_path_rate``, ``img_size``, ...).
    """

    def __init__(self, model_name: str, pretrained: bool | str = False, target_layer: str | None = None,
                 freeze_until: str | None = None, **timm_kwargs: Any) -> None:
        super().__init__()
        timm_kwargs.pop('num_classes', None)
        self.model_name = model_name
        self.model = _create(model_name, pretrained, dict(timm_kwargs, num_classes=0))
        # width of the pooled features the head consumes (timm's pre-logits) and of the feature map
        self.num_features: int = int(getattr(self.model, 'head_hidden_size', None) or self.model.num_features)
        self.feature_channels: int = int(self.model.num_features)
        self.num_prefix_tokens: int = int(getattr(self.model, 'num_prefix_tokens', 0) or 0)
        self.output_fmt: str = str(getattr(self.model, 'output_fmt', 'NCHW'))
        patch = getattr(getattr(self.model, 'patch_embed', None), 'patch_size', None)
        self.patch_size: tuple[int, int] | None = tuple(patch) if patch is not None else None
        self._target_layer = target_layer
        self.frozen_modules = self._freeze(freeze_until) if freeze_until else []

    @classmethod
    def required_assets(cls, args: dict[str, Any]) -> list[Asset]:
        """What building it reads: timm's weights for ``pretrained=True`` (a Hub repo), a local weights file, an
        ``hf-hub:``/``local-dir:`` model (:mod:`zoo.core.assets`; checked by ``zoo.apis.preflight``)."""
        return timm_weights(args['model_name'], args.get('pretrained'), args)

    def _freeze(self, boundary: str) -> list[nn.Module]:
        names = [n for n, _ in self.model.named_modules()]
        if boundary not in names:
            raise ConfigError(f'freeze_until={boundary!r} is not a module of timm {self.model_name!r}.'
                              f'{did_you_mean(boundary, names)} Top-level modules: '
                              f"{', '.join(n for n, _ in self.model.named_children())}.")
        frozen = []
        for name, module in self.model.named_modules():
            if name == boundary or name.startswith(boundary + '.'):
                break
            if name and not boundary.startswith(name + '.'):  # modules before the boundary, not its ancestors
                frozen.append(module)
                for p in module.parameters(recurse=False):
                    p.requires_grad_(False)
        return frozen

    def train(self, mode: bool = True) -> TimmBackbone:
        super().train(mode)
        for module in self.frozen_modules:
            module.eval()
        return self

    # --- metadata ---------------------------------------------------------------------------------------------
    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's preprocessing config (mean/std in [0, 1], input_size, interpolation, crop_pct)."""
        return dict(getattr(self.model, 'pretrained_cfg', {}) or {})

    @property
    def is_token_model(self) -> bool:
        return self.patch_size is not None and hasattr(self.model, 'blocks')

    @property
    def default_target_layer(self) -> str:
        """Dotted name (relative to the backbone) of the layer explainers target by default."""
        if self._target_layer is None:
            self._target_layer = self._find_target_layer()
        return self._target_layer

    def _find_target_layer(self) -> str:
        if self.is_token_model:
            last = len(self.model.blocks) - 1
            block = self.model.blocks[last]
            return f'model.blocks.{last}' + ('.norm1' if hasattr(block, 'norm1') else '')
        # CNN: the last module (in execution order) whose output has the shape of the final feature map
        size = self.pretrained_cfg.get('input_size', (3, 224, 224))
        chans = getattr(self.model, 'in_chans', None) or size[0]
        records: list[tuple[str, tuple[int, ...], int]] = []
        hooks = [m.register_forward_hook(lambda _m, _i, o, n=name: records.append(
                 (n, tuple(o.shape), id(o)) if isinstance(o, torch.Tensor) else (n, (), 0)))
                 for name, m in self.model.named_modules() if name and not isinstance(m, nn.Identity)]
        modes = {m: m.training for m in self.model.modules()}
        param = next(self.model.parameters(), None)
        device, dtype = (param.device, param.dtype) if param is not None else ('cpu', torch.float32)
        try:
            self.model.eval()
            with torch.no_grad():
                side = max(64, 2 * int(self.model.feature_info[-1]['reduction'])) if hasattr(
                    self.model, 'feature_info') else 64
                out = self.model.forward_features(torch.zeros(1, chans, side, side, device=device, dtype=dtype))
        finally:
            for h in hooks:
                h.remove()
            for module, mode in modes.items():
                module.training = mode
        found = next((r for r in reversed(records) if r[1] == tuple(out.shape)), None)
        if found is None:
            return f"model.{self.model.feature_info[-1]['module']}"
        name, _, obj = found
        # a generic container ('stages', 'blocks', ...) is named by its last stage, as users write it
        outputs = {n: i for n, _, i in records}
        modules = dict(self.model.named_modules())
        while name.rsplit('.', 1)[-1] in _GENERIC_CONTAINERS and isinstance(modules[name], (nn.Sequential,
                                                                                           nn.ModuleList)):
            last = f'{name}.{len(modules[name]) - 1}'
            if outputs.get(last) != obj:
                break
            name = last
        return f'model.{name}'

    # --- forward ----------------------------------------------------------------------------------------------
    def to_feature_map(self, raw: torch.Tensor) -> torch.Tensor:
        """timm ``forward_features`` output as an NCHW map (token models: prefix tokens dropped, patch grid)."""
        if raw.ndim == 4:
            return raw.permute(0, 3, 1, 2) if self.output_fmt == 'NHWC' else raw
        if raw.ndim == 3:
            tokens = raw[:, self.num_prefix_tokens:]
            n = tokens.shape[1]
            grid = getattr(getattr(self.model, 'patch_embed', None), 'grid_size', None)
            h, w = (int(grid[0]), int(grid[1])) if grid is not None and grid[0] * grid[1] == n else (
                int(round(n ** 0.5)), n // int(round(n ** 0.5)))
            return tokens.transpose(1, 2).reshape(raw.shape[0], raw.shape[2], h, w)
        raise ValueError(f'Unexpected timm feature shape {tuple(raw.shape)} from {self.model_name}')

    def forward(self, x: torch.Tensor) -> BackboneOutput:
        raw = self.model.forward_features(x)
        pooled = self.model.forward_head(raw, pre_logits=True)
        return BackboneOutput(feature_map=self.to_feature_map(raw), pooled=pooled, raw=raw)
