"""The model index: which named models the zoo knows, where their config and weights live, how they score.

The index shipped with xzoo is ``zoo/hub/index.json``; a lab adds its own with :func:`register_index`. Nothing here
imports torch or mmengine, so listing is instant.

An index is a JSON object ``{"format_version": 1, "models": [ENTRY, ...]}``; an entry is::

    {"name": "lico-resnet50-cub",                    # unique; what zoo.load() takes
     "config": "configs/lico-resnet50-cub.json",     # xzoo config.json, relative to the index file (or null:
                                                     #   then the Hub repo's config.json is used)
     "hf_hub": "xzoo/lico-resnet50-cub",             # Hugging Face Hub repo of the weights
     "revision": null,                               # commit sha the weights are pinned to
     "sha256": {"model.safetensors": null},          # file -> sha256, verified on every load
     "status": "unpublished",                        # or "published" (needs hf_hub, revision and a sha256)
     "dataset": {...}, "metrics": [...], "paper": {...}, "license": "apache-2.0", ...}

Example:
    >>> from zoo.hub.index import list_models
    >>> list_models('*resnet50-cub')
    ['baseline-resnet50-cub', 'lico-resnet50-cub']
    >>> list_models(pretrained=True)     # nothing is published yet
    []
"""
from __future__ import annotations

import fnmatch
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.errors import ConfigError, SecurityError, UnknownTypeError, did_you_mean, shorten
from zoo.core.limits import WEIGHTS_NAME, read_json

INDEX_FORMAT_VERSION = 1
DEFAULT_INDEX = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'index.json')
_STATUSES = ('published', 'unpublished')
_SHA256 = re.compile(r'^[0-9a-f]{64}$')
_COMMIT = re.compile(r'^[0-9a-f]{40}$')
_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')
_REPO_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$')


@dataclass(frozen=True)
class ZooEntry:
    """One named model of an index (see the module docstring for the JSON keys)."""

    name: str
    index: str
    config: str | None = None
    hf_hub: str | None = None
    revision: str | None = None
    sha256: Mapping[str, str | None] = field(default_factory=dict)
    status: str = 'unpublished'
    description: str = ''
    note: str = ''
    recipe: str | None = None
    method: str | None = None
    dataset: Mapping[str, Any] = field(default_factory=dict)
    metrics: tuple[Mapping[str, Any], ...] = ()
    paper: Mapping[str, Any] | None = None
    license: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def published(self) -> bool:
        """Weights are on the Hub, pinned to a commit and with a known sha256."""
        return self.status == 'published'

    @property
    def weights_sha256(self) -> str | None:
        return self.sha256.get(WEIGHTS_NAME)

    @classmethod
    def from_json(cls, item: Mapping[str, Any], index: str) -> ZooEntry:
        """Validate one index entry; errors name the index file and the entry."""
        where = f'index {index!r}, entry {item.get("name", "?")!r}'
        name = item.get('name')
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f'{where}: "name" must be a string of letters, digits, ".", "-" or "_".')
        status = item.get('status', 'unpublished')
        if status not in _STATUSES:
            raise ConfigError(f'{where}: "status" must be one of {", ".join(_STATUSES)}, got {status!r}.')
        sha = dict(item.get('sha256') or {})
        for fname, digest in sha.items():
            if digest is not None and not (isinstance(digest, str) and _SHA256.match(digest)):
                raise ConfigError(f'{where}: sha256 of {fname!r} must be 64 lowercase hex digits or null.')
        revision = item.get('revision')
        if status == 'published':
            if not item.get('hf_hub') or not (isinstance(revision, str) and _COMMIT.match(revision)):
                raise ConfigError(f'{where}: a published entry needs "hf_hub" and "revision" (the 40-hex commit '
                                    'sha the weights are pinned to).')
            if not sha.get(WEIGHTS_NAME):
                raise ConfigError(f'{where}: a published entry needs the sha256 of {WEIGHTS_NAME!r}.')
        config = item.get('config')
        if config is None and not item.get('hf_hub'):
            raise ConfigError(f'{where}: needs a "config" (path of an xzoo config.json) or an "hf_hub" repo '
                                'holding one.')
        if config is not None:  # an index is untrusted: its configs lie in its own folder
            folder = os.path.dirname(os.path.abspath(index))
            path = os.path.normpath(os.path.join(folder, config)) if isinstance(config, str) else ''
            if not path or os.path.isabs(config) or os.path.commonpath([folder, os.path.realpath(path)]) != \
                    os.path.realpath(folder):
                raise SecurityError(f'{where}: "config" must be a path inside the index\'s folder, got '
                                    f'{shorten(repr(config))}; an index never names files outside its folder.')
            config = path
        hub = item.get('hf_hub')
        if hub is not None and not (isinstance(hub, str) and _REPO_ID.match(hub)):
            raise ConfigError(f'{where}: "hf_hub" must be a Hub repo id ORG/NAME, got {shorten(repr(hub))}.')
        return cls(name=name, index=index, config=config, hf_hub=item.get('hf_hub'), revision=revision,
                   sha256=sha, status=status, description=item.get('description', ''), note=item.get('note', ''),
                   recipe=item.get('recipe'), method=item.get('method'), dataset=dict(item.get('dataset') or {}),
                   metrics=tuple(item.get('metrics') or ()), paper=item.get('paper'), license=item.get('license'),
                   raw=dict(item))


_lock = threading.RLock()
_entries: dict[str, ZooEntry] = {}
_indexes: list[str] = []


def read_index(path: str | os.PathLike) -> list[ZooEntry]:
    """Parse and validate an index file (nothing is registered)."""
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.isdir(path):
        raise ConfigError(f'Model index {path!r} is a folder; pass the index JSON file (e.g. {path}/index.json).')
    data = read_json(path, f'Model index {path!r}')
    if not isinstance(data, dict) or not isinstance(data.get('models'), list):
        raise ConfigError(f'Model index {path!r} must be a JSON object with a "models" list (see docs/zoo.md).')
    version = data.get('format_version', INDEX_FORMAT_VERSION)
    if not isinstance(version, int) or version > INDEX_FORMAT_VERSION:
        raise ConfigError(f'Model index {path!r} has format_version {version!r}; this xzoo reads up to '
                            f'{INDEX_FORMAT_VERSION}. Upgrade xzoo.')
    entries = [ZooEntry.from_json(item, path) for item in data['models']]
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f'Model index {path!r} lists {dupes[0]!r} more than once.')
    return entries


def _ensure_default() -> None:
    with _lock:
        if not _indexes:
            for entry in read_index(DEFAULT_INDEX):
                _entries[entry.name] = entry
            _indexes.append(DEFAULT_INDEX)


def register_index(path: str | os.PathLike, override: bool = False) -> list[str]:
    """Add the models of a lab's own index file to the zoo; return their names.

    A name that is already known is an error naming both index files, unless ``override=True``.

    Example::

        import zoo
        zoo.register_index('my_lab/index.json')   # -> ['mylab-vit-small-cub']
    """
    entries = read_index(path)
    with _lock:
        _ensure_default()
        if not override:
            for entry in entries:
                old = _entries.get(entry.name)
                if old is not None and old.index != entry.index:
                    raise ConfigError(f'Model {entry.name!r} from {entry.index!r} is already in the zoo (from '
                                        f'{old.index!r}). Rename it, or pass override=True to replace it.')
        for entry in entries:
            _entries[entry.name] = entry
        if entries and entries[0].index not in _indexes:
            _indexes.append(entries[0].index)
    return [e.name for e in entries]


def registered_indexes() -> list[str]:
    """Paths of the index files in use (the shipped one first)."""
    _ensure_default()
    return list(_indexes)


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``'b2' < 'b10'`` (digits compared as numbers)."""
    return [(0, int(t), '') if t.isdigit() else (1, 0, t.lower()) for t in re.split(r'(\d+)', name) if t]


def list_models(pattern: str | Iterable[str] = '*', pretrained: bool = False) -> list[str]:
    """Names of the zoo's models matching ``pattern`` (fnmatch wildcards, case-insensitive), naturally sorted.

    Args:
        pattern: a pattern such as ``'lico-*'``, or several (a name matching any of them is listed).
        pretrained: only models whose weights are published (pinned Hub revision and sha256).

    Example:
        >>> list_models('baseline-*-clutteredfmnist')
        ['baseline-efficientnetlite0-clutteredfmnist']
        >>> 'lico-efficientnetlite0-clutteredfmnist' in list_models('*-clutteredfmnist')
        True
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    _ensure_default()
    with _lock:
        entries = list(_entries.values())
    out = [e.name for e in entries
           if any(fnmatch.fnmatchcase(e.name.lower(), p.lower()) for p in patterns)
           and (e.published or not pretrained)]
    return sorted(out, key=natural_key)


def get_entry(name: str) -> ZooEntry:
    """The index entry called ``name``; an unknown name is an error with close matches."""
    _ensure_default()
    with _lock:
        entry = _entries.get(name)
        known = list(_entries)
    if entry is None:
        raise UnknownTypeError(f'The zoo has no model {shorten(name)!r}.{did_you_mean(name, known)} Known: '
                               f'{", ".join(sorted(known, key=natural_key))}. List them with zoo.list_models(); '
                               "a Hub repo loads as 'hf-hub:ORG/NAME', a folder as 'local-dir:PATH'.")
    return entry


def has_entry(name: str) -> bool:
    _ensure_default()
    with _lock:
        return name in _entries


def model_table(pattern: str | Iterable[str] = '*', pretrained: bool = False) -> list[dict[str, str]]:
    """Rows for a table of the matching models: name, dataset, method, weights status, top-1, Hub repo."""
    rows = []
    for name in list_models(pattern, pretrained=pretrained):
        e = get_entry(name)
        top1 = next((m.get('value') for m in e.metrics if m.get('key') == 'accuracy/top1'), None)
        rows.append({'name': e.name, 'dataset': str(e.dataset.get('name', '')), 'method': e.method or '',
                     'weights': 'published' if e.published else 'not published',
                     'top1': '' if top1 is None else f'{top1:.2f}',
                     'hub': (e.hf_hub or '') + ('' if e.published or not e.hf_hub else ' (planned)')})
    return rows
