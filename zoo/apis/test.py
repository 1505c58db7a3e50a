"""``test()``: what ``tools/test.py`` runs.

Example::

    from zoo.apis import test
    metrics = test('configs/efficientnetlite0_baseline_clutteredfmnist.py', 'epoch_1.pth')
    metrics['accuracy/top1']
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from registry.errors import ConfigError

from ._runner import build_runner, component_errors, prepare_runtime
from .config import load_config


def test(config: Any, checkpoint: str, work_dir: str | None = None, out: str | None = None,
         cfg_options: Iterable[str] | Mapping[str, Any] | None = None, launcher: str = 'none') -> dict[str, Any]:
    """Evaluate ``checkpoint`` on the config's test set; return the metrics (and write them to ``out``).

    The checkpoint is loaded strictly: weights from another architecture or class count are an error naming
    the file. A training checkpoint (``.pth`` in a work_dir, trusted as the user's own file) or exported
    ``.safetensors`` weights both work.
    """
    from zoo.engine.checkpoint import load_model_weights
    from zoo.engine.hooks import unwrap

    cfg = load_config(config, cfg_options)
    for key in ('test_dataloader', 'test_evaluator'):
        if not cfg.get(key):
            raise ConfigError(f'The config has no {key}; testing needs test_dataloader, test_cfg and '
                              'test_evaluator (see configs/_base_/datasets/).')
    cfg.setdefault('test_cfg', {})
    cfg.resume, cfg.load_from = False, None
    _no_download(cfg)
    prepare_runtime(cfg, work_dir, config, launcher)
    runner = build_runner(cfg)
    meta = load_model_weights(unwrap(runner.model), checkpoint, trust_pickle=True)
    names = (meta.get('dataset_meta') or {}).get('classes')
    if names and len(names) == unwrap(runner.model).num_classes:
        unwrap(runner.model).class_names = list(names)
    with component_errors():  # build the test loop here: a value it rejects is a one-line error
        runner.test_loop  # noqa: B018
    metrics = dict(runner.test())
    if out:
        from mmengine.dist import is_main_process
        if is_main_process():
            write_json(out, dict(config=str(config), checkpoint=str(checkpoint), metrics=metrics))
    return metrics


def _no_download(cfg: Any) -> None:
    """The checkpoint holds every weight: never download ImageNet/CLIP weights just to overwrite them."""
    backbone = cfg.model.get('backbone')
    if isinstance(backbone, Mapping) and 'pretrained' in backbone:
        backbone['pretrained'] = False
    if cfg.model.get('alignment_heads'):
        cfg.model['alignment_heads'] = []  # training-only; inference is backbone + head


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Write JSON atomically (a killed write never leaves a half file)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as fh:
        json.dump(payload, fh, indent=2, default=float)
        fh.write('\n')
    os.replace(tmp, path)
