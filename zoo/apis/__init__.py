"""Python entry points behind the command-line tools (train, test, explain, inference, compare).

Imported lazily: ``zoo.apis.init_model`` does not import the training or test code.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    'apply_cfg_options': 'zoo.apis.config', 'load_config': 'zoo.apis.config',
    'compare': 'zoo.apis.compare', 'compare_explainers': 'zoo.apis.compare',
    'explain': 'zoo.apis.explaining', 'explain_images': 'zoo.apis.explaining',
    'init_model': 'zoo.apis.inference', 'load_images': 'zoo.apis.inference', 'last_log_file': 'zoo.apis._runner',
    'test': 'zoo.apis.testing', 'train': 'zoo.apis.training',
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo.apis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
