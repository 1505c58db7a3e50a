"""Short names for registered components: ``'gradcam'`` → ``'GradCAM'``, ``'pointing_game'`` → ``'PointingGame'``.

Example:
    >>> from registry import XZooRegistry
    >>> reg = XZooRegistry('DEMO', 'demo')
    >>> @reg.register_module()
    ... class PointingGame:
    ...     aliases = ('pointing_game',)
    >>> table = alias_table(reg, lambda name, cls: (*cls.aliases, name))
    >>> table
    {'PointingGame': 'PointingGame', 'pointing_game': 'PointingGame'}
    >>> resolve_alias(reg, 'Pointing-Game', table, 'metric')
    'PointingGame'
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .errors import UnknownTypeError, did_you_mean


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
    if name in registry:
        return name
    by_key = {alias_key(a): n for a, n in table.items()}
    if alias_key(name) in by_key:
        return by_key[alias_key(name)]
    raise UnknownTypeError(f'No {what} {name!r}.{did_you_mean(name, table)} Known: {", ".join(table)}. '
                           "A module outside xzoo registers through the 'xzoo.plugins' entry point.")
