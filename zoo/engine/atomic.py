"""Crash-safe files: atomic writes, a complete-checkpoint test, and how ``--resume auto`` picks a checkpoint.

A file is written under a temporary name in its own folder (``iter_6.pth.partial-<pid>``), flushed and fsync'ed,
then renamed over the final name with ``os.replace`` (atomic on POSIX and Windows) and the folder is fsync'ed. A
process killed at any point leaves either the old file or the new complete one under the final name, never a half
file; at worst a ``*.partial-*`` leftover, which is never taken for a checkpoint and is removed on the next start.

:class:`AtomicLocalBackend` is that write as an mmengine file backend (``backend_args=dict(backend=ATOMIC_BACKEND)``),
so everything mmengine's ``CheckpointHook`` writes through a backend (periodic, best and published checkpoints) is
atomic. :class:`~zoo.engine.checkpoint_hook.AtomicCheckpointHook` uses it by default.

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> atomic_write_bytes(os.path.join(folder, 'last_checkpoint'), b'iter_4.pth')
    >>> sorted(os.listdir(folder))
    ['last_checkpoint']
    >>> is_complete_checkpoint(os.path.join(folder, 'last_checkpoint'))   # not a torch zip file
    False
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
import zipfile
from pathlib import Path

from mmengine.fileio import LocalBackend, register_backend

PARTIAL = '.partial-'
"""Marks a file that is being written (``<final name>.partial-<pid>``)."""
ATOMIC_BACKEND = 'xzoo_atomic_local'
"""Name of :class:`AtomicLocalBackend` among mmengine's file backends."""
_STEP = re.compile(r'^(?P<kind>[A-Za-z]+)_(?P<step>\d+)\.pth$')


def _fsync_dir(folder: str) -> None:
    if os.name != 'posix':  # Windows cannot open a directory; os.replace is still atomic there
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers (and a later run after a crash) see all of it or none of it."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f'{path}{PARTIAL}{os.getpid()}'
    try:
        with open(tmp, 'wb') as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put``/``put_text`` write atomically (see the module docstring)."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(filepath, obj.encode(encoding))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


def remove_partial_files(folder: str) -> list[str]:
    """Delete the ``*.partial-*`` leftovers of killed writes in ``folder``; return their paths."""
    removed = []
    for path in glob.glob(os.path.join(glob.escape(folder), f'*{PARTIAL}*')):
        with contextlib.suppress(OSError):
            os.remove(path)
            removed.append(path)
    return removed


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole ``torch.save`` file: a readable zip holding ``data.pkl`` with intact CRCs.

    A truncated file has no zip directory; a torn or corrupted one fails the CRC check. Reads the whole file.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if not any(n == 'data.pkl' or n.endswith('/data.pkl') for n in names):
                return False
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError):
        return False


def _read_pointer(work_dir: str) -> str | None:
    """The checkpoint named by ``work_dir/last_checkpoint`` (made absolute), or ``None``."""
    try:
        with open(os.path.join(work_dir, 'last_checkpoint'), encoding='utf-8') as fh:
            named = fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not named:
        return None
    if not os.path.exists(named):  # written relative to another cwd, or the folder moved: look next to it
        beside = os.path.join(work_dir, os.path.basename(named))
        named = beside if os.path.exists(beside) else named
    return named


def _step(path: str) -> tuple[str, int] | None:
    m = _STEP.match(os.path.basename(path))
    return (m['kind'], int(m['step'])) if m else None


def find_resume_checkpoint(work_dir: str) -> tuple[str | None, str]:
    """The checkpoint ``--resume auto`` continues from, and a note when it is not the one ``last_checkpoint`` names.

    ``last_checkpoint`` says which run owns the folder and how far it got. Its file is used when complete;
    otherwise the newest complete ``<kind>_<N>.pth`` of the same kind with a smaller ``N`` (a file of a later
    step may be left over from an older, longer run in the same folder, so it is never preferred). Without a
    pointer, the newest complete ``<kind>_<N>.pth`` in ``work_dir``. ``(None, note)`` means: start from scratch.
    """
    pointer = _read_pointer(work_dir)
    if pointer is not None and is_complete_checkpoint(pointer):
        return pointer, ''
    folders = {os.path.abspath(work_dir)}
    if pointer is not None:
        folders.add(os.path.dirname(os.path.abspath(pointer)))
    found = [(p, s) for f in folders for p in glob.glob(os.path.join(glob.escape(f), '*.pth'))
             if (s := _step(p)) is not None]
    limit = _step(pointer) if pointer is not None else None
    if limit is not None:
        found = [(p, s) for p, s in found if s[0] == limit[0] and s[1] < limit[1]]
    elif found:
        newest_kind = max(found, key=lambda ps: os.path.getmtime(ps[0]))[1][0]
        found = [(p, s) for p, s in found if s[0] == newest_kind]
    for path, _ in sorted(found, key=lambda ps: ps[1][1], reverse=True):
        if is_complete_checkpoint(path):
            if pointer is None:
                return path, ''
            why = 'does not exist' if not os.path.exists(pointer) else 'is incomplete (truncated or corrupt)'
            return path, f'last_checkpoint names {pointer}, which {why}; resuming from {path} instead.'
    if pointer is not None:
        return None, (f'last_checkpoint names {pointer}, which is missing or incomplete, and no earlier complete '
                      'checkpoint exists; training starts from scratch.')
    return None, ''
