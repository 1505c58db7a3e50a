"""Errors meant for people: what was wrong, what was expected, what to do.

Every error the project raises on purpose derives from :class:`XZooError`; the command-line tools print
its message on one line and exit with status 2 (see ``zoo.cli``). This module imports nothing but the standard
library, so any layer (even one that must not import mmengine or torch) raises these errors from the top of its
module.

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


class SecurityError(ConfigError):
    """Something from an untrusted source (an export, a Hub repo, an index file) would run code, read files outside
    its folder, reach the network, or allocate beyond the caps; it is refused before anything happens."""


class ResourceError(XZooError, RuntimeError):
    """A resource the run needs is busy or unusable: a work dir locked by another run, a full or read-only disk."""


def shorten(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters with the length said, so a message never echoes a huge input.

    Example:
        >>> shorten('x' * 1000, 12)
        'xxxxxxxxxxxx… (1000 characters)'
    """
    text = str(text)
    return text if len(text) <= limit else f'{text[:limit]}… ({len(text)} characters)'


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Names in ``candidates`` that look like ``name`` (case-insensitive), best first."""
    if len(name) > 200:  # difflib is quadratic: a huge name is nothing like a registered one
        return []
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
