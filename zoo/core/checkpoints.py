"""The one checkpoint locator: which checkpoint of a work dir to resume, test or export, and its config dump.

A work dir written by ``tools/train.py`` holds ``<kind>_<N>.pth`` checkpoints (``epoch_3.pth``, ``iter_600.pth``),
a ``last_checkpoint`` pointer naming the newest one, and the config dump ``<name>.py``. Writes are atomic
(:mod:`zoo.core.fileio`), but a kill can still leave a pointer to a file that is missing or incomplete (an older
xzoo, a copied folder): every function here takes the newest *complete* checkpoint and says when it fell back.

Standard library only.

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> find_resume_checkpoint(folder)
    (None, '')
"""
from __future__ import annotations

import glob
import os
import re
import zipfile

from registry.errors import CheckpointError, ConfigError

_STEP = re.compile(r'^(?P<kind>[A-Za-z]+)_(?P<step>\d+)\.pth$')


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a whole ``torch.save`` file: a readable zip holding ``data.pkl`` with intact CRCs.

    A truncated file has no zip directory; a torn or corrupted one fails the CRC check; a folder is not a
    checkpoint. Reads the whole file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if not any(n == 'data.pkl' or n.endswith('/data.pkl') for n in names):
                return False
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError):
        return False


def read_pointer(work_dir: str | os.PathLike) -> str | None:
    """The checkpoint named by ``work_dir/last_checkpoint`` (resolved next to it when moved), or ``None``."""
    work_dir = os.fspath(work_dir)
    try:
        with open(os.path.join(work_dir, 'last_checkpoint'), encoding='utf-8') as fh:
            named = fh.read(4096).strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not named:
        return None
    if not os.path.exists(named):  # written relative to another cwd, or the folder moved: look next to it
        beside = os.path.join(work_dir, os.path.basename(named))
        named = beside if os.path.exists(beside) else named
    return named


def step_of(path: str | os.PathLike) -> tuple[str, int] | None:
    """``('epoch', 3)`` for ``epoch_3.pth``; ``None`` for other names."""
    m = _STEP.match(os.path.basename(os.fspath(path)))
    return (m['kind'], int(m['step'])) if m else None


def check_work_dir(work_dir: str | os.PathLike) -> None:
    """Refuse a work dir where a checkpoint could not be written: a folder named like a checkpoint
    (``epoch_2.pth/``) or like the ``last_checkpoint`` pointer. Checked before training, not after an epoch.

    Example:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> os.mkdir(os.path.join(folder, 'epoch_2.pth'))
        >>> try:
        ...     check_work_dir(folder)
        ... except CheckpointError as exc:
        ...     print(str(exc).split(';')[0][-42:])
        epoch_2.pth' is a folder, not a checkpoint
    """
    work_dir = os.fspath(work_dir)
    if not os.path.isdir(work_dir):
        return
    for name in sorted(os.listdir(work_dir)):
        path = os.path.join(work_dir, name)
        if (step_of(name) is not None or name == 'last_checkpoint') and os.path.isdir(path):
            raise CheckpointError(f'{path!r} is a folder, not a checkpoint; training would fail when it writes that '
                                  'file. Move the folder away or choose another --work-dir.')


def find_resume_checkpoint(work_dir: str | os.PathLike) -> tuple[str | None, str]:
    """The checkpoint ``--resume auto`` continues from, and a note when it is not the one ``last_checkpoint`` names.

    ``last_checkpoint`` says which run owns the folder and how far it got. Its file is used when complete;
    otherwise the newest complete ``<kind>_<N>.pth`` of the same kind with a smaller ``N`` (a file of a later
    step may be left over from an older, longer run in the same folder, so it is never preferred). Without a
    pointer, the newest complete ``<kind>_<N>.pth`` in ``work_dir``. ``(None, note)`` means: start from scratch.
    """
    work_dir = os.fspath(work_dir)
    pointer = read_pointer(work_dir)
    if pointer is not None and is_complete_checkpoint(pointer):
        return pointer, ''
    folders = {os.path.abspath(work_dir)}
    if pointer is not None:
        folders.add(os.path.dirname(os.path.abspath(pointer)))
    found = [(p, s) for f in folders for p in glob.glob(os.path.join(glob.escape(f), '*.pth'))
             if (s := step_of(p)) is not None]
    limit = step_of(pointer) if pointer is not None else None
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


def latest_checkpoint(work_dir: str | os.PathLike) -> str:
    """The newest complete checkpoint of a training work dir (what to test or export); an error if none."""
    work_dir = os.fspath(work_dir)
    path, _ = find_resume_checkpoint(work_dir)
    if path is None:
        found = sorted(glob.glob(os.path.join(glob.escape(work_dir), '*.safetensors')))
        if len(found) == 1:
            return found[0]
        raise CheckpointError(f'{work_dir!r} holds no checkpoint (no last_checkpoint, no complete '
                              '<epoch|iter>_N.pth). Pass a training work_dir or a checkpoint file.')
    return path


def config_dump(work_dir: str | os.PathLike) -> str:
    """The config a training work dir was run with (the single ``*.py`` mmengine dumps into it)."""
    work_dir = os.fspath(work_dir)
    dumps = sorted(glob.glob(os.path.join(glob.escape(work_dir), '*.py')))
    if len(dumps) != 1:
        what = 'no config dump (*.py)' if not dumps else f'{len(dumps)} configs ({", ".join(dumps)})'
        raise ConfigError(f'{work_dir!r} holds {what}; pass the training config with --config.')
    return dumps[0]


def find_checkpoint(source: str | os.PathLike, config: str | None = None) -> tuple[str, str]:
    """``(config, checkpoint)`` from a training work dir (newest complete checkpoint and its config dump) or a
    checkpoint file (the config is ``config`` or the single ``.py`` next to it)."""
    source = os.path.expanduser(os.fspath(source))
    if not os.path.exists(source):
        raise CheckpointError(f'{source!r} does not exist. Pass a training work_dir or a checkpoint file.')
    if os.path.isdir(source):
        work_dir, ckpt = source, latest_checkpoint(source)
    else:
        work_dir, ckpt = os.path.dirname(os.path.abspath(source)), source
    return (config if config is not None else config_dump(work_dir)), ckpt
