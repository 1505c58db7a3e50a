"""Short names for registered components: ``'gradcam'`` → ``'GradCAM'``, ``'pointing_game'`` → ``'PointingGame'``.

Example:
    >>> from registry import XZooRegistry
    >>> reg = XZooRegistry('DEMO', 'demo')
    >>> class Metric:
    ...     pass
    >>> @reg.register_module()
    ... class PointingGame(Metric):
    ...     aliases = ('pointing_game',)
    >>> table = alias_table(reg, lambda name, cls: (*cls.aliases, name))
    >>> table
    {'PointingGame': 'PointingGame', 'pointing_game': 'PointingGame'}
    >>> resolve_alias(reg, 'Pointing-Game', table, 'metric')
    'PointingGame'
    >>> type(build_from_alias(reg, 'pointing_game', table, 'metric', base=Metric)).__name__
    'PointingGame'
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import ConfigError, UnknownTypeError, did_you_mean, shorten


def alias_key(name: str) -> str:
    """What two spellings of one name share: case, ``-``, ``_`` and spaces ignored."""
    return name.lower().replace('_', '').replace('-', '').replace(' ', '')


def alias_table(registry: Any, aliases: Callable[[str, type], Iterable[str | None]]) -> dict[str, str]:
    """``{alias: registered name}`` over every class of an ``XZooRegistry`` (plugins included), sorted; first
    claim wins."""
    out: dict[str, str] = {}
    for name in registry.names():
        for alias in aliases(name, registry.get(name)):
            if alias:
                out.setdefault(alias, name)
    return dict(sorted(out.items()))


def resolve_alias(registry: Any, name: str, table: dict[str, str], what: str) -> str:
    """The registered name for ``name`` (a registered name or any spelling of an alias in ``table``).

    Raises ``UnknownTypeError`` with a did-you-mean and the known names otherwise.
    """
    if not isinstance(name, str):
        raise UnknownTypeError(f'A {what} is named by a string, got {type(name).__name__}.')
    if name in registry:
        return name
    by_key = {alias_key(a): n for a, n in table.items()}
    if alias_key(name) in by_key:
        return by_key[alias_key(name)]
    path = (' Names are registered names or aliases, never module paths (a module path is not imported).'
            if '.' in name else '')
    raise UnknownTypeError(f'No {what} {shorten(name)!r}.{did_you_mean(name, table)}{path} Known: '
                           f'{", ".join(table)}. A module outside xzoo registers through the \'xzoo.plugins\' '
                           'entry point.')


def build_from_alias(registry: Any, name_or_cfg: Any, table: dict[str, str], what: str, base: type,
                     **kwargs: Any) -> Any:
    """Build a component of ``registry`` from an alias, a registered name or a config dict; ``kwargs`` override the
    config's fields. An instance of ``base`` is returned as is (with ``kwargs`` it is an error: pass a name or a
    dict to set arguments). Only registered names resolve: a module path is refused, never imported.
    """
    if isinstance(name_or_cfg, base):
        if kwargs:
            raise ConfigError(f'Got a {what} instance and keyword arguments ({", ".join(kwargs)}); pass a name or a '
                              'config dict to set arguments.')
        return name_or_cfg
    if isinstance(name_or_cfg, str):
        cfg: dict[str, Any] = {'type': name_or_cfg}
    elif isinstance(name_or_cfg, Mapping) and 'type' in name_or_cfg:
        cfg = dict(name_or_cfg)
    else:
        raise ConfigError(f"A {what} is given by a name such as {next(iter(table), 'x')!r} or a dict with a 'type' "
                          f'key, got {shorten(repr(name_or_cfg))}.')
    cfg.update(kwargs)
    if isinstance(cfg['type'], str):
        cfg['type'] = resolve_alias(registry, cfg['type'], table, what)
    elif not (isinstance(cfg['type'], type) and issubclass(cfg['type'], base)):
        raise ConfigError(f'A {what} type must be a registered name or a {base.__name__} subclass, got '
                          f'{shorten(repr(cfg["type"]))}.')
    return registry.build(cfg)
