"""Loading configs and applying ``--cfg-options`` overrides that are checked against the config.

An override ``a.b=1`` must name a key that exists (list items by index: ``list.0.c=2``); a typo is an error with
a did-you-mean. To add a key that the config does not have, prefix it with ``+``: ``+model.backbone.drop_rate=0.1``.
Values are parsed as mmengine's ``DictAction`` does: ints, floats, ``true``/``false``, ``None``, ``[a,b]`` lists,
``(a,b)`` tuples, ``a,b`` lists; anything else is a string.

Example:
    >>> from mmengine.config import Config
    >>> cfg = Config(dict(model=dict(head=dict(num_classes=200))))
    >>> _ = apply_cfg_options(cfg, ['model.head.num_classes=10'])
    >>> cfg.model.head.num_classes
    10
    >>> apply_cfg_options(cfg, ['model.head.num_clases=10'])
    Traceback (most recent call last):
    registry.errors.ConfigError: --cfg-options: the config has no key 'model.head.num_clases'. Did you mean 'num_classes'? ...
"""  # noqa: E501
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mmengine.config import Config, DictAction

from registry import DATASETS, METRICS, MODELS, SCOPE
from registry.errors import ConfigError, XZooError, did_you_mean, shorten
from zoo.core.limits import MAX_KEY_PARTS
from zoo.validation import check_components, check_type_names

_KEY = re.compile(r'^\+?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$')


def parse_value(text: str) -> Any:
    """Parse an override value the way mmengine's ``DictAction`` does (brackets must balance)."""
    try:
        return DictAction._parse_iterable(text)
    except (AssertionError, RecursionError, ValueError, IndexError) as exc:
        # mmengine recurses forever on a comma inside brackets that do not open the value, e.g. f(1,2)
        why = 'unbalanced or misplaced brackets' if isinstance(exc, RecursionError) else str(exc)
        raise ConfigError(f'--cfg-options: cannot parse value {shorten(text)!r}: {why}. Values are numbers, '
                          'true/false, None, strings, [a,b] lists or (a,b) tuples; quote them without spaces, e.g. '
                          'key="[1,2]".') from exc


def parse_cfg_options(options: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``['a.b=1', '+c=x']`` → ``{'a.b': 1, '+c': 'x'}`` (a mapping is returned as is)."""
    if options is None:
        return {}
    if isinstance(options, Mapping):
        return dict(options)
    parsed: dict[str, Any] = {}
    for item in options:
        if not isinstance(item, str) or '=' not in item:
            raise ConfigError(f'--cfg-options expects KEY=VALUE items, got {item!r}. Example: '
                              '--cfg-options model.head.num_classes=10 train_cfg.max_iters=100')
        key, value = item.split('=', 1)
        key = key.strip()
        if key.count('.') >= MAX_KEY_PARTS:
            raise ConfigError(f'--cfg-options: the key {shorten(key, 60)!r} has {key.count(".") + 1} dotted parts; '
                              f'at most {MAX_KEY_PARTS} are accepted.')
        if not _KEY.match(key):
            raise ConfigError(f'--cfg-options: {shorten(key)!r} is not a valid key. Keys are dotted names such as '
                              "model.backbone.pretrained or list.0.type ('+' in front adds a new key).")
        parsed[key] = parse_value(value)
    return parsed


def _check_path(cfg: Config, key: str) -> None:
    add = key.startswith('+')
    parts = key.lstrip('+').split('.')
    node: Any = cfg._cfg_dict
    for depth, part in enumerate(parts):
        where = '.'.join(parts[:depth]) or '<top level>'
        if isinstance(node, Mapping):
            if part in node:
                node = node[part]
                continue
            if add:
                return
            keys = sorted(str(k) for k in node)
            listed = ', '.join(keys[:20]) + (' ...' if len(keys) > 20 else '')
            raise ConfigError(f"--cfg-options: the config has no key {shorten('.'.join(parts))!r}."
                              f'{did_you_mean(part, keys)} Keys at {shorten(where)}: {listed or "(none)"}. To add a '
                              f"new key on purpose, write +{shorten('.'.join(parts))}=VALUE.")
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f'--cfg-options: {where!r} is a list of {len(node)} items; {part!r} is not an '
                                  f'index in 0..{len(node) - 1}.')
            node = node[int(part)]
            continue
        kind = type(node).__name__
        kind = ('an ' if kind[:1] in 'aeiou' else 'a ') + kind
        raise ConfigError(f'--cfg-options: {where!r} is {kind} ({node!r}), it has no key {part!r}. Replace '
                          f'the whole value instead: {where}=VALUE.')


def apply_cfg_options(cfg: Config, options: Iterable[str] | Mapping[str, Any] | None) -> Config:
    """Check every override key against ``cfg`` and merge the overrides into it (in place)."""
    parsed = parse_cfg_options(options)
    for key in parsed:
        _check_path(cfg, key)
    for key, value in parsed.items():
        if isinstance(value, Mapping):  # from Python: merged into the dict it names, as mmengine does
            cfg.merge_from_dict({key.lstrip('+'): value}, allow_list_keys=True)
        else:  # replaced (mmengine's merge fails on a scalar that replaces a list item: list.0=1)
            _assign(cfg, key.lstrip('+'), value)
    return cfg


def _assign(cfg: Config, key: str, value: Any) -> None:
    """Set ``cfg[key] = value`` for a checked dotted key (list items by index, new dicts for a '+' key)."""
    from mmengine.config import ConfigDict

    *parents, last = key.split('.')
    node: Any = cfg._cfg_dict
    for part in parents:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            if part not in node:
                node[part] = ConfigDict()
            node = node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def load_config(config: str | os.PathLike | Config | Mapping,
                cfg_options: Iterable[str] | Mapping[str, Any] | None = None) -> Config:
    """Read an mmengine config file (or wrap a dict), apply checked overrides, set ``default_scope='zoo'``.

    Example::

        cfg = load_config('configs/resnet50_baseline_cub.py', ['model.backbone.pretrained=False'])
    """
    if isinstance(config, Config):
        cfg = config
    elif isinstance(config, Mapping):
        cfg = Config(dict(config))
    else:
        path = os.fspath(config)
        if not os.path.isfile(path):
            raise ConfigError(f'Config file {path!r} does not exist. Recipes live in configs/, e.g. '
                              'configs/resnet50_baseline_cub.py.')
        try:
            cfg = Config.fromfile(path)
        except XZooError:
            raise
        except SyntaxError as exc:
            where = exc.filename if exc.filename and os.path.isfile(exc.filename) else path  # not mmengine's copy
            raise ConfigError(f'Config {where}:{exc.lineno}: syntax error: {exc.msg}.') from exc
        except Exception as exc:  # noqa: BLE001 - a config is user code; report its error in one line
            raise ConfigError(f'Config {path!r} failed to load: {type(exc).__name__}: {exc}') from exc
    apply_cfg_options(cfg, cfg_options)
    check_type_names(cfg._cfg_dict)  # a module path is never imported, not even by mmengine's own registries
    if not cfg.get('default_scope'):
        cfg.default_scope = SCOPE
    return cfg


def validate_config(cfg: Config) -> None:
    """Resolve every ``type`` and check arguments and value types before the Runner starts.

    Raises :class:`~registry.errors.UnknownTypeError` or :class:`ConfigError` with the component's name (see
    :mod:`zoo.validation` for what is checked).
    """

    if 'model' not in cfg:
        raise ConfigError('The config has no `model`. Start from a recipe in configs/ or add '
                          "model = dict(type='ImageClassifier', ...).")
    check_components(cfg)  # shapes, types, unknown arguments, nested components
    MODELS.check_args(cfg.model)  # and, at the top level, arguments that are missing
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if isinstance(loader, Mapping) and isinstance(loader.get('dataset'), Mapping):
            DATASETS.check_args(loader['dataset'])
        evaluator = cfg.get(f'{split}_evaluator')
        for metric in evaluator if isinstance(evaluator, list) else [evaluator]:
            if isinstance(metric, Mapping) and 'type' in metric and metric['type'] != 'Evaluator':
                METRICS.check_args(metric)
