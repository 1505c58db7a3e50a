"""Crash-safe checkpoint files for mmengine: :class:`AtomicLocalBackend`, the atomic write of
:mod:`zoo.core.fileio` as an mmengine file backend.

Everything mmengine's ``CheckpointHook`` writes through a backend (``backend_args=dict(backend=ATOMIC_BACKEND)``:
periodic, best and published checkpoints) is then written as ``<name>.partial-<pid>``, fsync'ed and renamed, so a
process killed at any point leaves the old file or the new complete one, never half a file.
:class:`~zoo.engine.checkpoint_hook.AtomicCheckpointHook` uses it by default. Which checkpoint to resume is
:func:`zoo.core.checkpoints.find_resume_checkpoint`.

Example:
    >>> import os, tempfile
    >>> from mmengine.fileio import get_file_backend
    >>> folder = tempfile.mkdtemp()
    >>> get_file_backend(folder, backend_args=dict(backend=ATOMIC_BACKEND)).put(b'x', os.path.join(folder, 'a'))
    >>> sorted(os.listdir(folder))
    ['a']
"""
from __future__ import annotations

from pathlib import Path

from mmengine.fileio import LocalBackend, register_backend

from zoo.core.fileio import atomic_write_bytes

ATOMIC_BACKEND = 'xzoo_atomic_local'
"""Name of :class:`AtomicLocalBackend` among mmengine's file backends."""


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put``/``put_text`` write atomically."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(filepath, obj.encode(encoding))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)
