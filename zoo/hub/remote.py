"""Downloads through huggingface_hub's cache, with errors that say what is missing and what to do.

Offline (``HF_HUB_OFFLINE=1`` or ``local_files_only=True``) a file that is not cached fails at once with a
message naming the repo and ``zoo.download``.

Example::

    from zoo.hub.remote import hub_file
    hub_file('xzoo/lico-resnet50-cub', 'model.safetensors', name='lico-resnet50-cub')
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from registry.errors import CheckpointError


def _offline(local_files_only: bool | None) -> bool:
    from huggingface_hub import constants

    return bool(local_files_only) or bool(constants.HF_HUB_OFFLINE)


def _translate(exc: Exception, repo_id: str, what: str, revision: str | None, name: str,
               cache_dir: str | None, local_files_only: bool | None) -> Exception:
    """A huggingface_hub error as a one-line :class:`~registry.errors.CheckpointError` with advice."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = revision or 'main'
    where = f"{what} of Hub repo '{repo_id}' (revision {rev})"
    if isinstance(exc, LocalEntryNotFoundError):
        if local_files_only:
            reason = 'local_files_only=True'
        elif constants.HF_HUB_OFFLINE:
            reason = 'downloads are off (HF_HUB_OFFLINE=1)'
        else:
            reason = f'the Hub ({constants.ENDPOINT}) could not be reached'
        cache = cache_dir or constants.HF_HUB_CACHE
        hint = (f" (zoo.load('{name}', pretrained=False) needs only the config: random weights.)"
                if 'safetensors' in what else '')
        return CheckpointError(f'{where} is not in the local cache ({cache}) and {reason}. Run '
                               f"zoo.download('{name}') once while online; zoo.load then works offline.{hint}")
    if isinstance(exc, RepositoryNotFoundError):
        return CheckpointError(f"Hub repo '{repo_id}' does not exist, or it is private/gated and you are not logged "
                               'in (set HF_TOKEN or run `hf auth login`).')
    if isinstance(exc, RevisionNotFoundError):
        return CheckpointError(f"Hub repo '{repo_id}' has no revision '{rev}'. Use a branch, tag or commit sha of "
                               'that repo.')
    if isinstance(exc, RemoteEntryNotFoundError):
        return CheckpointError(f'{where} does not exist. Is it an xzoo export (config.json + model.safetensors)?')
    return CheckpointError(f'Could not download {where}: {type(exc).__name__}: {str(exc).splitlines()[0]}')


def _call(fn: Callable[..., str], repo_id: str, what: str, revision: str | None, name: str,
          cache_dir: str | None, local_files_only: bool | None, **kwargs: Any) -> str:
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return fn(repo_id=repo_id, revision=revision, cache_dir=cache_dir,
                  local_files_only=_offline(local_files_only), **kwargs)
    except (LocalEntryNotFoundError, HfHubHTTPError) as exc:
        raise _translate(exc, repo_id, what, revision, name, cache_dir, local_files_only) from exc


def hub_file(repo_id: str, filename: str, revision: str | None = None, cache_dir: str | None = None,
             local_files_only: bool | None = None, name: str | None = None) -> str:
    """Local path of ``filename`` from the Hub (cached by huggingface_hub; downloaded when allowed).

    ``name`` is what the user passed to ``zoo.load`` (error messages suggest ``zoo.download(name)``).
    """
    from huggingface_hub import hf_hub_download

    label = name or f'hf-hub:{repo_id}' + (f'@{revision}' if revision else '')
    return _call(hf_hub_download, repo_id, f"'{filename}'", revision, label, cache_dir, local_files_only,
                 filename=filename)

