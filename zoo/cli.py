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
    if isinstance(exc, XZooError):  # a list of several problems (MissingAssetsError) keeps its lines
        return str(exc) if getattr(exc, 'multiline', False) else one_line(exc)
    text = str(exc)
    if _WORKER.search(text) and re.search(r'registry\.errors\.\w+Error:', text):
        return one_line(exc)
    if isinstance(exc, FileNotFoundError):
        return f'{exc.strerror or "No such file"}: {exc.filename!r}.' if exc.filename else one_line(exc)
    if isinstance(exc, TypeError) and 'unexpected keyword argument' in text:
        return f'{one_line(exc)} Check the component\'s arguments in the config (its docstring lists them).'
    return network_error(exc)


_NETWORK_LIBRARIES = ('httpx', 'httpcore', 'requests', 'urllib3', 'huggingface_hub', 'aiohttp')  # httpx2 too
_NETWORK_CLASSES = ('ConnectError', 'ConnectTimeout', 'ConnectionError', 'NetworkError', 'TransportError',
                    'ReadTimeout', 'TimeoutException', 'RemoteProtocolError', 'ProxyError', 'SSLError')


def _mro_names(exc: BaseException) -> list[tuple[str, str]]:
    return [(k.__module__.split('.')[0], k.__name__) for k in type(exc).__mro__]


def network_error(exc: BaseException) -> str | None:
    """One line for an unreachable network or Hub (offline mode, connection refused, timeout, a server error), found
    by the exception's class (no HTTP library is imported); ``None`` for anything else.

    Example:
        >>> import socket
        >>> try:
        ...     socket.create_connection(('127.0.0.1', 9), timeout=1)
        ... except OSError as exc:
        ...     print(network_error(exc))
        Cannot reach the network: [Errno 111] Connection refused. Check the connection, a proxy, or HF_ENDPOINT.
        >>> network_error(ConnectionResetError(104, 'Connection reset by peer')) is None   # not from HTTP code
        True
    """
    names = _mro_names(exc)
    first = ' '.join(str(exc).split('\n')[0].split())[:200] or type(exc).__name__
    if any(name == 'OfflineModeIsEnabled' for _, name in names):
        return ('Cannot reach the Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE=1). Unset HF_HUB_OFFLINE '
                'to upload or download, or use --dry-run / local files.')
    status = getattr(getattr(exc, 'response', None), 'status_code', None)
    if any(mod == 'huggingface_hub' and name == 'HfHubHTTPError' for mod, name in names) and isinstance(status, int):
        if status in (401, 403):
            return (f'The Hugging Face Hub refused the request ({status}): {first} Log in (`hf auth login` or '
                    'HF_TOKEN) with a token that may write to this repo.')
        if status >= 500:
            return f'The Hugging Face Hub is not answering properly ({status}): {first} Try again later.'
        return None
    networky = any(mod.startswith(_NETWORK_LIBRARIES) and name in _NETWORK_CLASSES for mod, name in names)
    if networky or (isinstance(exc, (ConnectionError, TimeoutError)) and _raised_by_network_code(exc)):
        return f'Cannot reach the network: {first}. Check the connection, a proxy, or HF_ENDPOINT.'
    return None


_NETWORK_FILES = ('huggingface_hub', 'httpx', 'httpcore', 'requests', 'urllib3', os.path.join('urllib', 'request'),
                  os.path.join('http', 'client'), 'socket.py')


def _raised_by_network_code(exc: BaseException) -> bool:
    """Whether a built-in ``ConnectionError``/``TimeoutError`` came from HTTP code (a DataLoader worker's broken pipe
    is not an unreachable network)."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        tb = node.__traceback__
        while tb is not None:
            if any(part in tb.tb_frame.f_code.co_filename for part in _NETWORK_FILES):
                return True
            tb = tb.tb_next
        node = node.__cause__ or node.__context__
    return False


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
