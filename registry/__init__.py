"""xzoo's registries: mmengine child registries in one scope, ``'zoo'``.

This package holds registries only and never imports :mod:`zoo`. Components register themselves where they live
(``@HEADS.register_module()``); a registry finds them without any import by the user, in three ways:

1. ``locations``: the first lookup imports the listed ``zoo.*`` modules (lazily);
2. plugins: the first lookup imports every module declared in the ``xzoo.plugins`` entry-point group;
3. ``custom_imports = dict(imports=['my_pkg.module'])`` in a config (mmengine's mechanism).

A registry resolves **registered names only** (``'GradCAM'``, or scoped ``'zoo.GradCAM'``): a module path such as
``'os.system'`` is refused, never imported (mmengine alone would import and return any dotted path). A trusted
Python config that wants an unregistered class passes the class object itself: ``type=torch.optim.AdamW``.

Importing :mod:`registry` is cheap: the registries (and mmengine) load on first use, so :mod:`registry.errors`
can be imported anywhere without pulling mmengine or torch.

Example:
    >>> from registry import HEADS
    >>> HEADS.get('LinearClsHead').__name__
    'LinearClsHead'
"""
from __future__ import annotations

import importlib
from typing import Any

from ._plugins import ENTRY_POINT_GROUP
from .errors import ConfigError, UnknownTypeError, XZooError

SCOPE = 'zoo'
"""The one mmengine scope of the project (configs set ``default_scope = 'zoo'``)."""

REGISTRY_NAMES = ('MODELS', 'BACKBONES', 'HEADS', 'LOSSES', 'TEXT_ENCODERS', 'EXPLAINERS', 'EXPLANATION_METRICS',
                  'METRICS', 'DATASETS', 'TRANSFORMS', 'HOOKS', 'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS',
                  'STRATEGIES', 'DATA_SAMPLERS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'OPTIMIZERS',
                  'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'EVALUATOR', 'TASK_UTILS',
                  'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'INFERENCERS', 'FUNCTIONS')
_LAZY = {*REGISTRY_NAMES, 'ALL', 'XZooRegistry', 'load_plugins'}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module('registry._registries')
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'registry' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ['ALL', 'SCOPE', 'ENTRY_POINT_GROUP', 'XZooRegistry', 'load_plugins', 'XZooError', 'ConfigError',
           'UnknownTypeError', *REGISTRY_NAMES]
