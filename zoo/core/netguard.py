"""No network while untrusted files are turned into a model: :func:`no_network`.

The export loader checks a ``config.json`` before anything is built from it (registered names only, no argument
that loads files), so a model built from it never needs the network. This guard makes that a property of the
process rather than of every component's code: while it is active, opening a network connection or resolving a
host name from the loading thread, or from any thread started while it is active, fails with
:class:`NetworkRefused` (an ``OSError``, so libraries treat it as "no network"), and leaving the block raises
:class:`~registry.errors.SecurityError` naming the first address tried, even if the component swallowed the error.

Threads that existed before the block (a server in the same process, another download) are not affected. The
guard patches ``socket.socket.connect``/``connect_ex`` and ``socket.getaddrinfo`` only while at least one guard is
active (nothing is patched otherwise); nested and concurrent guards are fine. Standard library only.

Example:
    >>> import socket
    >>> try:
    ...     with no_network('an export'):
    ...         socket.create_connection(('127.0.0.1', 9), timeout=1)
    ... except Exception as exc:
    ...     print(type(exc).__name__, str(exc).split(';')[0])
    SecurityError an export: building the model tried to reach the network (127.0.0.1:9)
"""
from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from registry.errors import SecurityError

_lock = threading.RLock()
_active: list[_Guard] = []
_saved: dict[str, Any] = {}


class NetworkRefused(ConnectionRefusedError):
    """Raised in place of a connection or a host lookup while :func:`no_network` is active."""


@dataclass
class _Guard:
    what: str
    owner: int
    before: frozenset[int]
    attempts: list[str] = field(default_factory=list)

    def covers(self, ident: int) -> bool:
        return ident == self.owner or ident not in self.before


def _refuse(target: Any) -> None:
    ident = threading.get_ident()
    with _lock:
        guards = [g for g in _active if g.covers(ident)]
        for guard in guards:
            guard.attempts.append(str(target)[:200])
    if guards:
        raise NetworkRefused(f'network access is refused while {guards[0].what} is loaded (target {target})')


def _connect(self: socket.socket, address: Any) -> Any:
    _refuse(address)
    return _saved['connect'](self, address)


def _connect_ex(self: socket.socket, address: Any) -> Any:
    _refuse(address)
    return _saved['connect_ex'](self, address)


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    _refuse(host if not args else f'{host}:{args[0]}')
    return _saved['getaddrinfo'](host, *args, **kwargs)


def _install() -> None:
    _saved['had_connect'] = 'connect' in vars(socket.socket)
    _saved['had_connect_ex'] = 'connect_ex' in vars(socket.socket)
    _saved['connect'] = socket.socket.connect
    _saved['connect_ex'] = socket.socket.connect_ex
    _saved['getaddrinfo'] = socket.getaddrinfo
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _getaddrinfo


def _uninstall() -> None:
    for name in ('connect', 'connect_ex'):
        if _saved[f'had_{name}']:
            setattr(socket.socket, name, _saved[name])
        else:
            with contextlib.suppress(AttributeError):
                delattr(socket.socket, name)
    socket.getaddrinfo = _saved['getaddrinfo']  # _saved is kept: a call racing with this still finds the original


@contextlib.contextmanager
def no_network(what: str) -> Iterator[None]:
    """Refuse network access from this thread and the threads it starts inside the block; ``what`` names the
    untrusted source in messages. An attempt raises :class:`~registry.errors.SecurityError` when the block ends."""
    ident = threading.get_ident()
    guard = _Guard(what, ident, frozenset(t.ident for t in threading.enumerate() if t.ident is not None) - {ident})
    with _lock:
        if not _active:
            _install()
        _active.append(guard)
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:  # re-raised below, as SecurityError when the network was tried
        error = exc
    finally:
        with _lock:
            _active.remove(guard)
            if not _active:
                _uninstall()
    if guard.attempts:
        raise SecurityError(f'{what}: building the model tried to reach the network ({guard.attempts[0]}); loading '
                            'an export never does, so it was refused. A component of its config.json fetches files: '
                            'remove it.') from error
    if error is not None:
        raise error
