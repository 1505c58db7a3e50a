"""xzoo: a model zoo and config registry for explainable image classification.

Importing :mod:`zoo` is cheap (no torch, timm or mmengine): public names are resolved on first use.

Example:
    >>> import zoo
    >>> zoo.__version__ >= '0.1'
    True
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = '0.1.0'

# public name -> module that defines it (imported on first attribute access)
_LAZY: dict[str, str] = {
    'train': 'zoo.apis.training',
    'test': 'zoo.apis.testing',
    'load_config': 'zoo.apis.config',
    'explain': 'zoo.apis.explaining',
    'explain_images': 'zoo.apis.explaining',
    'init_model': 'zoo.apis.inference',
    'XZooError': 'registry.errors',
    'ConfigError': 'registry.errors',
    'DataError': 'registry.errors',
    'CheckpointError': 'registry.errors',
    'ZooModel': 'zoo.models.contract',
    'Preprocessing': 'zoo.models.contract',
    'load': 'zoo.hub.api',
    'download': 'zoo.hub.api',
    'list_models': 'zoo.hub.index',
    'register_index': 'zoo.hub.index',
}
_SUBMODULES = {'apis', 'core', 'datasets', 'engine', 'explainers', 'hub', 'metrics', 'models', 'ops', 'stats', 'viz',
               'cli', 'structures', 'validation'}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, *_SUBMODULES])


__all__ = ['__version__', *_LAZY]
