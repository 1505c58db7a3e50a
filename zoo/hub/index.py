"""The model index: which named models the zoo knows, where their config and weights live, how they score.

The index shipped with xzoo is ``zoo/hub/index.json``; a lab adds its own with :func:`register_index`. Models
trained on this machine live in the **local zoo** (:func:`local_zoo_dir`: ``$XZOO_CACHE``, default
``~/.cache/xzoo``): one folder per model, ``models/<name>/``, holding the export and a ``zoo_entry.json`` (an entry
of the format below with ``"status": "local"`` and a ``provenance`` block), written by ``make demo`` and
``tools/train.py --register NAME`` (``zoo.hub.local_zoo``). A local entry wins over an index entry of the same
name unless the caller prefers published weights (``prefer='published'``). Nothing here imports torch or mmengine,
so listing is instant.

An index is a JSON object ``{"format_version": 1, "models": [ENTRY, ...]}``; an entry is::

    {"name": "lico-resnet50-cub",                    # unique; what zoo.load() takes
     "config": "configs/lico-resnet50-cub.json",     # xzoo config.json, relative to the index file (or null:
                                                     #   then the Hub repo's config.json is used)
     "hf_hub": "xzoo/lico-resnet50-cub",             # Hugging Face Hub repo of the weights
     "revision": null,                               # commit sha the weights are pinned to
     "sha256": {"model.safetensors": null},          # file -> sha256, verified on every load
     "status": "unpublished",                        # or "published" (needs hf_hub, revision and a sha256),
                                                     #   or "local" (the local zoo; needs config and a sha256)
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
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.errors import ConfigError, SecurityError, UnknownTypeError, XZooError, did_you_mean, shorten
from zoo.core.limits import WEIGHTS_NAME, read_json

INDEX_FORMAT_VERSION = 1
DEFAULT_INDEX = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'index.json')
LOCAL_ZOO_ENV = 'XZOO_CACHE'
LOCAL_ENTRY = 'zoo_entry.json'
_STATUSES = ('published', 'unpublished', 'local')
_PREFER = ('local', 'published')
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
    def local(self) -> bool:
        """The entry describes a model of the local zoo (trained on this machine)."""
        return self.status == 'local'

    @property
    def weights_sha256(self) -> str | None:
        return self.sha256.get(WEIGHTS_NAME)

    @property
    def provenance(self) -> dict[str, Any]:
        """How a local model was made: config, seed, commit, date, checkpoint, work dir (empty for others)."""
        return dict(self.raw.get('provenance') or {})

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
        if status == 'local' and not (item.get('config') and sha.get(WEIGHTS_NAME)):
            raise ConfigError(f'{where}: a local entry needs "config" and the sha256 of {WEIGHTS_NAME!r} (register '
                              'the model again with tools/train.py --register NAME).')
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
    local = next((e.name for e in entries if e.local), None)
    if local is not None:
        raise ConfigError(f'Model index {path!r}: entry {local!r} has "status": "local", which only the local zoo\'s '
                          f'{LOCAL_ENTRY} files have; use "published" or "unpublished".')
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


def local_zoo_dir() -> str:
    """The local zoo: ``$XZOO_CACHE``, else ``$XDG_CACHE_HOME/xzoo``, else ``~/.cache/xzoo``.

    Example:
        >>> os.path.isabs(local_zoo_dir())
        True
    """
    root = os.environ.get(LOCAL_ZOO_ENV)
    if not root:
        root = os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache'), 'xzoo')
    return os.path.abspath(os.path.expanduser(root))


def local_model_dir(name: str) -> str:
    """The folder of the local zoo's model ``name`` (whether it exists or not)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f'A zoo name must be letters, digits, ".", "-" or "_" (starting with a letter or digit), '
                          f'got {shorten(repr(name))}.')
    return os.path.join(local_zoo_dir(), 'models', name)


_local_cache: dict[str, tuple[float, ZooEntry | None]] = {}


def local_entries() -> dict[str, ZooEntry]:
    """``{name: entry}`` of the local zoo, read from ``models/*/zoo_entry.json`` (re-read when a file changes).

    A folder whose entry is unreadable or invalid is skipped with a warning naming it.
    """
    models = os.path.join(local_zoo_dir(), 'models')
    try:
        names = sorted(n for n in os.listdir(models) if _NAME.match(n))
    except OSError:
        return {}
    found: dict[str, ZooEntry] = {}
    for name in names:
        path = os.path.join(models, name, LOCAL_ENTRY)
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            continue  # not a registered model (yet)
        with _lock:
            cached = _local_cache.get(path)
        if cached is None or cached[0] != mtime:
            try:
                entry = ZooEntry.from_json(read_json(path, f'Local zoo entry {path!r}'), path)
                if not entry.local or entry.name != name:
                    raise ConfigError(f'{path!r} must describe the local model {name!r} ("status": "local").')
            except XZooError as exc:
                warnings.warn(f'Skipping a local zoo model: {exc}', stacklevel=2)
                entry = None
            with _lock:
                _local_cache[path] = cached = (mtime, entry)
        if cached[1] is not None:
            found[name] = cached[1]
    return found


def list_models(pattern: str | Iterable[str] = '*', pretrained: bool = False, local: bool = True) -> list[str]:
    """Names of the zoo's models matching ``pattern`` (fnmatch wildcards, case-insensitive), naturally sorted.

    Args:
        pattern: a pattern such as ``'lico-*'``, or several (a name matching any of them is listed).
        pretrained: only models whose weights are published (pinned Hub revision and sha256).
        local: include the models of the local zoo (:func:`local_zoo_dir`); their names may also be index names.

    Example:
        >>> list_models('baseline-*-clutteredfmnist', local=False)
        ['baseline-efficientnetlite0-clutteredfmnist']
        >>> 'lico-efficientnetlite0-clutteredfmnist' in list_models('*-clutteredfmnist', local=False)
        True
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    _ensure_default()
    with _lock:
        entries = list(_entries.values())
    names = {e.name for e in entries if e.published or not pretrained}
    if local and not pretrained:
        names |= set(local_entries())
    out = [n for n in names if any(fnmatch.fnmatchcase(n.lower(), p.lower()) for p in patterns)]
    return sorted(out, key=natural_key)


def _check_prefer(prefer: str) -> None:
    if prefer not in _PREFER:
        raise ConfigError(f"prefer must be 'local' (a model trained here wins) or 'published' (published weights "
                          f'win), got {prefer!r}.')


def get_entry(name: str, prefer: str = 'local') -> ZooEntry:
    """The entry called ``name``: the local zoo's if there is one, else the index's; ``prefer='published'`` takes
    the index entry when its weights are published. An unknown name is an error with close matches."""
    _check_prefer(prefer)
    _ensure_default()
    with _lock:
        entry = _entries.get(name)
        known = set(_entries)
    mine = local_entries()
    if name in mine and not (prefer == 'published' and entry is not None and entry.published):
        return mine[name]
    if entry is None:
        known |= set(mine)
        raise UnknownTypeError(f'The zoo has no model {shorten(name)!r}.{did_you_mean(name, sorted(known))} Known: '
                               f'{", ".join(sorted(known, key=natural_key))}. List them with zoo.list_models(); '
                               "a Hub repo loads as 'hf-hub:ORG/NAME', a folder as 'local-dir:PATH'.")
    return entry


def index_entry(name: str) -> ZooEntry | None:
    """The entry of the shipped or registered indexes called ``name`` (the local zoo left out), or ``None``."""
    _ensure_default()
    with _lock:
        return _entries.get(name)


def find_index_entry(name: str | None = None, recipe: str | None = None) -> ZooEntry | None:
    """The index entry a model trained from ``recipe`` (a config file name) describes: the entry called ``name``
    when it has that recipe (or either is unknown), else the entry of that recipe, else ``None``. What a model card
    reads its dataset, terms, paper and license from — never from an entry of another recipe."""
    base = os.path.basename(recipe) if recipe else None

    def same(e: ZooEntry) -> bool:
        return not base or not e.recipe or os.path.basename(e.recipe) == base

    entry = index_entry(name) if name else None
    if entry is not None and same(entry):
        return entry
    if base:
        with _lock:
            return next((e for e in _entries.values() if e.recipe and os.path.basename(e.recipe) == base), None)
    return None


def has_entry(name: str) -> bool:
    _ensure_default()
    with _lock:
        if name in _entries:
            return True
    return name in local_entries()


def entry_metric(entry: ZooEntry, key: str) -> float | None:
    """The value of metric ``key`` (``'accuracy/top1'``) of an entry, or ``None``."""
    value = next((m.get('value') for m in entry.metrics if m.get('key') == key), None)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def model_table(pattern: str | Iterable[str] = '*', pretrained: bool = False, local: bool = True
                ) -> list[dict[str, str]]:
    """Rows for a table of the matching models: name, dataset, method, weights status (``published``, ``not
    published`` or ``local``), top-1, Hub repo."""
    rows = []
    for name in list_models(pattern, pretrained=pretrained, local=local):
        e = get_entry(name) if local else index_entry(name)
        assert e is not None
        top1 = entry_metric(e, 'accuracy/top1')
        planned = index_entry(name)
        hub = e.hf_hub or (planned.hf_hub if planned is not None else None) or ''
        rows.append({'name': e.name, 'dataset': str(e.dataset.get('name', '')), 'method': e.method or '',
                     'weights': 'local' if e.local else 'published' if e.published else 'not published',
                     'top1': '' if top1 is None else f'{top1:.2f}',
                     'hub': hub + ('' if (e.published or not hub) else ' (planned)')})
    return rows
