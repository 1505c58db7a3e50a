"""Config validation, in one place: a training config before the Runner starts, and an untrusted ``config.json``
before anything is built from it.

Without these checks a wrong value travels into torch, timm or mmengine and comes back as a traceback from deep
inside (``'<=' not supported between 'float' and 'str'`` from an optimizer, an ``AssertionError`` from a loop, a
``ValueError`` from ``DataLoader``). Here each is one :class:`~registry.errors.ConfigError` naming the config key.

Which argument of a component holds a nested component of which registry is declared by the component class
itself (``component_args``, e.g. ``ImageClassifier.component_args = {'backbone': 'BACKBONES', ...}``); the
Runner-level slots (a dataloader's ``dataset``/``sampler``, an optim wrapper's ``optimizer``) are mmengine's
schema and are listed here once.

What is checked, for the components of ``model``, ``*_dataloader`` (dataset, pipeline, sampler), ``optim_wrapper``
(optimizer), ``param_scheduler``, ``default_hooks``/``custom_hooks``, ``train_cfg`` (the loop) and evaluators:

- arguments the component does not take (with a did-you-mean; ``registry.XZooRegistry.check_args``);
- values against the constructor's type hints, where the hint is plain: ``int``, ``float`` (an int is fine),
  ``bool``, ``str``, ``None``, unions, sequences and tuples of those, ``dict``; anything richer is not judged;
- the runtime values that are not components: ``batch_size``, ``num_workers``, ``randomness``.

:func:`check_untrusted` is the same walk in the strict mode used for exports and Hub repos (see
docs/security.md): registered names only, no argument that loads files or code (``init_cfg``, a true
``pretrained``, paths, ``hf-hub:`` names), no training-only part, integers under the caps.

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
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import registry
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
from registry.errors import ConfigError, SecurityError, UnknownTypeError, XZooError, shorten
from zoo.core.limits import MAX_INT_ARG, MAX_STRING

# Runner-level slots: mmengine's config schema (a dataloader's dataset/sampler, an optim wrapper's optimizer)
RUNNER_SLOTS = {'dataset': 'DATASETS', 'sampler': 'DATA_SAMPLERS', 'optimizer': 'OPTIMIZERS'}
_SKIP = ('type', '_scope_', '_delete_')
# arguments that make a component read or download files, or import code, when it is built
FILE_LOADING_KEYS = frozenset({'init_cfg', 'checkpoint_path', 'pretrained_cfg_overlay', 'pretrained_cfg',
                               'custom_imports', '_scope_', 'cache_dir', 'checkpoint', 'load_from', 'cache_path'})
_REMOTE_PREFIXES = ('hf-hub:', 'hf_hub:', 'local-dir:', 'http://', 'https://', 'file:', 's3:', 'gs:', 'ftp:')


def component_args(obj: Any) -> dict[str, str]:
    """``{argument: registry name}`` of the nested components ``obj`` builds, as its classes declare it."""
    slots: dict[str, str] = {}
    for klass in reversed(getattr(obj, '__mro__', ())):
        slots.update(getattr(klass, '__dict__', {}).get('component_args', {}) or {})
    return slots


def train_loop_type(train_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``train_cfg`` with its loop ``type`` filled in: xzoo's resumable loops unless a type is given.

    Example:
        >>> train_loop_type({'by_epoch': False, 'max_iters': 4})
        {'max_iters': 4, 'type': 'ResumableIterBasedTrainLoop'}
    """
    loop = dict(train_cfg)
    if 'type' not in loop:
        by_epoch = loop.pop('by_epoch', True)
        loop['type'] = 'ResumableEpochBasedTrainLoop' if by_epoch else 'ResumableIterBasedTrainLoop'
    return loop
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


def _resolve(cfg: Mapping, registry: XZooRegistry, where: str, default_type: str | None) -> Any:
    obj_type = cfg.get('type', default_type)
    if obj_type is None:
        raise ConfigError(f'{where} has no `type`: say which {registry.display_name} component to build, e.g. '
                          f"{where}.type=... (see docs/configs.md).")
    if isinstance(obj_type, str) and obj_type.strip():
        try:
            return registry.get(obj_type)
        except XZooError:
            raise
        except (TypeError, ValueError, RuntimeError, ImportError, AttributeError) as exc:  # mmengine on '.', 'a..b'
            raise UnknownTypeError(f'{where}.type: {registry.unknown_message(obj_type)}') from exc
    if callable(obj_type):
        return obj_type
    raise ConfigError(f'{where}.type must be the name of a registered {registry.display_name} component, got '
                      f'{obj_type!r}.')


def check_component(cfg: Any, registry: XZooRegistry, where: str, default_type: str | None = None,
                    untrusted: bool = False, source: str = '') -> None:
    """Check one component config (and the components nested in it) at config key ``where``.

    ``untrusted``: the strict mode of :func:`check_untrusted` (``source`` names the file in messages).
    """
    if not isinstance(cfg, Mapping):
        raise ConfigError(f'{source}{where} must be a dict describing a {registry.display_name} component, e.g. '
                          f"dict(type='...', ...), got {shorten(repr(cfg))} ({type(cfg).__name__}).")
    if untrusted:
        if '_scope_' in cfg:
            raise SecurityError(f'{source}{where}._scope_ is set; a config.json names registered xzoo components '
                                'only. Remove it.')
        obj_type = cfg.get('type', default_type)
        if not isinstance(obj_type, str) or obj_type not in registry:
            raise SecurityError(f'{source}{where}.type = {shorten(repr(obj_type))} is not the name of a registered '
                                f'xzoo component ({registry.display_name}); refused: a config.json may only name '
                                'registered components, never a module path. Install the plugin that registers '
                                'it.')
    obj = _resolve(cfg, registry, where, default_type)
    if not callable(obj):
        return
    if untrusted:
        _check_untrusted_class(obj, cfg, where, source)
    consumed = _CONSUMED.get(registry.display_name, ())
    cfg = {k: v for k, v in cfg.items() if k not in consumed}
    # unknown arguments only: required ones may come from the parent (a head's in_channels, a sampler's dataset)
    try:
        registry.check_args({**cfg, 'type': obj}, default_args={name: None for name in _required(obj)})
    except ConfigError as exc:
        raise type(exc)(f'{source}{exc}') from None
    hints = _hints(obj)
    name = getattr(obj, '__name__', str(obj))
    slots = component_args(obj)
    training_only = set(getattr(obj, 'training_only', ()) or ())
    for key, value in cfg.items():
        if key in _SKIP:
            continue
        if untrusted:  # a component slot's value is checked as a component below
            _check_untrusted_value(key, value, f'{where}.{key}', source, training_only, name, walk=key not in slots)
        hint = hints.get(key)
        if hint is not None and not _matches(value, hint):
            raise ConfigError(f'{source}{where}.{key} must be {_article(_describe(hint))} (an argument of {name}), '
                              f'got {shorten(repr(value))} ({type(value).__name__}).')
        _check_nested(key, value, f'{where}.{key}', slots.get(key) or RUNNER_SLOTS.get(key), untrusted, source)


def _check_nested(key: str, value: Any, where: str, slot: str | None, untrusted: bool = False,
                  source: str = '') -> None:
    known = registry.ALL.get(slot or '')
    items = list(enumerate(value)) if isinstance(value, (list, tuple)) else [(None, value)]
    for index, item in items:
        path = where if index is None else f'{where}.{index}'
        if known is not None and not isinstance(item, Mapping):
            if item is None or (callable(item) and not untrusted):
                continue
            raise ConfigError(f'{source}{path} must be a dict describing a {known.display_name} component, e.g. '
                              f"dict(type='...', ...), got {shorten(repr(item))} ({type(item).__name__}).")
        if not isinstance(item, Mapping):
            continue
        if known is None:
            if untrusted:
                if 'type' in item:
                    raise SecurityError(f'{source}{path} names a component ({shorten(repr(item["type"]))}) where '
                                        'none is built; refused.')
                _check_plain_tree(item, path, source)
                continue
            if not isinstance(item.get('type'), str):
                continue
            # an argument no class declares: the registry that has the name, if only one
            owners = [r for r in registry.ALL.values() if item['type'] in r]
            if len(owners) != 1:
                continue
            check_component(item, owners[0], path)
            continue
        check_component(item, known, path, untrusted=untrusted, source=source)


_OFF = (None, False, '', (), {})


def _check_untrusted_class(obj: Any, cfg: Mapping, where: str, source: str) -> None:
    """Refuse a class that loads external files when built (it declares ``loads_external_files = True``), and an
    argument left at a default that would load files (``pretrained='openai'``): an untrusted config must say
    ``false``/``null`` explicitly."""
    name = getattr(obj, '__name__', str(obj))
    if getattr(obj, 'loads_external_files', False):
        raise SecurityError(f'{source}{where}: {name} loads files from outside the export when it is built (a Hub '
                            'model, a local folder or a download cache); a config.json may not use it. Refused.')
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return
    for p in params:
        if p.name in cfg or p.default is p.empty or not (p.name == 'pretrained' or p.name in FILE_LOADING_KEYS):
            continue
        if not any(p.default is off or (type(p.default) is type(off) and p.default == off) for off in _OFF):
            raise SecurityError(f'{source}{where}.{p.name} is not set, and the default of {name} '
                                f'({shorten(repr(p.default), 60)}) loads files when it is built; a config.json must '
                                f'set {p.name} to false or null. Refused.')


def _check_untrusted_value(key: str, value: Any, where: str, source: str, training_only: set[str],
                           owner: str, walk: bool = True) -> None:
    """Refuse an argument of an untrusted config that would load files or code, or allocate beyond the caps."""
    if key in FILE_LOADING_KEYS:
        raise SecurityError(f'{source}{where} is set; it would load files or code while building the model, which '
                            'loading from a config.json never does. Remove it.')
    if key in training_only:
        raise SecurityError(f'{source}{where} is a training-only part of {owner} (it would build text encoders or '
                            'alignment heads, which may load external files); an export holds inference parts '
                            'only. Remove it.')
    if key == 'pretrained' and value not in (False, None):
        raise SecurityError(f'{source}{where} = {shorten(repr(value))}; a config.json must set pretrained to false '
                            '(the weights come from model.safetensors).')
    if walk:
        _check_plain_tree(value, where, source, key)


_RESOURCE_KEY = re.compile(r'(^|_)(names?|paths?|files?|dirs?|folders?|model|checkpoints?|weights|tokenizers?|'
                           r'vocab|url|repo|pretrained|root|source|location)$')


def _check_plain_tree(value: Any, where: str, source: str, key: str = '') -> None:
    """Remote names anywhere, file paths in arguments that name a resource (``*_name``, ``*_path``, ``*_file``,
    ``model``, ``pretrained``, ...), huge integers and non-finite floats are refused."""
    stack = [(value, where, key)]
    while stack:
        node, path, name = stack.pop()
        if isinstance(node, Mapping):
            stack.extend((v, f'{path}.{k}', str(k)) for k, v in node.items() if k not in _SKIP)
        elif isinstance(node, (list, tuple)):
            stack.extend((v, f'{path}[{i}]', name) for i, v in enumerate(node))
        elif isinstance(node, str):
            if len(node) > MAX_STRING:
                raise SecurityError(f'{source}{path} is a string of {len(node)} characters; refused.')
            lowered = node.strip().lower()
            if lowered.startswith(_REMOTE_PREFIXES):
                raise SecurityError(f'{source}{path} = {shorten(repr(node))} would fetch files while building the '
                                    'model; refused. A config.json names architectures only; weights come from its '
                                    'model.safetensors.')
            pathlike = '/' in node or '\\' in node or node.startswith(('~', '.')) or os.path.isabs(node)
            if pathlike and _RESOURCE_KEY.search(name.lower()):
                raise SecurityError(f'{source}{path} = {shorten(repr(node))} looks like a file path; a config.json '
                                    'never names files outside its folder. Refused.')
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if abs(node) > MAX_INT_ARG:
                raise SecurityError(f'{source}{path} = {node} is larger than {MAX_INT_ARG:,}; refused before '
                                    'anything is allocated.')
        elif isinstance(node, float):
            if node != node or node in (float('inf'), float('-inf')):
                raise SecurityError(f'{source}{path} is {node}; refused.')


def check_untrusted(model_cfg: Mapping[str, Any], source: str = '', where: str = 'model_args') -> None:
    """Check the model config of an export or Hub repo (``{'type': architecture, **model_args}``) in the strict
    mode: registered names only (``MODELS``), nothing that loads files or code, no training-only parts, caps."""
    prefix = f'{source}: ' if source else ''
    check_component(model_cfg, MODELS, where, untrusted=True, source=prefix)


def _check_int(value: Any, where: str, minimum: int, what: str, example: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f'{where} must be {what}, got {value!r}. Example: --cfg-options {where}={example}')


def check_runtime_values(cfg: Mapping) -> None:
    """``*_dataloader.batch_size``/``num_workers``, ``randomness`` and the preprocessor's mean/std (3 channels)."""
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, Mapping):
            continue
        if 'batch_size' in loader:
            _check_int(loader['batch_size'], f'{split}_dataloader.batch_size', 1, 'a positive integer', 8)
        if 'num_workers' in loader:
            _check_int(loader['num_workers'], f'{split}_dataloader.num_workers', 0, 'an integer, 0 or more', 2)
    model = cfg.get('model')
    pre = model.get('data_preprocessor') if isinstance(model, Mapping) else None
    for key in ('mean', 'std'):
        value = pre.get(key) if isinstance(pre, Mapping) else None
        if value is not None and (not _is_sequence(value) or len(value) != 3):
            raise ConfigError(f'model.data_preprocessor.{key} must be 3 numbers (R, G, B, in 0-255; images are '
                              f'converted to RGB), got {value!r}.')
        if key == 'std' and value is not None and any(isinstance(v, (int, float)) and v <= 0 for v in value):
            raise ConfigError(f'model.data_preprocessor.std must be positive, got {value!r}.')
    randomness = cfg.get('randomness')
    if randomness is not None and not isinstance(randomness, Mapping):
        raise ConfigError(f'randomness must be a dict, e.g. dict(seed=0, deterministic=False), got {randomness!r}.')
    if isinstance(randomness, Mapping):
        seed = randomness.get('seed')
        if seed is not None:
            _check_int(seed, 'randomness.seed', 0, 'an integer >= 0 (or None: a random seed)', 0)
        for flag in ('deterministic', 'diff_rank_seed'):
            if not isinstance(randomness.get(flag, False), bool):
                raise ConfigError(f'randomness.{flag} must be true or false, got {randomness[flag]!r}.')


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _items(value: Any, where: str) -> list[tuple[str, Any]]:
    """``(key, item)`` of a component or a list of components."""
    if _is_sequence(value):
        return [(f'{where}.{i}', v) for i, v in enumerate(value)]
    return [(where, value)]


def check_type_names(cfg: Any, root: str = '') -> None:
    """Refuse a dotted ``type`` anywhere in ``cfg`` that no xzoo registry knows (scoped names such as
    ``'mmengine.LoggerHook'`` are fine): mmengine's own registries import such a module path, e.g. for a component
    the Runner builds with ``_scope_='mmengine'``; here it is an :class:`UnknownTypeError` before anything is built.

    Example:
        >>> try:
        ...     check_type_names({'visualizer': {'type': 'os.getcwd', '_scope_': 'mmengine'}})
        ... except UnknownTypeError as exc:
        ...     print(str(exc).split(';')[0])
        visualizer.type = 'os.getcwd' is a module path, not a registered name
    """
    stack: list[tuple[Any, str]] = [(cfg, root)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, Mapping):
            kind = node.get('type')
            if isinstance(kind, str) and '.' in kind and not _registered_anywhere(kind):
                raise UnknownTypeError(f'{where + "." if where else ""}type = {shorten(repr(kind))} is a module path, '
                                       'not a registered name; module paths are never imported. Register the class '
                                       'and use its name.')
            stack.extend((v, f'{where}.{k}' if where else str(k)) for k, v in node.items() if k != 'type')
        elif isinstance(node, (list, tuple)):
            stack.extend((v, f'{where}.{i}') for i, v in enumerate(node))


def _registered_anywhere(name: str) -> bool:
    for reg in registry.ALL.values():
        try:
            if reg.find(name) is not None:
                return True
        except Exception:  # noqa: BLE001 - mmengine's scope split on odd strings: not a registered name
            continue
    return False


def check_components(cfg: Mapping) -> None:
    """Check the arguments and value types of every component of ``cfg`` (see the module docstring)."""
    check_type_names(dict(cfg))
    check_runtime_values(cfg)
    if 'model' in cfg:
        check_component(cfg['model'], MODELS, 'model')
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader is None:
            continue
        if not isinstance(loader, Mapping):
            raise ConfigError(f'{split}_dataloader must be a dict (batch_size, num_workers, sampler, dataset), got '
                              f'{loader!r}.')
        check_component(loader.get('dataset'), DATASETS, f'{split}_dataloader.dataset')
        if loader.get('sampler') is not None:
            check_component(loader['sampler'], DATA_SAMPLERS, f'{split}_dataloader.sampler')
        evaluator = cfg.get(f'{split}_evaluator')
        for where, metric in _items(evaluator, f'{split}_evaluator') if evaluator is not None else []:
            if not (isinstance(metric, Mapping) and metric.get('type') == 'Evaluator'):
                check_component(metric, METRICS, where)
    wrapper = cfg.get('optim_wrapper')
    if wrapper is not None:
        if not isinstance(wrapper, Mapping):
            raise ConfigError(f"optim_wrapper must be a dict, e.g. dict(optimizer=dict(type='SGD', lr=0.01)), got "
                              f'{wrapper!r}.')
        if 'constructor' not in wrapper:
            check_component(wrapper, OPTIM_WRAPPERS, 'optim_wrapper', default_type='OptimWrapper')
            check_component(wrapper.get('optimizer'), OPTIMIZERS, 'optim_wrapper.optimizer')
    schedulers = cfg.get('param_scheduler')
    for where, scheduler in _items(schedulers, 'param_scheduler') if schedulers is not None else []:
        check_component(scheduler, PARAM_SCHEDULERS, where)
    default_hooks = cfg.get('default_hooks') or {}
    if not isinstance(default_hooks, Mapping):
        raise ConfigError(f'default_hooks must be a dict of name -> hook config, got {default_hooks!r}.')
    for name, hook in default_hooks.items():
        if hook is not None:  # None switches a default hook off
            check_component(hook, HOOKS, f'default_hooks.{name}')
    custom_hooks = cfg.get('custom_hooks') or []
    if not _is_sequence(custom_hooks):
        raise ConfigError(f'custom_hooks must be a list of hook configs, got {custom_hooks!r}.')
    for i, hook in enumerate(custom_hooks):
        check_component(hook, HOOKS, f'custom_hooks.{i}')
    train_cfg = cfg.get('train_cfg')
    if train_cfg:
        if not isinstance(train_cfg, Mapping):
            raise ConfigError(f'train_cfg must be a dict, e.g. dict(by_epoch=True, max_epochs=10), got {train_cfg!r}.')
        check_component(train_loop_type(train_cfg), LOOPS, 'train_cfg')
