"""Loading a trained model for inference from its training config and checkpoint.

:func:`init_model` returns a model that honours the zoo model contract (see :mod:`zoo.models.contract`), exactly
like ``zoo.load``: its ``preprocessing`` comes from the config's test pipeline, its class names from the
checkpoint, and ``model.explain``/``model.load_images``/``model.classify`` work on it.

Example::

    from zoo.apis import init_model
    model = init_model('configs/efficientnetlite0_baseline_clutteredfmnist.py',
                       'work_dirs/demo/baseline/epoch_1.pth')
    probs = model.classify(['photo.jpg'])          # preprocessing from the config's test pipeline
    maps = model.explain(['photo.jpg'], method='gradcam')
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from registry.errors import ConfigError

from .config import load_config
from .preflight import preflight_model


def inference_model_config(model_cfg: Mapping[str, Any], has_checkpoint: bool) -> dict[str, Any]:
    """The config of the model's inference copy: its class's ``training_only`` parts dropped and, when a
    checkpoint will supply every weight, every ``pretrained`` switched off (nothing is downloaded just to be
    overwritten)."""
    from registry import MODELS

    cfg = dict(copy.deepcopy(model_cfg))
    kind = cfg.get('type', 'ImageClassifier')
    cls = MODELS.get(kind) if isinstance(kind, str) else kind
    if has_checkpoint and hasattr(cls, 'inference_args'):
        return {'type': kind, **cls.inference_args(cfg)}
    for name in getattr(cls, 'training_only', ()):
        cfg.pop(name, None)
    return cfg


def init_model(config: Any, checkpoint: str | None = None, device: str = 'cpu',
               cfg_options: Iterable[str] | Mapping[str, Any] | None = None, trust_pickle: bool = True) -> Any:
    """Build the config's model for inference (no training-only parts), load ``checkpoint``, eval mode.

    The model's ``preprocessing`` is the config's test pipeline (with the data preprocessor's mean/std); class
    names come from the checkpoint, else from the config.
    """
    from mmengine.registry import DefaultScope

    from registry import MODELS, SCOPE
    from zoo.models.contract import Preprocessing
    from zoo.models.weights import load_model_weights
    from zoo.ops.modules import check_device

    check_device(device)
    cfg = load_config(config, cfg_options)
    build = inference_model_config(cfg.model, checkpoint is not None)
    preflight_model(build, config, cfg_options)  # what it builds reads only what is here, or one message
    with DefaultScope.overwrite_default_scope(SCOPE):
        model = MODELS.build(build)
    if not hasattr(model, 'preprocessing'):
        raise ConfigError(f'{type(model).__name__} does not implement the zoo model contract '
                          '(zoo.models.contract.ZooModel); init_model builds zoo models only.')
    if checkpoint is not None:
        meta = load_model_weights(model, checkpoint, trust_pickle=trust_pickle)
        names = (meta.get('dataset_meta') or {}).get('classes')
        if names and len(names) == model.num_classes:
            model.class_names = list(names)
    pre = model.data_preprocessor
    model.preprocessing = Preprocessing.from_config(cfg, [float(m) / 255 for m in pre.mean.flatten()],
                                                    [float(s) / 255 for s in pre.std.flatten()])
    return model.to(device).eval()


def load_images(model: Any, paths: Sequence[str]) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]``: image files read as RGB through the model's test pipeline
    (``model.load_images``)."""
    return model.load_images(list(paths))
