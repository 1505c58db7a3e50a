"""Loading of mmengine's own training checkpoints under torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses the Python objects mmengine stores in its
checkpoints (message hub, history buffers), so resume fails. mmengine checkpoints in a work_dir are files the user
wrote, so the local-file scheme of mmengine's ``CheckpointLoader`` is re-registered with ``weights_only=False``.
Nothing downloaded (Hub, zoo) ever goes through this path: those use safetensors + JSON only.

Example:
    >>> from zoo.engine.checkpoint import register_trusted_local_loader
    >>> register_trusted_local_loader()
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

_done = False


def load_trusted_local(filename: str, map_location: Any = None) -> Any:
    """``torch.load`` of a local mmengine checkpoint the user wrote (pickle allowed)."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        from registry.errors import CheckpointError
        raise CheckpointError(f'Checkpoint {filename!r} does not exist. Check the path (a work_dir holds '
                              'iter_N.pth / epoch_N.pth and a last_checkpoint file).')
    try:
        return torch.load(filename, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - truncated / corrupt / not a torch file
        import zipfile

        from registry.errors import CheckpointError
        if not zipfile.is_zipfile(filename):  # torch.save writes a zip whose directory is at the very end
            why = 'it is truncated (a killed or unfinished write) or not a torch checkpoint at all'
        else:
            why = f'{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ""}; it may be corrupt'
        raise CheckpointError(f'Cannot read checkpoint {filename!r}: {why}. Use another one (--resume auto picks '
                              'the newest complete checkpoint of a work_dir).') from exc


def register_trusted_local_loader() -> None:
    """Make mmengine's local checkpoint loading work under torch >= 2.6 (idempotent)."""
    global _done
    if _done:
        return
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes='', loader=load_trusted_local, force=True)
    _done = True


def read_state_dict(path: str, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` from a ``.safetensors`` file or, with ``trust_pickle=True``, a torch pickle.

    A pickle (``.pth``/``.bin``/``.ckpt``) can execute code when loaded, so it is refused unless the caller trusts
    it explicitly (a checkpoint this user trained is such a file). mmengine checkpoints nest the weights under
    ``state_dict`` and the dataset's class names under ``meta.dataset_meta``.
    """
    from registry.errors import CheckpointError

    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise CheckpointError(f'Checkpoint {path!r} does not exist.')
    if path.endswith('.safetensors'):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(path), {}
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f'{path!r} is not a valid safetensors file ({exc}); it may be truncated or '
                                  'corrupt: download or export it again.') from exc
    if not trust_pickle:
        raise CheckpointError(f'{path!r} is a pickle file, which can run code when loaded; refused. Use a '
                              '.safetensors file, or pass trust_pickle=True if you wrote this file yourself.')
    try:
        ckpt = load_trusted_local(path, map_location='cpu')
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated / not a checkpoint
        raise CheckpointError(f'Cannot read checkpoint {path!r} ({type(exc).__name__}: {exc}); it may be '
                              'truncated or not a checkpoint.') from exc
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        return ckpt['state_dict'], dict(ckpt.get('meta') or {})
    if isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt, {}
    raise CheckpointError(f'{path!r} holds no state_dict (got {type(ckpt).__name__}).')


def load_model_weights(model: torch.nn.Module, path: str, trust_pickle: bool = False,
                       ignore_prefixes: tuple[str, ...] = ('alignment_heads.', 'text_branch.')) -> dict[str, Any]:
    """Load weights into ``model`` strictly (except ``ignore_prefixes``); return the checkpoint meta.

    Missing or unexpected keys and shape mismatches raise :class:`~registry.errors.CheckpointError` naming the
    file and the first offending keys.
    """
    state, meta = read_state_dict(path, trust_pickle=trust_pickle)
    state = check_state_dict_fits(model, state, path, ignore_prefixes)
    model.load_state_dict(state, strict=False)
    return meta


def check_state_dict_fits(model: torch.nn.Module, state: Mapping[str, Any], path: str,
                          ignore_prefixes: tuple[str, ...] = ('alignment_heads.', 'text_branch.')) -> dict[str, Any]:
    """``state`` without ``module.`` prefixes and ``ignore_prefixes`` keys, if it fits ``model`` exactly.

    Missing or unexpected keys and shape mismatches raise :class:`~registry.errors.CheckpointError` naming
    ``path`` and the first offending keys.
    """
    from registry.errors import CheckpointError

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
    return state
