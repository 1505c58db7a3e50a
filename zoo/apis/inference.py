"""Loading a trained model for inference, and preprocessing images the way its test pipeline does.

Example::

    from zoo.apis import init_model, load_images
    model = init_model('configs/efficientnetlite0_baseline_clutteredfmnist.py',
                       'work_dirs/demo/baseline/epoch_1.pth')
    batch = load_images(model, ['photo.jpg'])  # uint8 [1, 3, H, W]
    probs = model(model.data_preprocessor.normalize(batch)).softmax(-1)
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from .config import load_config


def init_model(config: Any, checkpoint: str | None = None, device: str = 'cpu',
               cfg_options: Iterable[str] | Mapping[str, Any] | None = None, trust_pickle: bool = True) -> Any:
    """Build the config's classifier for inference (no alignment heads), load ``checkpoint``, eval mode.

    Attaches ``model.cfg`` (the config) and ``model.test_transform`` (the test pipeline as a callable on an RGB
    uint8 ``[H, W, 3]`` array). Class names come from the checkpoint, else from the config.
    """
    from mmengine.registry import DefaultScope

    from registry import MODELS, SCOPE
    from zoo.engine.checkpoint import load_model_weights

    from .test import _no_download

    cfg = load_config(config, cfg_options)
    if checkpoint is not None:
        _no_download(cfg)
    elif cfg.model.get('alignment_heads'):
        cfg.model['alignment_heads'] = []
    with DefaultScope.overwrite_default_scope(SCOPE):
        model = MODELS.build(copy.deepcopy(cfg.model))
    if checkpoint is not None:
        meta = load_model_weights(model, checkpoint, trust_pickle=trust_pickle)
        names = (meta.get('dataset_meta') or {}).get('classes')
        if names and len(names) == model.num_classes:
            model.class_names = list(names)
    model.cfg = cfg
    model.test_transform = build_test_transform(cfg)
    return model.to(device).eval()


def build_test_transform(cfg: Any) -> Any:
    """The config's test pipeline (without ``PackInputs``) as ``f(rgb uint8 [H, W, 3]) -> uint8 [3, h, w]``."""
    from torchvision import tv_tensors

    from registry import TRANSFORMS
    from zoo.datasets.transforms import PackInputs

    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
    steps = [TRANSFORMS.build(copy.deepcopy(t)) for t in (loader.get('dataset') or {}).get('pipeline', [])]
    steps = [s for s in steps if not isinstance(s, PackInputs)]

    def transform(rgb: Any) -> torch.Tensor:
        img = torch.as_tensor(rgb)
        img = tv_tensors.Image(img.permute(2, 0, 1).contiguous() if img.ndim == 3 and img.shape[-1] == 3 else img)
        out: Any = {'img': img}
        for step in steps:
            out = step(out)
        return out['img'].as_subclass(torch.Tensor)

    return transform


def load_images(model: Any, paths: Sequence[str]) -> torch.Tensor:
    """Read image files (converted to RGB), apply ``model.test_transform`` and stack: uint8 ``[B, 3, H, W]``."""
    from zoo.datasets.base import read_rgb

    transform = getattr(model, 'test_transform', None) or (lambda a: torch.as_tensor(a).permute(2, 0, 1))
    return torch.stack([transform(read_rgb(p)) for p in paths])
