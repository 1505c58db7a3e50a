"""Checks of a whole config before the Runner starts: every component's arguments and the type of every value.

Without them a wrong value travels into torch, timm or mmengine and comes back as a traceback from deep inside
(``'<=' not supported between 'float' and 'str'`` from an optimizer, an ``AssertionError`` from a loop, a
``ValueError`` from ``DataLoader``). Here each is one :class:`~registry.errors.ConfigError` naming the config key.

What is checked, for the components of ``model``, ``*_dataloader`` (dataset, pipeline, sampler), ``optim_wrapper``
(optimizer), ``param_scheduler``, ``default_hooks``/``custom_hooks``, ``train_cfg`` (the loop) and evaluators:

- arguments the component does not take (with a did-you-mean; ``registry.XZooRegistry.check_args``);
- values against the constructor's type hints, where the hint is plain: ``int``, ``float`` (an int is fine),
  ``bool``, ``str``, ``None``, unions, sequences and tuples of those, ``dict``; anything richer is not judged;
- the runtime values that are not components: ``batch_size``, ``num_workers``, ``randomness``.

Example:
    >>> from mmengine.config import Config
    >>> cfg = Config(dict(model=dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name=3),
    ...                              head=dict(type='LinearClsHead', num_classes=2))))
    >>> check_components(cfg)
    Traceback (most recent call last):
    registry.errors.ConfigError: model.backbone.model_name must be a str (an argument of TimmBackbone), got 3 (int).
"""
from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from registry import ALL as REGISTRIES
from registry import (
    DATA_SAMPLERS,
    DATASETS,
    HOOKS,
    LOOPS,
    METRICS,
    MODELS,
    OPTIM_WRAPPERS,
    OPTIMIZERS,
    PARAM_SCHEDULERS,
    XZooRegistry,
)
from registry.errors import ConfigError

# which registry builds a nested component, by the argument that holds it
_NESTED = {'backbone': 'BACKBONES', 'head': 'HEADS', 'alignment_heads': 'HEADS', 'loss': 'LOSSES',
           'data_preprocessor': 'MODELS', 'text_encoder': 'TEXT_ENCODERS', 'prompt_learner': 'TEXT_ENCODERS',
           'dataset': 'DATASETS', 'pipeline': 'TRANSFORMS', 'transforms': 'TRANSFORMS', 'sampler': 'DATA_SAMPLERS',
           'optimizer': 'OPTIMIZERS'}
_SKIP = ('type', '_scope_', '_delete_')
# keys that mmengine's builders consume before calling the constructor
_CONSUMED = {'PARAM_SCHEDULERS': ('convert_to_iter_based',), 'HOOKS': ('priority',),
             'OPTIM_WRAPPERS': ('paramwise_cfg', 'constructor', 'optimizer')}


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` (from a config) fits the type hint ``hint``; unknown hints always fit."""
    if hint is Any or hint is object or isinstance(hint, (str, typing.TypeVar)):
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, (bool, int))
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in (dict, Mapping) or origin in (dict, Mapping):
        return isinstance(value, Mapping)
    if hint is os.PathLike:
        return isinstance(value, (str, os.PathLike))
    if origin is tuple:
        if not _is_sequence(value):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return not args or (len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args)))
    if hint in (list, tuple, Sequence) or origin in (list, Sequence, typing.Sequence):
        return _is_sequence(value) and (not args or all(_matches(v, args[0]) for v in value))
    if isinstance(value, Mapping):
        return True  # a config dict for a component the constructor builds itself
    if inspect.isclass(hint) and hint.__module__ == 'builtins' or getattr(hint, '__name__', '') == 'Tensor':
        return isinstance(value, hint)  # a config holds no tensors: 'float | Tensor' means float here
    return True  # a class or protocol this check does not judge (Tensor, Module, Sized, Callable, ...)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        parts = [p for p in parts if p != 'Tensor']
        text = ' or '.join(dict.fromkeys(parts))
        return f'{text} or None' if type(None) in args else text
    if hint is type(None):
        return 'None'
    if origin is not None:
        inner = ', '.join(_describe(a) for a in args if a is not Ellipsis)
        name = getattr(origin, '__name__', str(origin))
        return f'a {"list" if name == "Sequence" else name} of {inner}' if inner else name
    return getattr(hint, '__name__', str(hint))


def _article(text: str) -> str:
    return text if text.startswith(('a ', 'an ')) else ('an ' if text[:1] in 'aeiou' else 'a ') + text


def _hints(obj: Any) -> dict[str, Any]:
    """Type hints of ``obj``'s arguments, following ``**kwargs`` up the class hierarchy."""
    levels = [k.__init__ for k in obj.__mro__ if '__init__' in vars(k) and k is not object] \
        if inspect.isclass(obj) else [obj]
    hints: dict[str, Any] = {}
    for fn in levels:
        try:
            found = typing.get_type_hints(fn)
            open_ended = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
        except Exception:  # noqa: BLE001 - unresolvable annotations: judge nothing more
            break
        for key, hint in found.items():
            hints.setdefault(key, hint)
        if not open_ended:
            break
    return hints


def _required(obj: Any) -> list[str]:
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_component(cfg: Mapping, registry: XZooRegistry, where: str, default_type: str | None = None) -> None:
    """Check one component config (and the components nested in it) at config key ``where``."""
    obj_type = cfg.get('type', default_type)
    if obj_type is None:
        return
    obj = registry.get(obj_type) if isinstance(obj_type, str) else obj_type
    if not callable(obj):
        return
    consumed = _CONSUMED.get(registry.display_name, ())
    cfg = {k: v for k, v in cfg.items() if k not in consumed}
    # unknown arguments only: required ones may come from the parent (a head's in_channels, a sampler's dataset)
    registry.check_args({**cfg, 'type': obj}, default_args={name: None for name in _required(obj)})
    hints = _hints(obj)
    name = getattr(obj, '__name__', str(obj_type))
    for key, value in cfg.items():
        if key in _SKIP:
            continue
        hint = hints.get(key)
        if hint is not None and not _matches(value, hint):
            raise ConfigError(f'{where}.{key} must be {_article(_describe(hint))} (an argument of {name}), got '
                              f'{value!r} ({type(value).__name__}).')
        _check_nested(key, value, f'{where}.{key}')


def _check_nested(key: str, value: Any, where: str) -> None:
    items = list(enumerate(value)) if isinstance(value, (list, tuple)) else [(None, value)]
    for index, item in items:
        if not (isinstance(item, Mapping) and isinstance(item.get('type'), str)):
            continue
        path = where if index is None else f'{where}.{index}'
        registry = REGISTRIES.get(_NESTED.get(key, ''))
        if registry is None:  # an argument this table does not know: the registry that has the name, if only one
            owners = [r for r in REGISTRIES.values() if item['type'] in r]
            if len(owners) != 1:
                continue
            registry = owners[0]
        check_component(item, registry, path)


def _check_int(value: Any, where: str, minimum: int, what: str, example: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f'{where} must be {what}, got {value!r}. Example: --cfg-options {where}={example}')


def check_runtime_values(cfg: Mapping) -> None:
    """``*_dataloader.batch_size``/``num_workers`` and ``randomness``: values that are no component's arguments."""
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, Mapping):
            continue
        if 'batch_size' in loader:
            _check_int(loader['batch_size'], f'{split}_dataloader.batch_size', 1, 'a positive integer', 8)
        if 'num_workers' in loader:
            _check_int(loader['num_workers'], f'{split}_dataloader.num_workers', 0, 'an integer, 0 or more', 2)
    randomness = cfg.get('randomness')
    if isinstance(randomness, Mapping):
        seed = randomness.get('seed')
        if seed is not None:
            _check_int(seed, 'randomness.seed', 0, 'an integer >= 0 (or None: a random seed)', 0)
        for flag in ('deterministic', 'diff_rank_seed'):
            if not isinstance(randomness.get(flag, False), bool):
                raise ConfigError(f'randomness.{flag} must be true or false, got {randomness[flag]!r}.')


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def check_components(cfg: Mapping) -> None:
    """Check the arguments and value types of every component of ``cfg`` (see the module docstring)."""
    check_runtime_values(cfg)
    if isinstance(cfg.get('model'), Mapping):
        check_component(cfg['model'], MODELS, 'model')
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, Mapping):
            continue
        if isinstance(loader.get('dataset'), Mapping):
            check_component(loader['dataset'], DATASETS, f'{split}_dataloader.dataset')
        if isinstance(loader.get('sampler'), Mapping):
            check_component(loader['sampler'], DATA_SAMPLERS, f'{split}_dataloader.sampler')
        evaluator = cfg.get(f'{split}_evaluator')
        for i, metric in enumerate(_as_list(evaluator)):
            if isinstance(metric, Mapping) and metric.get('type') not in (None, 'Evaluator'):
                check_component(metric, METRICS, f'{split}_evaluator' + (f'.{i}' if _is_sequence(evaluator) else ''))
    wrapper = cfg.get('optim_wrapper')
    if isinstance(wrapper, Mapping) and 'constructor' not in wrapper:
        check_component(wrapper, OPTIM_WRAPPERS, 'optim_wrapper', default_type='OptimWrapper')
        if isinstance(wrapper.get('optimizer'), Mapping):
            check_component(wrapper['optimizer'], OPTIMIZERS, 'optim_wrapper.optimizer')
    schedulers = cfg.get('param_scheduler')
    for i, scheduler in enumerate(_as_list(schedulers)):
        if isinstance(scheduler, Mapping):
            check_component(scheduler, PARAM_SCHEDULERS,
                            'param_scheduler' + (f'.{i}' if _is_sequence(schedulers) else ''))
    for name, hook in (cfg.get('default_hooks') or {}).items():
        if isinstance(hook, Mapping):
            check_component(hook, HOOKS, f'default_hooks.{name}')
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if isinstance(hook, Mapping):
            check_component(hook, HOOKS, f'custom_hooks.{i}')
    train_cfg = cfg.get('train_cfg')
    if isinstance(train_cfg, Mapping) and train_cfg:
        loop = dict(train_cfg)
        by_epoch = loop.pop('by_epoch', True)
        loop.setdefault('type', 'ResumableEpochBasedTrainLoop' if by_epoch else 'ResumableIterBasedTrainLoop')
        check_component(loop, LOOPS, 'train_cfg')
