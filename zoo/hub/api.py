"""``zoo.load`` and ``zoo.download``: an explainable classifier in one line, from the zoo, the Hub or a folder.

Names: a zoo entry (``'lico-resnet50-cub'``, see ``zoo.list_models()``), ``'hf-hub:ORG/NAME[@REVISION]'`` or
``'local-dir:PATH'``. A bare path or repo id is refused with the prefix to use, so a typo never silently loads
something else. Loading reads JSON and safetensors only: nothing is unpickled or executed.

Example:
    >>> import zoo
    >>> model = zoo.load('baseline-resnet50-cub', pretrained=False)   # random weights, offline
    >>> model.training, len(model.class_names), model.preprocessing['input_size']
    (False, 200, [3, 448, 448])
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from typing import Any

from .index import CONFIG_NAME, WEIGHTS_NAME, get_entry, has_entry

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
    from registry.errors import ConfigError

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


def build_model(config: dict[str, Any], source: str) -> Any:
    """The architecture of a validated ``config.json`` with random weights (eval mode)."""
    from mmengine.registry import DefaultScope

    from registry import MODELS, SCOPE
    from registry.errors import ConfigError, XZooError

    cfg = {'type': config['architecture'], **copy.deepcopy(config['model_args'])}
    try:
        with DefaultScope.overwrite_default_scope(SCOPE):
            model = MODELS.build(cfg)
    except XZooError as exc:
        raise type(exc)(f'{source}: {exc}') from exc
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f'{source}: cannot build {config["architecture"]!r}: {type(exc).__name__}: {exc}') from exc
    return model.eval()


def _resolve(src: ModelSource, pretrained: bool, cache_dir: str | None, local_files_only: bool | None,
             trust_pickle: bool) -> tuple[dict[str, Any], str | None, str | None]:
    """``(config, weights path or None, expected sha256 or None)`` for a source, fetching what is needed."""
    from registry.errors import CheckpointError

    from .remote import hub_file
    from .schema import read_config
    from .weights import pick_weights_file

    if src.kind == 'local-dir':
        if not os.path.isdir(src.target):
            raise CheckpointError(f'{src.label}: {src.target!r} is not a folder (expected one holding '
                                  f'{CONFIG_NAME} and {WEIGHTS_NAME}).')
        config = read_config(os.path.join(src.target, CONFIG_NAME))
        return config, pick_weights_file(src.target, trust_pickle) if pretrained else None, None
    if src.kind == 'hf-hub':
        fetch = dict(revision=src.revision, cache_dir=cache_dir, local_files_only=local_files_only, name=src.label)
        config = read_config(hub_file(src.target, CONFIG_NAME, **fetch))
        weights = _hub_weights(src.target, fetch, trust_pickle) if pretrained else None
        return config, weights, None
    entry = get_entry(src.target)
    fetch = dict(revision=entry.revision, cache_dir=cache_dir, local_files_only=local_files_only, name=entry.name)
    if pretrained and not entry.published:
        advice = '' if 'pretrained=False' in entry.note else ' Pass pretrained=False for random weights.'
        repo = f" (planned Hub repo '{entry.hf_hub}')" if entry.hf_hub else ''
        raise CheckpointError(f"'{entry.name}' has no published weights{repo}, so there is nothing to load or to "
                              f"prefetch with zoo.download('{entry.name}') yet. "
                              f'{entry.note or "Its weights are not published yet."}{advice}')
    if entry.config is not None:
        config = read_config(entry.config)
    else:
        config = read_config(hub_file(entry.hf_hub, CONFIG_NAME, **fetch))
    weights = hub_file(entry.hf_hub, WEIGHTS_NAME, **fetch) if pretrained else None
    return config, weights, entry.weights_sha256 if pretrained else None


def _hub_weights(repo_id: str, fetch: dict[str, Any], trust_pickle: bool) -> str:
    from huggingface_hub.errors import RemoteEntryNotFoundError

    from registry.errors import CheckpointError

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
         local_files_only: bool | None = None, trust_pickle: bool = False) -> Any:
    """An explainable classifier, in eval mode, with its metadata attached (see :mod:`zoo.hub.attach`).

    Args:
        name: a zoo name (``zoo.list_models()``), ``'hf-hub:ORG/NAME[@REVISION]'`` or ``'local-dir:PATH'``.
        pretrained: load the published/exported weights; ``False`` builds the architecture with random
            weights (a zoo entry then needs no network at all).
        device: where the model goes. cache_dir: huggingface_hub cache (default ``HF_HUB_CACHE``).
        local_files_only: never download (default: ``HF_HUB_OFFLINE``); a file not in the cache is an error
            naming the repo and ``zoo.download``.
        trust_pickle: allow a ``.bin``/``.pth`` pickle when no safetensors file exists (it can run code).

    Example:
        >>> model = load('hf-hub:xzoo/lico-resnet50-cub', device='cuda')   # doctest: +SKIP
        >>> maps = model.explain(load_images(model, ['bird.jpg']))          # doctest: +SKIP
    """
    from .attach import attach
    from .weights import load_weights

    src = parse_name(name)
    config, weights, sha256 = _resolve(src, pretrained, cache_dir, local_files_only, trust_pickle)
    model = build_model(config, f'{src.label} ({CONFIG_NAME})')
    files: dict[str, Any] = {}
    if weights is not None:
        load_weights(model, weights, sha256=sha256, trust_pickle=trust_pickle, source=src.label)
        files = {'weights': weights, 'sha256': sha256}
    attach(model, config, src.label, files)
    return model.to(device).eval()


def download(name: str, cache_dir: str | None = None) -> str:
    """Fetch everything a later offline ``zoo.load(name)`` needs into the huggingface_hub cache; return the
    folder holding the weights. sha256 is checked for zoo entries.

    Example:
        >>> download('hf-hub:xzoo/lico-resnet50-cub')      # doctest: +SKIP
        '/home/me/.cache/huggingface/hub/models--xzoo--lico-resnet50-cub/snapshots/0123abcd...'
    """
    from .weights import verify_sha256

    src = parse_name(name)
    if src.kind == 'local-dir':
        _resolve(src, True, cache_dir, True, False)  # checks the folder; nothing to fetch
        return src.target
    _, weights, sha256 = _resolve(src, True, cache_dir, False, False)
    assert weights is not None
    verify_sha256(weights, sha256, src.label)
    return os.path.dirname(weights)
