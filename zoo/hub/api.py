"""``zoo.load`` and ``zoo.download``: an explainable classifier in one line, from the zoo, the Hub or a folder.

Names: a zoo entry (``'lico-resnet50-cub'``, see ``zoo.list_models()``: the shipped index, registered lab
indexes and the local zoo of models trained here), ``'hf-hub:ORG/NAME[@REVISION]'`` or ``'local-dir:PATH'``. A
bare path or repo id is refused with the prefix to use, so a typo never silently loads something else. Loading
reads JSON and safetensors only: nothing is unpickled or executed.

Every source ends in the same place: :func:`zoo.models.serialization.load_model` (through
``ZooModel.from_pretrained``), which treats the files as untrusted. This module never imports the export path
(``zoo.hub.export``) nor the training tools.

Example:
    >>> import zoo
    >>> model = zoo.load('baseline-resnet50-cub', pretrained=False)   # random weights, offline
    >>> model.training, len(model.class_names), model.preprocessing.input_size
    (False, 200, (3, 448, 448))
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from registry.errors import CheckpointError, ConfigError
from zoo.core.limits import CONFIG_NAME, WEIGHTS_NAME
from zoo.models.contract import ZooModel
from zoo.models.weights import pick_weights_file, verify_sha256

from .index import get_entry, has_entry, local_zoo_dir

_REPO_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$')


@dataclass(frozen=True)
class ModelSource:
    """Where a name points: ``kind`` is ``'zoo'``, ``'hf-hub'`` or ``'local-dir'``."""

    kind: str
    target: str
    revision: str | None = None

    @property
    def label(self) -> str:
        if self.kind == 'zoo':
            return self.target
        return f'{self.kind}:{self.target}' + (f'@{self.revision}' if self.revision else '')


def parse_name(name: str) -> ModelSource:
    """Split a model name into its source; a bare path or repo id is an error naming the prefix to use.

    Example:
        >>> parse_name('hf-hub:xzoo/lico-resnet50-cub@v1')
        ModelSource(kind='hf-hub', target='xzoo/lico-resnet50-cub', revision='v1')
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f'A model name must be a non-empty string, got {name!r}.')
    name = name.strip()
    if name.startswith(('hf-hub:', 'hf_hub:')):
        repo, _, revision = name.split(':', 1)[1].partition('@')
        if not _REPO_ID.match(repo):
            raise ConfigError(f"{name!r}: '{repo}' is not a Hub repo id; write 'hf-hub:ORG/NAME' or "
                              "'hf-hub:ORG/NAME@REVISION'.")
        return ModelSource('hf-hub', repo, revision or None)
    if name.startswith('local-dir:'):
        path = os.path.expanduser(name[len('local-dir:'):])
        if not path:
            raise ConfigError("'local-dir:' needs a folder: 'local-dir:PATH' (holding config.json and "
                              'model.safetensors).')
        return ModelSource('local-dir', path)
    if has_entry(name):
        return ModelSource('zoo', name)
    if os.path.exists(os.path.expanduser(name)) or name.startswith(('.', '/', '~')) or name.count('/') > 1:
        raise ConfigError(f"{name!r} is not a zoo model name. To load a folder, write 'local-dir:{name}'.")
    if _REPO_ID.match(name):
        raise ConfigError(f"{name!r} is not a zoo model name. To load a Hugging Face Hub repo, write "
                          f"'hf-hub:{name}' (or 'local-dir:{name}' for a folder).")
    get_entry(name)  # raises the unknown-name error with close matches
    raise AssertionError('unreachable')


@dataclass(frozen=True)
class ResolvedFiles:
    """The files a source resolves to: the folder, its config.json, the weights (or ``None``) and their sha256."""

    folder: str
    config: str
    weights: str | None
    sha256: str | None
    confined: bool


def _resolve(src: ModelSource, pretrained: bool, cache_dir: str | None, local_files_only: bool | None,
             trust_pickle: bool, prefer: str = 'local') -> ResolvedFiles:
    """The files of a source, fetched into the huggingface_hub cache when needed (nothing is read yet)."""
    from .remote import hub_file

    if src.kind == 'local-dir':
        if not os.path.isdir(src.target):
            raise CheckpointError(f'{src.label}: {src.target!r} is not a folder (expected one holding '
                                  f'{CONFIG_NAME} and {WEIGHTS_NAME}).')
        config = os.path.join(src.target, CONFIG_NAME)
        weights = pick_weights_file(src.target, trust_pickle) if pretrained else None
        return ResolvedFiles(src.target, config, weights, None, True)
    if src.kind == 'hf-hub':
        fetch = dict(revision=src.revision, cache_dir=cache_dir, local_files_only=local_files_only, name=src.label)
        config = hub_file(src.target, CONFIG_NAME, **fetch)
        weights = _hub_weights(src.target, fetch, trust_pickle) if pretrained else None
        return ResolvedFiles(os.path.dirname(config), config, weights, None, False)
    entry = get_entry(src.target, prefer=prefer)
    if entry.local:  # trained on this machine: the export folder in the local zoo, sha256 from its entry
        folder = os.path.dirname(entry.config)
        weights = pick_weights_file(folder) if pretrained else None
        return ResolvedFiles(folder, entry.config, weights, entry.weights_sha256 if pretrained else None, True)
    fetch = dict(revision=entry.revision, cache_dir=cache_dir, local_files_only=local_files_only, name=entry.name)
    if pretrained and not entry.published:
        repo = f" (planned Hub repo '{entry.hf_hub}')" if entry.hf_hub else ''
        raise CheckpointError(f"'{entry.name}' has no published weights{repo} and the local zoo "
                              f'({local_zoo_dir()}) has no model of that name, so there is nothing to load or to '
                              f"prefetch with zoo.download('{entry.name}') yet. {_how_to_make(entry)}")
    config = entry.config if entry.config is not None else hub_file(entry.hf_hub, CONFIG_NAME, **fetch)
    weights = hub_file(entry.hf_hub, WEIGHTS_NAME, **fetch) if pretrained else None
    return ResolvedFiles(os.path.dirname(config), config, weights, entry.weights_sha256 if pretrained else None,
                         False)


def _how_to_make(entry: Any) -> str:
    """What makes a loadable local copy of an unpublished entry (its note, then the command)."""
    note = entry.note.strip()
    note = note + ('' if not note or note.endswith('.') else '.')
    if '--register' in note:
        make = ''
    elif entry.recipe:
        make = (f'{"Or train" if note else "Train"} it and register it in the local zoo: python tools/train.py '
                f'{entry.recipe} --register {entry.name}.')
    else:
        make = 'Train it and register it in the local zoo with tools/train.py CONFIG --register NAME.'
    random = '' if 'pretrained=False' in note else 'Pass pretrained=False for random weights.'
    return ' '.join(filter(None, [note, make, random]))


def _hub_weights(repo_id: str, fetch: dict[str, Any], trust_pickle: bool) -> str:
    from huggingface_hub.errors import RemoteEntryNotFoundError

    from .remote import hub_file

    try:
        return hub_file(repo_id, WEIGHTS_NAME, **fetch)
    except CheckpointError as exc:
        if not isinstance(exc.__cause__, RemoteEntryNotFoundError):
            raise
        if not trust_pickle:
            raise CheckpointError(f"Hub repo '{repo_id}' has no {WEIGHTS_NAME}. xzoo loads safetensors only; a "
                                  'pickle (pytorch_model.bin) can run code when loaded and is refused unless you '
                                  'pass trust_pickle=True for a repo you trust.') from exc
    return hub_file(repo_id, 'pytorch_model.bin', **fetch)


def load(name: str, pretrained: bool = True, device: str = 'cpu', cache_dir: str | None = None,
         local_files_only: bool | None = None, trust_pickle: bool = False, prefer: str = 'local') -> Any:
    """A zoo model (the model contract: ``predict``, ``explain``, ``preprocessing`` …) in eval mode.

    Args:
        name: a zoo name (``zoo.list_models()``), ``'hf-hub:ORG/NAME[@REVISION]'`` or ``'local-dir:PATH'``.
        pretrained: load the published/exported weights; ``False`` builds the architecture with random
            weights (a zoo entry then needs no network at all).
        device: where the model goes. cache_dir: huggingface_hub cache (default ``HF_HUB_CACHE``).
        local_files_only: never download (default: ``HF_HUB_OFFLINE``); a file not in the cache is an error
            naming the repo and ``zoo.download``.
        trust_pickle: allow a ``.bin``/``.pth`` pickle when no safetensors file exists (it can run code).
        prefer: for a zoo name that is both in the local zoo (trained here: ``make demo``, ``tools/train.py
            --register``) and in an index: ``'local'`` (default) loads the local model, ``'published'`` the index
            entry's published weights when it has them.

    Example::

        model = load('lico-efficientnetlite0-clutteredfmnist')   # after `make demo`: the model it trained
        model = load('hf-hub:xzoo/lico-resnet50-cub', device='cuda')
        maps = model.explain(['bird.jpg'])
    """
    src = parse_name(name)
    files = _resolve(src, pretrained, cache_dir, local_files_only, trust_pickle, prefer)
    return ZooModel.from_pretrained(files.folder, weights=files.weights, pretrained=files.weights is not None,
                                    device=device, source=src.label, sha256=files.sha256, trust_pickle=trust_pickle,
                                    config_path=files.config, confined=files.confined)


def download(name: str, cache_dir: str | None = None) -> str:
    """Fetch everything a later offline ``zoo.load(name)`` needs into the huggingface_hub cache; return the
    folder holding the weights. sha256 is checked for zoo entries.

    Example::

        download('hf-hub:xzoo/lico-resnet50-cub')
        '/home/me/.cache/huggingface/hub/models--xzoo--lico-resnet50-cub/snapshots/0123abcd...'
    """
    src = parse_name(name)
    if src.kind == 'local-dir':
        _resolve(src, True, cache_dir, True, False)  # checks the folder; nothing to fetch
        return src.target
    files = _resolve(src, True, cache_dir, False, False)
    assert files.weights is not None
    verify_sha256(files.weights, files.sha256, src.label)
    return os.path.dirname(files.weights)
