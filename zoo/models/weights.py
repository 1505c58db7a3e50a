"""Weights files, read as untrusted: safetensors (a pickle only when the caller trusts it), headers checked before
anything is loaded, and a state dict that must fit the model exactly.

- :func:`pick_weights_file`: ``model.safetensors`` of an export folder; a symlink out of the folder is refused;
- :func:`safetensors_header`: names, shapes and dtypes without reading the tensors (bounded);
- :func:`read_state_dict` / :func:`load_model_weights`: a pickle (``.pth``) only with ``trust_pickle=True``;
- :func:`check_state_dict_fits`: missing/unexpected keys, shapes, duplicate ``module.`` copies, non-float dtypes
  where the model holds floats, non-finite values — each a one-line :class:`~registry.errors.CheckpointError`.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(2, 1)
    >>> state = {'weight': torch.zeros(1, 2, dtype=torch.int8), 'bias': torch.zeros(1)}
    >>> try:
    ...     check_state_dict_fits(model, state, 'w.safetensors')
    ... except Exception as exc:
    ...     print(str(exc)[:60])
    Checkpoint 'w.safetensors': weight is stored as torch.int8 b
"""
from __future__ import annotations

import json
import os
import struct
import zipfile
from collections.abc import Mapping
from typing import Any

import torch

from registry.errors import CheckpointError, SecurityError
from zoo.core.fileio import sha256_file
from zoo.core.limits import WEIGHTS_NAME

PICKLE_SUFFIXES = ('.bin', '.pth', '.pt', '.ckpt', '.pkl', '.pickle')
PICKLE_NAMES = ('pytorch_model.bin', 'model.pth', 'model.pt')
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_MAX_HEADER = 100 << 20


def is_pickle(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(PICKLE_SUFFIXES)


def verify_sha256(path: str | os.PathLike, expected: str | None, source: str) -> None:
    """Raise :class:`CheckpointError` naming the file when its sha256 is not ``expected``."""
    if not expected:
        return
    actual = sha256_file(path)
    if actual != expected.lower():
        raise CheckpointError(f'{os.fspath(path)!r} ({source}) has sha256 {actual}, but {expected} was expected: '
                              'the file is corrupt, truncated or not the published one. Delete it from the cache '
                              'and download it again (zoo.download(name)).')


def _inside(folder: str, path: str) -> bool:
    root = os.path.realpath(folder)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def pick_weights_file(folder: str, trust_pickle: bool = False, confined: bool = True) -> str:
    """The weights file of an exported folder: ``model.safetensors``; a pickle only with ``trust_pickle=True``.

    ``confined``: the file must resolve inside ``folder`` (a symlink pointing elsewhere is refused).
    """
    preferred = os.path.join(folder, WEIGHTS_NAME)
    names = sorted(os.listdir(folder))
    tensors = [n for n in names if n.endswith('.safetensors')]
    pickles = [n for n in names if is_pickle(n)]
    if os.path.lexists(preferred):
        path = preferred
    elif len(tensors) == 1:
        path = os.path.join(folder, tensors[0])
    elif pickles and trust_pickle:
        ordered = [n for n in PICKLE_NAMES if n in pickles] + [n for n in pickles if n not in PICKLE_NAMES]
        path = os.path.join(folder, ordered[0])
    elif pickles:
        raise CheckpointError(f'{folder!r} has no {WEIGHTS_NAME}, only the pickle {pickles[0]!r}; a pickle can run '
                              'code when loaded, so it is refused. Convert it to safetensors, or pass '
                              'trust_pickle=True if you made this file yourself.')
    else:
        raise CheckpointError(f'{folder!r} holds no weights ({WEIGHTS_NAME} expected' +
                              (f'; found {len(tensors)} .safetensors files: {", ".join(tensors)})' if tensors
                               else ')') + '. Export a model with tools/push_to_hub.py WORK_DIR --dry-run OUT_DIR.')
    if confined and not _inside(folder, path):
        raise SecurityError(f'{path!r} is a link to {os.path.realpath(path)!r}, outside the model folder; an export '
                            'never reads files outside its folder. Refused.')
    if not os.path.isfile(path):
        raise CheckpointError(f'{path!r} is not a file.')
    return path


def safetensors_header(path: str | os.PathLike) -> dict[str, Any]:
    """``{name: {'dtype', 'shape'}}`` from a safetensors file's header (nothing else is read)."""
    path = os.fspath(path)
    try:
        with open(path, 'rb') as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise ValueError('shorter than its 8-byte header length')
            (length,) = struct.unpack('<Q', raw)
            if length > _MAX_HEADER or length > os.path.getsize(path):
                raise ValueError(f'header length {length} is beyond the file')
            header = json.loads(fh.read(length))
        if not isinstance(header, dict):
            raise ValueError('header is not an object')
    except (OSError, ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise CheckpointError(f'{path!r} is not a valid safetensors file ({str(exc)[:120]}); it may be truncated or '
                              'corrupt: download or export it again.') from None
    header.pop('__metadata__', None)
    _check_offsets(header, os.path.getsize(path) - 8 - length, path)
    return header


_ITEMSIZE = {'F64': 8, 'F32': 4, 'F16': 2, 'BF16': 2, 'I64': 8, 'I32': 4, 'I16': 2, 'I8': 1, 'U64': 8, 'U32': 4,
             'U16': 2, 'U8': 1, 'BOOL': 1, 'F8_E4M3': 1, 'F8_E5M2': 1}


def _check_offsets(header: dict[str, Any], data_size: int, path: str) -> None:
    """Every tensor's bytes lie inside the file and match its shape and dtype: a header cannot claim tensors larger
    than the file (a model built to fit the header is then never larger than the weights file)."""
    for name, entry in header.items():
        shape = entry.get('shape') if isinstance(entry, dict) else None
        offsets = entry.get('data_offsets') if isinstance(entry, dict) else None
        dtype = entry.get('dtype') if isinstance(entry, dict) else None
        size = _ITEMSIZE.get(dtype) if isinstance(dtype, str) else None
        ok = (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
              and isinstance(offsets, list) and len(offsets) == 2
              and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets) and size is not None)
        if ok:
            numel = 1
            for d in shape:
                numel *= d
            ok = 0 <= offsets[0] <= offsets[1] <= data_size and offsets[1] - offsets[0] == numel * size
        if not ok:
            raise CheckpointError(f'{path!r} is not a valid safetensors file (the header entry of '
                                  f'{str(name)[:80]!r}: dtype, shape or byte offsets do not fit the file); it may be '
                                  'truncated or corrupt (or crafted): download or export it again.')


def load_trusted_local(filename: str, map_location: Any = None) -> Any:
    """``torch.load`` of a local checkpoint the user wrote (pickle allowed: only for the user's own files)."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise CheckpointError(f'Checkpoint {filename!r} does not exist. Check the path (a work_dir holds '
                              'iter_N.pth / epoch_N.pth and a last_checkpoint file).')
    try:
        return torch.load(filename, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - truncated / corrupt / not a torch file
        if not zipfile.is_zipfile(filename):  # torch.save writes a zip whose directory is at the very end
            why = 'it is truncated (a killed or unfinished write) or not a torch checkpoint at all'
        else:
            why = f'{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ""}; it may be corrupt'
        raise CheckpointError(f'Cannot read checkpoint {filename!r}: {why}. Use another one (--resume auto picks '
                              'the newest complete checkpoint of a work_dir).') from exc


def read_state_dict(path: str | os.PathLike, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor],
                                                                                 dict[str, Any]]:
    """``(state_dict, meta)`` from a ``.safetensors`` file or, with ``trust_pickle=True``, a torch pickle.

    A pickle (``.pth``/``.bin``/``.ckpt``) can execute code when loaded, so it is refused unless the caller trusts
    it explicitly (a checkpoint this user trained is such a file). mmengine checkpoints nest the weights under
    ``state_dict`` and the dataset's class names under ``meta.dataset_meta``.
    """
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise CheckpointError(f'Checkpoint {path!r} does not exist.')
    if path.endswith('.safetensors'):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        safetensors_header(path)  # bounded header check first
        try:
            return load_file(path), {}
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f'{path!r} is not a valid safetensors file ({str(exc)[:120]}); it may be '
                                  'truncated or corrupt: download or export it again.') from exc
    if not trust_pickle:
        raise CheckpointError(f'{path!r} is a pickle file, which can run code when loaded; refused. Use a '
                              '.safetensors file, or pass trust_pickle=True if you wrote this file yourself.')
    ckpt = load_trusted_local(path, map_location='cpu')
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        return ckpt['state_dict'], dict(ckpt.get('meta') or {}) if isinstance(ckpt.get('meta'), dict) else {}
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt, {}
    raise CheckpointError(f'{path!r} holds no state_dict (got {type(ckpt).__name__}); it is not a model '
                          'checkpoint.')


def check_state_dict_fits(model: torch.nn.Module, state: Mapping[str, Any], path: str,
                          ignore_prefixes: tuple[str, ...] = (), check_values: bool = True) -> dict[str, Any]:
    """``state`` without ``module.`` prefixes and ``ignore_prefixes`` keys, if it fits ``model`` exactly.

    Missing or unexpected keys, shape mismatches, a key present both with and without ``module.``, tensors of a
    non-float dtype where the model has floats (int8, bool, float8 …) and (``check_values``) non-finite values raise
    :class:`CheckpointError` naming ``path`` and the first offending key.
    """
    plain = {k[len('module.'):] if k.startswith('module.') else k for k in state}
    if len(plain) != len(state):
        both = next(k for k in state if k.startswith('module.') and k[len('module.'):] in state)
        raise CheckpointError(f'Checkpoint {path!r} holds {both!r} and {both[len("module."):]!r}: two copies of one '
                              'tensor; refused (which one is meant is unknowable).')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    own = {k: v for k, v in model.state_dict().items() if not ignore_prefixes or not k.startswith(ignore_prefixes)}
    state = {k: v for k, v in state.items() if not ignore_prefixes or not k.startswith(ignore_prefixes)}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f'{k}: checkpoint {list(state[k].shape)} vs model {list(v.shape)}' for k, v in own.items()
              if k in state and hasattr(state[k], 'shape') and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f'{len(shapes)} shape mismatch(es), first {shapes[0]}')
        if missing:
            parts.append(f'{len(missing)} missing key(s), e.g. {missing[0]}')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}')
        raise CheckpointError(f'Checkpoint {path!r} does not fit this model: {"; ".join(parts)}. Was it trained '
                              'with a different config (backbone, number of classes)?')
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f'Checkpoint {path!r}: {key} is a {type(value).__name__}, not a tensor.')
        mine = own[key]
        if mine.is_floating_point() and value.dtype not in _FLOAT_DTYPES:
            raise CheckpointError(f'Checkpoint {path!r}: {key} is stored as {value.dtype} but the model holds '
                                  f'{mine.dtype}; casting would silently change the weights. Refused.')
        if check_values and value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f'Checkpoint {path!r}: {key} holds NaN or Inf values; the weights are '
                                  'corrupt (a diverged run?). Refused.')
    return state


def load_model_weights(model: torch.nn.Module, path: str | os.PathLike, trust_pickle: bool = False,
                       ignore_prefixes: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Load weights into ``model`` strictly (except ``ignore_prefixes``, default the model's training-only
    parts); return the checkpoint meta. Problems raise :class:`CheckpointError` naming the file."""
    if ignore_prefixes is None:
        ignore_prefixes = getattr(model, 'training_only_prefixes', lambda: ())()
    state, meta = read_state_dict(path, trust_pickle=trust_pickle)
    state = check_state_dict_fits(model, state, os.fspath(path), ignore_prefixes)
    model.load_state_dict(state, strict=False)
    return meta
