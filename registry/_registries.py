"""The registries themselves (imported on first use through :mod:`registry`): mmengine child registries of
scope ``'zoo'`` that load plugins, explain unknown names and resolve registered names only.

Every mmengine root registry (optimizers, schedulers, loops, hooks, ...) has a child here, so that a Runner whose
``default_scope`` is ``'zoo'`` never prints scope warnings and still finds mmengine's own components through the
parent.
"""
from __future__ import annotations

import inspect
from typing import Any

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

from . import SCOPE
from ._plugins import ENTRY_POINT_GROUP, FAILED, load_plugins
from .errors import ConfigError, UnknownTypeError, XZooError, closest, did_you_mean, shorten

_MAX_LISTED = 15


class XZooRegistry(Registry):
    """An mmengine :class:`~mmengine.registry.Registry` that loads plugins and explains unknown names.

    Args:
        display_name: how messages name the registry, e.g. ``'HEADS'``.
        name, parent, locations, build_func: as for mmengine's ``Registry``; the scope is always ``'zoo'``.
    """

    def __init__(self, display_name: str, name: str, parent: Registry | None = None,
                 locations: list[str] | None = None, build_func: Any = None) -> None:
        super().__init__(name, build_func=build_func, parent=parent, scope=SCOPE, locations=locations or [])
        self.display_name = display_name

    def import_from_location(self) -> None:
        """Import ``locations`` and the ``xzoo.plugins`` entry points on the first lookup."""
        if not self._imported:
            load_plugins()
        super().import_from_location()

    def names(self, include_parents: bool = False) -> list[str]:
        """Registered names (this registry's own; with ``include_parents``, mmengine's too)."""
        self.import_from_location()
        out = set(self._module_dict)
        parent = self.parent if include_parents else None
        while parent is not None:
            out.update(parent._module_dict)
            parent = parent.parent
        return sorted(out)

    def get(self, key: str) -> Any:
        """The class registered as ``key`` (here, in a parent, or ``'<scope>.Name'`` in a known scope).

        Unlike mmengine's ``get``, a name that is not registered is never imported as a module path (``'os.system'``
        would otherwise be imported and returned): it raises :class:`UnknownTypeError` with advice.
        """
        if not isinstance(key, str):
            raise UnknownTypeError(f'{self.display_name}: a component type must be a registered name (a string), '
                                   f'got {shorten(repr(key))}.')
        if self.find(key) is None:
            raise UnknownTypeError(self.unknown_message(key))
        return super().get(key)

    def find(self, key: str) -> Any:
        """The registered class for ``key``, or ``None``; looks in registries only, never imports a module path."""
        self.import_from_location()
        scope, name = self.split_scope_key(key)
        if scope is None:
            node: Registry | None = self
            while node is not None:
                if name in node._module_dict:
                    return node._module_dict[name]
                node = node.parent
            return None
        for node in _scope_nodes(self, scope):
            if name in node._module_dict:
                return node._module_dict[name]
        return None

    def check_args(self, cfg: dict, default_args: dict | None = None) -> None:
        """Raise :class:`ConfigError` if ``cfg`` names arguments its ``type`` does not take, or lacks required ones."""
        obj_type = cfg.get('type') if hasattr(cfg, 'get') else None
        if obj_type is None and default_args:
            obj_type = default_args.get('type')
        obj_cls = self.get(obj_type) if isinstance(obj_type, str) else obj_type
        if not callable(obj_cls):
            return
        try:
            params = inspect.signature(obj_cls).parameters
        except (TypeError, ValueError):
            return
        given = {k for k in cfg if k not in ('type', '_scope_')} | set(default_args or {}) - {'type'}
        name = getattr(obj_cls, '__name__', str(obj_type))
        takes = [p for p in params.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        accepted = _accepted_arguments(obj_cls)
        if accepted is not None:
            unknown = sorted({k for k in cfg if k not in ('type', '_scope_')} - set(accepted))
            if unknown:
                hint = did_you_mean(unknown[0], accepted)
                raise ConfigError(f'{self.display_name} {name!r} got unknown argument {unknown[0]!r}.{hint} '
                                  f"It takes: {', '.join(accepted) or 'no arguments'}.")
        missing = [p.name for p in takes if p.default is p.empty and p.name not in given]
        if missing:
            raise ConfigError(f'{self.display_name} {name!r} needs argument {missing[0]!r}, which the config does '
                              f"not set. It takes: {', '.join(p.name for p in takes)}.")

    def build(self, cfg: dict, *args: Any, **kwargs: Any) -> Any:
        """mmengine's ``build`` after :meth:`check_args`, so a wrong argument names the component."""
        if isinstance(cfg, dict) and not args:
            self.check_args(cfg, kwargs.get('default_args'))
        return super().build(cfg, *args, **kwargs)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.find(key) is not None

    def unknown_message(self, key: str) -> str:
        """The one-line explanation for a name that is not registered."""
        name = shorten(key.split('.', 1)[1] if key.startswith(SCOPE + '.') else key)
        own = self.names()
        everything = self.names(include_parents=True)
        msg = f'{self.display_name} has no {name!r}.'
        if '.' in name:
            msg += (' Component types are registered names, never module paths (a module path is not imported). '
                    'A trusted Python config may pass the class object itself (type=MyClass).')
        hits = closest(name, everything)
        if hits:
            msg += ' Did you mean ' + ' or '.join(repr(h) for h in hits) + '?'
        listed = own if own else everything
        if listed:
            shown = ', '.join(listed[:_MAX_LISTED])
            more = f' (+{len(listed) - _MAX_LISTED} more)' if len(listed) > _MAX_LISTED else ''
            msg += f' Registered: {shown}{more}.'
        msg += (f" A module outside xzoo registers through the '{ENTRY_POINT_GROUP}' entry point, or add "
                "custom_imports = dict(imports=['your_pkg.module']) to the config.")
        if FAILED:
            msg += ' Plugins that failed to import: ' + '; '.join(f'{k} ({v})' for k, v in FAILED.items()) + '.'
        return msg


def _scope_nodes(registry: Registry, scope: str) -> list[Registry]:
    """The registries of ``scope`` in ``registry``'s tree (itself and its ancestors, their children)."""
    nodes: list[Registry] = []
    node: Registry | None = registry
    while node is not None:
        if node.scope == scope:
            nodes.append(node)
        child = node._children.get(scope)
        if child is not None:
            nodes.append(child)
        node = node.parent
    return nodes


def _accepted_arguments(obj: Any) -> list[str] | None:
    """Keyword arguments ``obj`` accepts, following ``**kwargs`` up the class hierarchy; ``None`` if open-ended."""
    if not inspect.isclass(obj):
        levels = [obj]
    else:
        levels = [k.__init__ for k in obj.__mro__ if '__init__' in vars(k) and k is not object]
    names: list[str] = []
    for fn in levels:
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            return None
        if params and params[0].name == 'self':
            params = params[1:]
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None


def _child(display: str, parent: Registry, locations: list[str] | None = None) -> XZooRegistry:
    return XZooRegistry(display, parent.name, parent=parent, locations=locations)


# --- registries with xzoo components --------------------------------------------------------------------------
MODELS = _child('MODELS', MMENGINE_MODELS, ['mmengine.model', 'zoo.models', 'zoo.models.image_text',
                                              'zoo.models.protopnet'])
"""Whole models (``ImageClassifier``) and data preprocessors."""
BACKBONES = XZooRegistry('BACKBONES', 'backbone', locations=['zoo.models.backbones'])
"""Feature extractors (``TimmBackbone``)."""
HEADS = XZooRegistry('HEADS', 'head', locations=['zoo.models.heads'])
"""Classification heads and alignment heads."""
LOSSES = XZooRegistry('LOSSES', 'loss', locations=['zoo.models.losses'])
"""Loss functions."""
TEXT_ENCODERS = XZooRegistry('TEXT_ENCODERS', 'text encoder', locations=['zoo.models.text'])
"""Text encoders and prompt learners (LICO)."""
EXPLAINERS = XZooRegistry('EXPLAINERS', 'explainer', locations=['zoo.explainers', 'zoo.explainers.prototypes'])
"""Saliency explainers (Grad-CAM family, RISE, ...)."""
EXPLANATION_METRICS = XZooRegistry('EXPLANATION_METRICS', 'explanation metric', locations=['zoo.metrics'])
"""Explanation-quality metrics (insertion, deletion, pointing game, ...)."""
METRICS = _child('METRICS', MMENGINE_METRICS, ['mmengine.evaluator', 'zoo.metrics'])
"""mmengine evaluator metrics (``Accuracy``, explanation-metric wrapper)."""
DATASETS = _child('DATASETS', MMENGINE_DATASETS, ['mmengine.dataset', 'zoo.datasets'])
"""Datasets (``CUB200``, ``ClutteredFashionMNIST``, ``SyntheticShapes``)."""
TRANSFORMS = _child('TRANSFORMS', MMENGINE_TRANSFORMS, ['zoo.datasets.transforms'])
"""Data transforms (torchvision v2, keeping boxes and masks aligned)."""
HOOKS = _child('HOOKS', MMENGINE_HOOKS, ['mmengine.hooks', 'zoo.engine', 'zoo.metrics',
                                        'zoo.models.protopnet.training'])
"""Runner hooks."""

# --- children of the other mmengine roots: found through the parent, no scope warnings ----------------------
# (the mmengine modules in `locations` fill the parents, e.g. mmengine.optim registers torch's optimizers, so a
# lookup works before a Runner has imported them)
RUNNERS = _child('RUNNERS', MMENGINE_RUNNERS, ['mmengine.runner'])
RUNNER_CONSTRUCTORS = _child('RUNNER_CONSTRUCTORS', MMENGINE_RUNNER_CONSTRUCTORS)
LOOPS = _child('LOOPS', MMENGINE_LOOPS, ['mmengine.runner', 'zoo.engine'])
STRATEGIES = _child('STRATEGIES', MMENGINE_STRATEGIES, ['mmengine._strategy'])
DATA_SAMPLERS = _child('DATA_SAMPLERS', MMENGINE_DATA_SAMPLERS, ['mmengine.dataset'])
MODEL_WRAPPERS = _child('MODEL_WRAPPERS', MMENGINE_MODEL_WRAPPERS, ['mmengine.model', 'zoo.engine'])
WEIGHT_INITIALIZERS = _child('WEIGHT_INITIALIZERS', MMENGINE_WEIGHT_INITIALIZERS, ['mmengine.model'])
OPTIMIZERS = _child('OPTIMIZERS', MMENGINE_OPTIMIZERS, ['mmengine.optim'])
OPTIM_WRAPPERS = _child('OPTIM_WRAPPERS', MMENGINE_OPTIM_WRAPPERS, ['mmengine.optim'])
OPTIM_WRAPPER_CONSTRUCTORS = _child('OPTIM_WRAPPER_CONSTRUCTORS', MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                    ['mmengine.optim', 'zoo.engine'])
PARAM_SCHEDULERS = _child('PARAM_SCHEDULERS', MMENGINE_PARAM_SCHEDULERS, ['mmengine.optim', 'zoo.engine'])
EVALUATOR = _child('EVALUATOR', MMENGINE_EVALUATOR, ['mmengine.evaluator'])
TASK_UTILS = _child('TASK_UTILS', MMENGINE_TASK_UTILS)
VISUALIZERS = _child('VISUALIZERS', MMENGINE_VISUALIZERS, ['mmengine.visualization'])
VISBACKENDS = _child('VISBACKENDS', MMENGINE_VISBACKENDS, ['mmengine.visualization'])
LOG_PROCESSORS = _child('LOG_PROCESSORS', MMENGINE_LOG_PROCESSORS, ['mmengine.runner'])
INFERENCERS = _child('INFERENCERS', MMENGINE_INFERENCERS)
FUNCTIONS = _child('FUNCTIONS', MMENGINE_FUNCTIONS, ['mmengine.dataset'])

ALL: dict[str, XZooRegistry] = {r.display_name: r for r in (
    MODELS, BACKBONES, HEADS, LOSSES, TEXT_ENCODERS, EXPLAINERS, EXPLANATION_METRICS, METRICS, DATASETS, TRANSFORMS,
    HOOKS, RUNNERS, RUNNER_CONSTRUCTORS, LOOPS, STRATEGIES, DATA_SAMPLERS, MODEL_WRAPPERS, WEIGHT_INITIALIZERS,
    OPTIMIZERS, OPTIM_WRAPPERS, OPTIM_WRAPPER_CONSTRUCTORS, PARAM_SCHEDULERS, EVALUATOR, TASK_UTILS, VISUALIZERS,
    VISBACKENDS, LOG_PROCESSORS, INFERENCERS, FUNCTIONS)}
"""Every xzoo registry by its display name."""

__all__ = ['ALL', 'SCOPE', 'ENTRY_POINT_GROUP', 'XZooRegistry', 'load_plugins', 'XZooError', 'ConfigError',
           'UnknownTypeError', *ALL]
