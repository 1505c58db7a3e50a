"""Loading of mmengine's own training checkpoints under torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses the Python objects mmengine stores in its
checkpoints (message hub, history buffers), so resume fails. mmengine checkpoints in a work_dir are files the user
wrote, so the local-file scheme of mmengine's ``CheckpointLoader`` is re-registered with
:func:`zoo.models.serialization.load_trusted_local` (``weights_only=False``, one-line errors for truncated files,
and a checkpoint that holds no dict is refused). Nothing downloaded (Hub, zoo) ever goes through this path: those
use safetensors + JSON only.

Example:
    >>> from zoo.engine.checkpoint import register_trusted_local_loader
    >>> register_trusted_local_loader()
"""
from __future__ import annotations

from typing import Any

from registry.errors import CheckpointError
from zoo.models.weights import load_trusted_local

_done = False


def load_runner_checkpoint(filename: str, map_location: Any = None) -> dict[str, Any]:
    """A local mmengine checkpoint: a dict (a file holding anything else is an error naming it)."""
    ckpt = load_trusted_local(filename, map_location=map_location)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{filename!r} holds a {type(ckpt).__name__}, not a checkpoint (a dict with '
                              'state_dict, optimizer, meta). Use another file (--resume auto picks the newest '
                              'complete checkpoint of a work_dir).')
    return ckpt


def register_trusted_local_loader() -> None:
    """Make mmengine's local checkpoint loading work under torch >= 2.6 (idempotent)."""
    global _done
    if _done:
        return
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes='', loader=load_runner_checkpoint, force=True)
    _done = True
