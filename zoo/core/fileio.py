"""Every file xzoo writes goes through here: atomic writes, JSON, sha256, leftovers of killed writes, work-dir locks.

The one invariant: a reader (or a later run after a crash) sees either the old file or the new complete one under
the final name, never half a file. A file is written as ``<final name>.partial-<pid>`` in its own folder, flushed
and fsync'ed, renamed over the final name with ``os.replace`` (atomic on POSIX and Windows), and the folder is
fsync'ed. A process killed mid-write leaves at most a ``*.partial-<pid>`` file; :func:`remove_partial_files` deletes
only those whose writer process is gone, so a run never deletes the file another live run is writing.

:class:`WorkDirLock` holds an OS-level lock (``fcntl.lockf``) on ``<work_dir>/.xzoo.lock`` for a run, so two runs
never write into one work dir; the second fails at once naming the holder's pid.

Standard library only (no torch, no mmengine): every layer may use it.

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> write_json(os.path.join(folder, 'a.json'), {'x': (1, 2)})
    >>> open(os.path.join(folder, 'a.json')).read()
    '{\\n  "x": [\\n    1,\\n    2\\n  ]\\n}\\n'
    >>> with atomic_path(os.path.join(folder, 'b.bin')) as tmp:
    ...     _ = open(tmp, 'wb').write(b'ok')
    >>> sorted(os.listdir(folder))
    ['a.json', 'b.bin']
"""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator
from typing import Any

from registry.errors import ResourceError

PARTIAL = '.partial-'
"""Marks a file that is being written (``<final name>.partial-<pid>``)."""
_PARTIAL_PID = re.compile(r'\.partial-(\d+)$')
LOCK_NAME = '.xzoo.lock'
_HELD: set[str] = set()  # lock files this process holds (POSIX locks do not conflict within one process)


def _fsync_dir(folder: str) -> None:
    if os.name != 'posix':  # Windows cannot open a directory; os.replace is still atomic there
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_error(exc: OSError, path: str) -> Exception:
    """A one-line :class:`ResourceError` for the disk problems people hit (full, read-only, not a folder)."""
    reasons = {errno.ENOSPC: 'the disk is full', errno.EROFS: 'the file system is read-only',
               errno.EACCES: 'permission denied', errno.EPERM: 'permission denied',
               errno.ENOTDIR: 'a part of the path is a file, not a folder', errno.EISDIR: 'the path is a folder',
               errno.EDQUOT: 'the disk quota is exceeded'}
    why = reasons.get(exc.errno)
    if why is None:
        return exc
    advice = 'Free space or choose' if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 'Choose'
    return ResourceError(f'Cannot write {path!r}: {why} ({exc.strerror}). {advice} another location '
                         '(e.g. --work-dir / --out).')


def ensure_dir(folder: str | os.PathLike) -> str:
    """Create ``folder`` (and parents); a path that is a file, read-only or on a full disk is a one-line error."""
    folder = os.fspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ResourceError(f'{folder!r} is a file, not a folder; choose a folder path (e.g. --work-dir / --out).')
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise _disk_error(exc, folder) from exc
    return folder


def check_writable(folder: str | os.PathLike) -> str:
    """Make sure files can be created in ``folder`` now (before long work whose results would be lost)."""
    folder = ensure_dir(folder)
    probe = os.path.join(folder, f'.xzoo-write-test{PARTIAL}{os.getpid()}')
    try:
        with open(probe, 'wb') as fh:
            fh.write(b'0')
    except OSError as exc:
        raise _disk_error(exc, folder) from exc
    finally:
        with contextlib.suppress(OSError):
            os.remove(probe)
    return folder


def check_can_write(path: str | os.PathLike, kind: str = 'folder', flag: str = '--out') -> str:
    """Check, before long work, that ``path`` can be written later — a ``'folder'`` (created then) or a ``'file'``
    — **without creating anything**: a file where a folder goes (or the reverse), a read-only or full disk, a
    missing permission are one-line :class:`ResourceError` naming ``flag``. Returns ``path``.

    Example:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> check_can_write(os.path.join(folder, 'new', 'out'), 'folder') == os.path.join(folder, 'new', 'out')
        True
        >>> os.listdir(folder)
        []
    """
    path = os.fspath(path)
    if not path:
        raise ResourceError(f'{flag} is empty; pass a path.')
    full = os.path.abspath(os.path.expanduser(path))
    if kind == 'folder' and os.path.exists(full) and not os.path.isdir(full):
        raise ResourceError(f'{flag} {path!r} is a file, not a folder; choose a folder path.')
    if kind == 'file' and os.path.isdir(full):
        raise ResourceError(f'{flag} {path!r} is a folder; pass a file path (e.g. {os.path.join(path, "out.json")}).')
    existing = full if kind == 'folder' and os.path.isdir(full) else os.path.dirname(full)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ResourceError(f'{flag} {path!r}: {existing!r} is a file, so no folder can be made under it.')
    probe = os.path.join(existing, f'.xzoo-write-test{PARTIAL}{os.getpid()}')
    try:
        with open(probe, 'wb') as fh:
            fh.write(b'0')
    except OSError as exc:
        err = _disk_error(exc, existing)
        why = str(err) if isinstance(err, ResourceError) else \
            f'no file can be created in {existing!r} ({exc.strerror}).'
        raise ResourceError(f'{flag} {path!r}: {why}') from exc
    finally:
        with contextlib.suppress(OSError):
            os.remove(probe)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int | None = 0o644) -> Iterator[str]:
    """A temporary path beside ``path`` for a writer that wants a file name (``savefig``, ``save_file``,
    ``torch.save``); on success it is fsync'ed and renamed to ``path``, on error removed.

    ``mode``: permissions of the final file (``None`` keeps the writer's; safetensors creates files 0600).
    """
    path = os.fspath(path)
    folder = ensure_dir(os.path.dirname(os.path.abspath(path)))
    tmp = f'{path}{PARTIAL}{os.getpid()}'
    try:
        yield tmp
        with open(tmp, 'rb+') as fh:
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise _disk_error(exc, path) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see all of it or none of it."""
    with atomic_path(path) as tmp, open(tmp, 'wb') as fh:
        fh.write(data)
        fh.flush()


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = 'utf-8') -> None:
    atomic_write_bytes(path, text.encode(encoding))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, 'tolist'):  # numpy / torch
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f'{type(obj).__name__} is not JSON serialisable')


def _finite(obj: Any) -> Any:
    """NaN/Inf floats as ``None`` (JSON has no NaN; a reader in another language would choke on it)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented UTF-8 JSON, atomically (tuples as lists, NaN as null, arrays as lists)."""
    text = json.dumps(_finite(payload), indent=2, ensure_ascii=False, default=_json_default)
    atomic_write_text(path, text + '\n')


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (streamed)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        for block in iter(lambda: fh.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def remove_partial_files(folder: str | os.PathLike) -> list[str]:
    """Delete the ``*.partial-<pid>`` leftovers of killed writes in ``folder`` whose writer is gone; return them.

    A partial file of a live process (another run, or this one) is left alone.
    """
    removed = []
    for path in glob.glob(os.path.join(glob.escape(os.fspath(folder)), f'*{PARTIAL}*')):
        m = _PARTIAL_PID.search(path)
        if m is None or pid_alive(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.remove(path)
            removed.append(path)
    return removed


class WorkDirLock:
    """An exclusive OS-level lock on ``<work_dir>/.xzoo.lock`` held while a run writes into ``work_dir``.

    The lock file records the holder's pid; a second run fails at once with :class:`ResourceError` naming it. It is
    a POSIX record lock (``fcntl.lockf``): owned by the process, not inherited by forked data-loader workers, and
    released by the OS when the holder dies (even by SIGKILL), so a stale lock file never blocks a new run. Within
    one process a second lock of the same work dir is refused too. On release the lock file is removed (and the
    work dir too, if the lock created it and nothing else was written).

    Example:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with WorkDirLock(folder):
        ...     os.path.exists(os.path.join(folder, LOCK_NAME))
        True
        >>> os.listdir(folder)
        []
    """

    def __init__(self, work_dir: str | os.PathLike) -> None:
        self.work_dir = os.fspath(work_dir)
        self.path = os.path.join(self.work_dir, LOCK_NAME)
        self._fh: Any = None
        self._created_dir = False

    def acquire(self) -> WorkDirLock:
        if self._fh is not None:
            return self
        key = os.path.realpath(self.path)
        if key in _HELD:
            raise ResourceError(f'Work dir {self.work_dir!r} is in use by another run of this process (pid '
                                f'{os.getpid()}); two runs in one work dir would overwrite each other\'s checkpoints. '
                                'Pass another --work-dir.')
        self._created_dir = not os.path.exists(self.work_dir)
        ensure_dir(self.work_dir)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks; the pid file is still written
            fcntl = None
        for _ in range(5):
            try:
                fh = open(self.path, 'a+')  # noqa: SIM115 - held open for the lock's lifetime
            except OSError as exc:
                raise _disk_error(exc, self.path) from exc
            if fcntl is not None:
                try:
                    fcntl.lockf(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    fh.seek(0)
                    holder = fh.read(32).strip() or 'unknown'
                    fh.close()
                    raise ResourceError(f'Work dir {self.work_dir!r} is in use by another run (pid {holder}); two '
                                        'runs in one work dir would overwrite each other\'s checkpoints. Wait for it, '
                                        'stop it, or pass another --work-dir.') from None
            try:  # the holder before us may have removed the file between our open and our lock: retry
                same = os.fstat(fh.fileno()).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if same:
                break
            fh.close()
        else:  # pragma: no cover - five races in a row
            raise ResourceError(f'Could not lock work dir {self.work_dir!r}; another run keeps replacing its lock.')
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        _HELD.add(key)
        return self

    def release(self) -> None:
        if self._fh is None:
            return
        _HELD.discard(os.path.realpath(self.path))
        with contextlib.suppress(OSError):
            os.remove(self.path)  # while still holding the lock: nobody can be waiting on this inode
        with contextlib.suppress(OSError):
            self._fh.close()
        self._fh = None
        if self._created_dir:
            with contextlib.suppress(OSError):
                os.rmdir(self.work_dir)  # only if empty: nothing was written

    @property
    def held(self) -> bool:
        return self._fh is not None

    def __enter__(self) -> WorkDirLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
