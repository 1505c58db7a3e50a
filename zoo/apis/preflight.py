"""The preflight: every external asset a config needs, checked before anything is built, missing ones in one message.

What a config needs is derived from the config: the walk follows the component slots ``zoo.validation`` knows
(each class's ``component_args``, and mmengine's dataloader slots) and asks every component class it meets for its
``required_assets(args)`` (:mod:`zoo.core.assets`; ``args`` is the component's config with the constructor's
defaults filled in). Each asset is then checked where the library will look for it: local files and folders,
installed packages, and Hugging Face Hub files in huggingface_hub's cache (``try_to_load_from_cache``; the cache
timm, open_clip and transformers read). Nothing is downloaded, built or imported beyond what naming the files
needs (timm's and open_clip's pretrained tables, only for a ``pretrained`` that names them).

A Hub file that is not cached is missing only when downloads are impossible: ``HF_HUB_OFFLINE=1``, or the Hub
endpoint does not answer a short connection attempt (otherwise the library downloads it, as it always did).
Every missing asset is listed in one :class:`~zoo.core.assets.MissingAssetsError` with its fix: the prefetch
command (``tools/prepare_data.py --recipe CONFIG``), the download page and folder layout, and the
``--cfg-options`` values that do without it.

``train``, ``test``, ``compare`` (:func:`preflight`, :func:`preflight_runs`) and ``init_model`` (hence
``tools/explain.py``; :func:`preflight_model`) call it just before their Runner or model is built.

Example::

    from zoo.apis.config import load_config
    from zoo.apis.preflight import check, collect
    cfg = load_config('configs/resnet50_lico_cub.py')
    needs, notes = collect(cfg, splits=('train', 'val'))
    [n.problem for n in check(needs) if n.problem]     # what is not on this machine, whatever the network
"""
from __future__ import annotations

import inspect
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import registry
from registry import DATASETS, MODELS
from registry.errors import XZooError
from zoo.core.assets import Asset, HubFiles, LocalPath, MissingAssetsError, Need
from zoo.validation import RUNNER_SLOTS, component_args

USES: dict[str, dict[str, Any]] = {
    # what a run builds: the dataloaders it iterates, load_from, and the model as configured (training) or its
    # inference copy (test: a checkpoint supplies the weights; training-only parts dropped, pretrained off)
    'train': dict(splits=('train', 'val'), load_from=True),
    'test': dict(splits=('test',), load_from=False),
    'all': dict(splits=('train', 'val', 'test'), load_from=True),
}
PREFETCH = 'python tools/prepare_data.py --recipe'
PROBE_TIMEOUT = 3.0


# --- collecting --------------------------------------------------------------------------------------------------

def _with_defaults(cls: Any, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` (without ``type``) over the constructor's defaults."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        params = []
    args = {p.name: p.default for p in params
            if p.default is not p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    args.update({k: v for k, v in cfg.items() if k not in ('type', '_scope_')})
    return args


def _resolve(node: Mapping[str, Any], reg: Any) -> Any:
    kind = node.get('type')
    if isinstance(kind, str):
        try:
            return reg.get(kind)
        except (XZooError, KeyError, ValueError, ImportError, AttributeError, RuntimeError):
            return None  # config validation (or the build) reports it
    return kind if inspect.isclass(kind) else None


class _Walk:
    def __init__(self, source: str) -> None:
        self.source = source
        self.needs: dict[tuple, Need] = {}
        self.notes: list[str] = []

    def add(self, asset: Asset, key: str) -> None:
        need = self.needs.setdefault(asset.identity(), Need(asset))
        if key not in need.keys:
            need.keys.append(key)
        if self.source and self.source not in need.sources:
            need.sources.append(self.source)

    def component(self, node: Any, reg: Any, where: str) -> None:
        if not isinstance(node, Mapping):
            return
        cls = _resolve(node, reg)
        if cls is None:
            return
        declare = getattr(cls, 'required_assets', None)
        if callable(declare):
            try:
                assets = declare(_with_defaults(cls, node))
            except XZooError:
                raise
            except Exception as exc:  # noqa: BLE001 - a declaration that fails must not stop a run that may work
                self.notes.append(f'{where}: could not work out what {cls.__name__} reads ({type(exc).__name__}: '
                                  f'{str(exc)[:160]}); not checked.')
                assets = []
            for asset in assets:
                if asset.arg:
                    key = f'{where}.{asset.arg}'
                    self.add(asset, key if asset.arg in node else '+' + key)  # '+': a key the config lacks
                else:
                    self.add(asset, where)
        slots = component_args(cls)
        for key, value in node.items():
            if key in ('type', '_scope_'):
                continue
            self.nested(value, slots.get(key) or RUNNER_SLOTS.get(key), f'{where}.{key}')

    def nested(self, value: Any, slot: str | None, where: str) -> None:
        items = list(enumerate(value)) if isinstance(value, (list, tuple)) else [(None, value)]
        for index, item in items:
            if not isinstance(item, Mapping):
                continue
            path = where if index is None else f'{where}.{index}'
            known = registry.ALL.get(slot or '')
            if known is None:  # an argument no class declares: the registry that has the name, if only one
                owners = [r for r in registry.ALL.values() if isinstance(item.get('type'), str) and item['type'] in r]
                known = owners[0] if len(owners) == 1 else None
            if known is not None:
                self.component(item, known, path)


def collect(cfg: Mapping[str, Any], splits: Sequence[str] = ('train', 'val'), model: bool = True,
            load_from: bool = False, source: str = '') -> tuple[list[Need], list[str]]:
    """``(needs, notes)``: the assets of ``cfg``'s model (``model``), of the datasets of ``splits`` and of
    ``load_from``, each with the config keys that ask for it; ``notes`` name components whose assets could not be
    worked out."""
    walk = _Walk(source)
    if model and isinstance(cfg.get('model'), Mapping):
        walk.component(cfg['model'], MODELS, 'model')
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if isinstance(loader, Mapping):
            walk.component(loader.get('dataset'), DATASETS, f'{split}_dataloader.dataset')
    start = cfg.get('load_from') if load_from else None
    if isinstance(start, (str, os.PathLike)) and os.fspath(start) and '://' not in os.fspath(start):
        walk.add(LocalPath(what='Checkpoint', arg='load_from', paths=(os.fspath(start),), file=True,
                           instead=('None (start from what the model config initialises)',)), 'load_from')
    return list(walk.needs.values()), walk.notes


def use_config(cfg: Any, use: str) -> Any:
    """The config file's ``cfg`` as ``use`` builds it: for ``'test'`` its model's inference copy (the checkpoint
    supplies every weight), else as written."""
    if use == 'test' and isinstance(cfg.get('model'), Mapping):
        from .inference import inference_model_config

        return dict(cfg, model=inference_model_config(cfg['model'], has_checkpoint=True))
    return cfg


# --- checking ----------------------------------------------------------------------------------------------------

def hub_cache(cache_dir: str | None = None) -> str:
    from huggingface_hub import constants

    return os.path.expanduser(os.fspath(cache_dir or constants.HF_HUB_CACHE))


def _hub_location(asset: HubFiles, cache_dir: str | None) -> tuple[str | None, list[str]]:
    """The cached path of the first group's file and the groups with no cached file."""
    from huggingface_hub import try_to_load_from_cache

    found, missing = None, []
    for group in asset.files:
        hit = None
        for name in group:
            path = try_to_load_from_cache(asset.repo_id, name, cache_dir=cache_dir, revision=asset.revision,
                                          repo_type=asset.repo_type)
            if isinstance(path, str):
                hit = path
                break
        if hit is None:
            missing.append(' or '.join(group))
        found = found or hit
    return found, missing


def check(needs: list[Need], cache_dir: str | None = None) -> list[Need]:
    """Fill in ``location`` or ``problem`` of every need (in place); return them."""
    cache = hub_cache(cache_dir)
    for need in needs:
        asset = need.asset
        need.fetchable = isinstance(asset, HubFiles) or asset.kind == 'UrlFile' or bool(asset.maker)
        if isinstance(asset, HubFiles):
            location, missing = _hub_location(asset, cache)
            need.location = location if not missing else None
            partly = f": {', '.join(missing)}" if len(missing) < len(asset.files) else ''
            need.problem = None if not missing else \
                f'{asset.label()}{partly} not in the Hugging Face cache ({cache})'
        else:
            need.problem = asset.problem()  # type: ignore[attr-defined]
            locate = getattr(asset, 'locate', None)
            need.location = None if need.problem else (locate() if locate else getattr(asset, 'path', None))
    return needs


def _endpoint_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether the Hub endpoint accepts a TCP connection within ``timeout`` seconds (name lookup included)."""
    from huggingface_hub import constants

    parts = urlsplit(constants.ENDPOINT)
    port = parts.port or (443 if parts.scheme == 'https' else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((parts.hostname or '', port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def downloads_off(offline: bool | None = None) -> str | None:
    """Why Hub files cannot be downloaded now (``None``: they can). ``offline``: ``True`` checks as if on an
    offline node, ``False`` as if online; ``None`` asks ``HF_HUB_OFFLINE`` and then the endpoint."""
    from huggingface_hub import constants

    if offline is False:
        return None
    if offline or constants.HF_HUB_OFFLINE:
        return 'downloads are off (HF_HUB_OFFLINE=1)' if constants.HF_HUB_OFFLINE or offline is None else \
            'checked as for an offline machine'
    if not _endpoint_reachable():
        return f'the Hub ({constants.ENDPOINT}) cannot be reached from here'
    return None


# --- the message -------------------------------------------------------------------------------------------------

def _value(option: str) -> tuple[str, str]:
    """``'False (random init)'`` → ``('False', 'random init')``."""
    value, _, meaning = option.partition(' (')
    return value, meaning.rstrip(')')


def _fixes(need: Need, prefetch: str) -> list[str]:
    asset = need.asset
    out = []
    if isinstance(asset, HubFiles) or asset.kind == 'UrlFile':
        out.append(f'get it (on a machine with internet, then copy the cache here): {prefetch}')
    elif asset.maker:
        from .assets import MAKERS

        made = f' ({MAKERS[asset.maker][0]})' if asset.maker in MAKERS else ''
        out.append(f'make it: {prefetch}{made}')
    if getattr(asset, 'install', ''):
        out.append(f'install: {asset.install}')
    if asset.page:
        terms = f' (terms: {asset.terms})' if asset.terms else ''
        out.append(f'download: {asset.page}{terms}' + (f'; expected: {asset.layout}' if asset.layout else ''))
    elif asset.layout:
        out.append(f'expected: {asset.layout}')
    for option in asset.instead if asset.arg else ():
        value, meaning = _value(option)
        setting = ' '.join(f'{k}={value}' for k in need.keys)
        out.append(f'or: --cfg-options {setting}' + (f' ({meaning})' if meaning else ''))
    return out


def prefetch_command(sources: Iterable[str], cfg_options: Any = None) -> str:
    from .config import parse_cfg_options

    parts = [f"{PREFETCH} {' '.join(sources) or 'CONFIG'}"]
    try:
        options = parse_cfg_options(cfg_options) if cfg_options else {}
    except XZooError:
        options = {}
    if options:
        parts.append('--cfg-options ' + ' '.join(f'{k}={v}' for k, v in options.items()))
    return ' '.join(parts)


def message(missing: list[Need], why_offline: str | None, prefetch: str, notes: Sequence[str] = ()) -> str:
    """One line for one missing asset; a numbered block per asset otherwise."""
    sources = list(dict.fromkeys(s for n in missing for s in n.sources)) or ['the config']
    blocks = []
    for need in missing:
        problem = need.problem or need.asset.label()
        if isinstance(need.asset, HubFiles) or need.asset.kind == 'UrlFile':
            problem += f' and {why_offline}' if why_offline else ''
        blocks.append((problem, _fixes(need, prefetch)))
    if len(blocks) == 1:
        problem, fixes = blocks[0]
        return f"{problem}. {'; '.join(fixes)}." if fixes else f'{problem}.'
    verb = 'need' if len(sources) > 1 else 'needs'
    head = f"{' and '.join(sources)} {verb} {len(blocks)} things that are not on this machine (nothing was built):"
    lines = [head]
    for i, (problem, fixes) in enumerate(blocks, 1):
        lines.append(f'  {i}. {problem}')
        lines += [f'     {fix}' for fix in fixes]
    if sum(n.fetchable for n in missing) > 1:
        lines.append('That one command gets every "get it" and "make it" item (with --cache-dir DIR: then run with '
                     'HF_HUB_CACHE=DIR HF_HUB_OFFLINE=1; docs/getting_started.md, "Training on an offline cluster").')
    lines += [f'note: {n}' for n in notes]
    return '\n'.join(lines)


# --- the entry points --------------------------------------------------------------------------------------------

def preflight(cfg: Mapping[str, Any], use: str = 'train', config: Any = None, cfg_options: Any = None,
              cache_dir: str | None = None, offline: bool | None = None, raw: bool = False) -> list[Need]:
    """Check everything ``cfg`` needs for ``use`` (``'train'``, ``'test'``, ``'all'``); raise
    :class:`~zoo.core.assets.MissingAssetsError` listing every missing asset, else return the needs.

    ``raw``: ``cfg`` is the config file's model as written (the ``'test'`` use then takes its inference copy);
    the entry points pass the config they are about to build. ``config``/``cfg_options`` only shape the messages
    (the prefetch command).
    """
    source = os.fspath(config) if isinstance(config, (str, os.PathLike)) else (getattr(cfg, 'filename', '') or '')
    return preflight_many([(cfg, source, cfg_options, use)], cache_dir=cache_dir, offline=offline, raw=raw)


def gather(jobs: Iterable[tuple[Mapping[str, Any], str, Any, str]], raw: bool = True
           ) -> tuple[list[Need], list[str]]:
    """The needs of several ``(cfg, source, cfg_options, use)``, one per asset (keys and sources merged), and the
    notes. ``raw``: each ``cfg`` is a config file as written (``use_config`` prepares it)."""
    merged: dict[tuple, Need] = {}
    notes: list[str] = []
    for cfg, source, _, use in jobs:
        needs, found_notes = collect(use_config(cfg, use) if raw else cfg, source=source, **USES[use])
        notes += [n for n in found_notes if n not in notes]
        for need in needs:
            into = merged.setdefault(need.asset.identity(), Need(need.asset))
            into.keys += [k for k in need.keys if k not in into.keys]
            into.sources += [s for s in need.sources if s not in into.sources]
    return list(merged.values()), notes


def preflight_many(jobs: Iterable[tuple[Mapping[str, Any], str, Any, str]], cache_dir: str | None = None,
                   offline: bool | None = None, raw: bool = True) -> list[Need]:
    """:func:`preflight` for several ``(cfg, source, cfg_options, use)`` at once (``tools/compare.py``,
    ``tools/prepare_data.py`` with several recipes): one message for all of them."""
    jobs = list(jobs)
    needs, notes = gather(jobs, raw)
    options = next((job[2] for job in jobs if job[2]), None)
    return _verdict(needs, notes, options, cache_dir, offline)


def _verdict(needs: list[Need], notes: list[str], cfg_options: Any, cache_dir: str | None = None,
             offline: bool | None = None) -> list[Need]:
    """Check ``needs``; raise :class:`MissingAssetsError` naming every missing one, else return them."""
    needs = check(needs, cache_dir)
    missing = [n for n in needs if n.problem]
    online_fetch = [n for n in missing if isinstance(n.asset, HubFiles) or n.asset.kind == 'UrlFile']
    why = downloads_off(offline) if online_fetch else None
    if why is None:  # the libraries will download what the cache lacks
        missing = [n for n in missing if n not in online_fetch]
    for note in notes:
        warnings.warn(note, stacklevel=3)
    if missing:
        sources = list(dict.fromkeys(s for n in missing for s in n.sources))
        raise MissingAssetsError(message(missing, why, prefetch_command(sources, cfg_options), notes), missing)
    return needs


def timed_check(jobs: Iterable[tuple[Mapping[str, Any], str, Any, str]], cache_dir: str | None = None
                ) -> tuple[list[Need], dict[str, float]]:
    """:func:`gather` + :func:`check` with their times in seconds (``tools/prepare_data.py`` prints them):
    ``derive`` (walking the configs, library imports included) and ``check`` (disk and cache lookups)."""
    start = time.perf_counter()
    needs, _ = gather(jobs)
    derived = time.perf_counter()
    check(needs, cache_dir)
    return needs, dict(derive=derived - start, check=time.perf_counter() - derived)


def preflight_model(model_cfg: Mapping[str, Any], config: Any = None, cfg_options: Any = None) -> list[Need]:
    """:func:`preflight` of a model config alone: what ``zoo.apis.init_model`` builds (``tools/explain.py``)."""
    source = os.fspath(config) if isinstance(config, (str, os.PathLike)) else ''
    needs, notes = collect({'model': model_cfg}, splits=(), source=source)
    return _verdict(needs, notes, cfg_options)


def preflight_runs(states: Sequence[Any]) -> list[Need]:
    """:func:`preflight` of the runs of a comparison (``zoo.apis.compare``) that still train or test."""
    from .config import load_config

    jobs = []
    for state in states:
        run = state.run
        options = {k: v for k, v in run.cfg_options.items() if k.lstrip('+') != 'randomness.seed'}
        uses = ['train'] if state.train in ('new', 'resume') else []
        uses += ['test'] if state.test == 'todo' else []
        cfg = load_config(run.config, run.cfg_options) if uses else None
        jobs += [(cfg, os.fspath(run.config), options, use) for use in uses]
    return preflight_many(jobs) if jobs else []
