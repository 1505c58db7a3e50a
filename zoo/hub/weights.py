"""Safe weight loading: safetensors only (pickles refused unless trusted), sha256 checked, strict key/shape match.

Example:
    >>> from zoo.hub.weights import is_pickle
    >>> is_pickle('pytorch_model.bin'), is_pickle('model.safetensors')
    (True, False)
"""
from __future__ import annotations

import os
from typing import Any

from .export import TRAINING_ONLY_PREFIXES, sha256_file
from .index import WEIGHTS_NAME

PICKLE_SUFFIXES = ('.bin', '.pth', '.pt', '.ckpt', '.pkl', '.pickle')
PICKLE_NAMES = ('pytorch_model.bin', 'model.pth', 'model.pt')


def is_pickle(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(PICKLE_SUFFIXES)


def verify_sha256(path: str | os.PathLike, expected: str | None, source: str) -> None:
    """Raise :class:`~registry.errors.CheckpointError` naming the file when its sha256 is not ``expected``."""
    if not expected:
        return
    actual = sha256_file(path)
    if actual != expected.lower():
        from registry.errors import CheckpointError

        raise CheckpointError(f'{os.fspath(path)!r} ({source}) has sha256 {actual}, but {expected} was expected: '
                              'the file is corrupt, truncated or not the published one. Delete it from the cache '
                              'and download it again (zoo.download(name)).')


def pick_weights_file(folder: str, trust_pickle: bool = False) -> str:
    """The weights file of an exported folder: ``model.safetensors``; a pickle only with ``trust_pickle=True``."""
    from registry.errors import CheckpointError

    preferred = os.path.join(folder, WEIGHTS_NAME)
    if os.path.isfile(preferred):
        return preferred
    names = sorted(os.listdir(folder))
    tensors = [n for n in names if n.endswith('.safetensors')]
    if len(tensors) == 1:
        return os.path.join(folder, tensors[0])
    pickles = [n for n in names if is_pickle(n)]
    if pickles and trust_pickle:
        ordered = [n for n in PICKLE_NAMES if n in pickles] + [n for n in pickles if n not in PICKLE_NAMES]
        return os.path.join(folder, ordered[0])
    if pickles:
        raise CheckpointError(f'{folder!r} has no {WEIGHTS_NAME}, only the pickle {pickles[0]!r}; a pickle can run '
                              'code when loaded, so it is refused. Convert it to safetensors, or pass '
                              'trust_pickle=True if you made this file yourself.')
    raise CheckpointError(f'{folder!r} holds no weights ({WEIGHTS_NAME} expected' +
                          (f'; found {len(tensors)} .safetensors files: {", ".join(tensors)})' if tensors else ')') +
                          '. Export a model with tools/push_to_hub.py WORK_DIR --dry-run OUT_DIR.')


def load_weights(model: Any, path: str | os.PathLike, sha256: str | None = None, trust_pickle: bool = False,
                 source: str = 'weights') -> dict[str, Any]:
    """Verify ``path`` (sha256 when known) and load it into ``model`` strictly; return the checkpoint meta.

    A pickle (``.bin``/``.pth``/...) is refused before it is opened unless ``trust_pickle=True``. Truncated or
    corrupt files, missing or unexpected tensors and shape mismatches raise
    :class:`~registry.errors.CheckpointError` naming the file.
    """
    from registry.errors import CheckpointError
    from zoo.engine.checkpoint import load_model_weights

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'Weights file {path!r} ({source}) does not exist.')
    if not path.endswith('.safetensors') and not trust_pickle:
        raise CheckpointError(f'{path!r} ({source}) is not a safetensors file; a pickle can run code when loaded, '
                              'so it is refused. Use a .safetensors file, or pass trust_pickle=True if you made '
                              'this file yourself.')
    verify_sha256(path, sha256, source)
    return load_model_weights(model, path, trust_pickle=trust_pickle, ignore_prefixes=TRAINING_ONLY_PREFIXES)
