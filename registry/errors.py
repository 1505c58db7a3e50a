"""Errors meant for people: what was wrong, what was expected, what to do.

Every error the project raises on purpose derives from :class:`XZooError`; the command-line tools print
its message on one line and exit with status 2 (see ``zoo.cli``).

Example:
    >>> from registry.errors import closest
    >>> closest('OTAligmentHead', ['OTAlignmentHead', 'LinearClsHead'])
    ['OTAlignmentHead']
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class XZooError(Exception):
    """Base class of every deliberate, user-facing xzoo error."""

    def __str__(self) -> str:  # KeyError subclasses would otherwise quote the message
        return str(self.args[0]) if self.args else ''


class ConfigError(XZooError, ValueError):
    """A config or a command-line override is wrong."""


class UnknownTypeError(XZooError, KeyError):
    """A ``type`` in a config is not registered in the registry that builds it."""


class DataError(XZooError, ValueError):
    """A dataset is missing, empty, malformed or holds an unreadable file."""


class CheckpointError(XZooError, ValueError):
    """A checkpoint or weights file is missing, corrupt or does not fit the model."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Names in ``candidates`` that look like ``name`` (case-insensitive), best first."""
    cands = sorted(set(candidates))
    lower = {c.lower(): c for c in cands}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
    return [lower[h] for h in hits]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` or ``''`` when nothing is close."""
    hits = closest(name, candidates)
    if not hits:
        return ''
    return ' Did you mean ' + ' or '.join(repr(h) for h in hits) + '?'
