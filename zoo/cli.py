"""Shared command-line plumbing: people get one line and exit status 2, not a traceback, for known errors.

Errors that count as the user's (a wrong config, data or checkpoint) are :class:`~registry.errors.XZooError`
and a few library errors that only a wrong input produces. Anything else is a bug and keeps its traceback.

Example:
    >>> import sys
    >>> from zoo.cli import run_cli
    >>> def main(argv):
    ...     from registry.errors import ConfigError
    ...     raise ConfigError('model.head.num_classes must be an int.')
    >>> try:
    ...     run_cli(main, [])
    ... except SystemExit as exc:
    ...     print(exc.code)
    2
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from registry.errors import XZooError

EXIT_USER_ERROR = 2
_WORKER = re.compile(r'Caught \w+ in DataLoader worker process \d+\.')


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` as one line (DataLoader-worker wrapping and tracebacks removed)."""
    text = str(exc)
    if _WORKER.search(text) or 'Original Traceback' in text:
        last = [ln for ln in text.strip().splitlines() if ln.strip()][-1]
        text = last.split(': ', 1)[1] if ': ' in last else last
    return ' '.join(text.split())


def user_error(exc: BaseException) -> str | None:
    """One-line message when ``exc`` is the user's mistake, else ``None``."""
    if isinstance(exc, XZooError):
        return one_line(exc)
    text = str(exc)
    if _WORKER.search(text) and re.search(r'registry\.errors\.\w+Error:', text):
        return one_line(exc)
    if isinstance(exc, FileNotFoundError):
        return f'{exc.strerror or "No such file"}: {exc.filename!r}.' if exc.filename else one_line(exc)
    if isinstance(exc, TypeError) and 'unexpected keyword argument' in text:
        return f'{one_line(exc)} Check the component\'s arguments in the config (its docstring lists them).'
    return None


def run_cli(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> Any:
    """Run ``main(argv)``; print known user errors as ``error: ...`` on stderr and exit with status 2."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001
        msg = user_error(exc)
        if msg is None or os.environ.get('XZOO_DEBUG'):
            raise
        print(f'error: {msg}', file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def add_cfg_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--cfg-options', nargs='+', action='extend', default=[], metavar='KEY=VALUE',
                        help='override config values, e.g. model.head.num_classes=10 list.0.type=X; a key that '
                             'does not exist is an error unless written +KEY=VALUE (adds it). Values: ints, '
                             'floats, true/false, None, [a,b] lists, (a,b) tuples.')
