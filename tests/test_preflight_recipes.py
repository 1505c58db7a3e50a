"""Every recipe under configs/ has a preflight test, parametrised over the files (a new recipe is covered without
editing this file): what it needs is derived from its config, every missing asset is named with fixes that work,
and the Hub files it declares are exactly the ones timm / open_clip ask the Hub for when the component is
built."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import registry
from tests.hub_fixtures import fake_hub  # noqa: F401
from zoo.apis.config import load_config
from zoo.apis.preflight import USES, _value, check, collect, preflight, use_config
from zoo.core.assets import HubFiles, LocalPath, MissingAssetsError

from .conftest import ROOT

RECIPES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').glob('*.py'))


def needs_of(cfg, cache, source=''):
    needs, notes = collect(use_config(cfg, 'all'), source=source, **USES['all'])
    assert notes == []
    return check(needs, str(cache))


def _fix(need, folder: Path) -> list[str]:
    """The --cfg-options the message offers for ``need``, with PATH (when offered) a path under ``folder``."""
    values = [_value(option)[0] for option in need.asset.instead]
    assert values, f'{need.asset.label()} is missing and the message offers no --cfg-options to do without it'
    value = str(folder) if 'PATH' in values else values[0]
    return [f'{key}={value}' for key in need.keys]


def _create(asset: LocalPath) -> None:
    """Make a file or folder as the asset declares it (empty files: the preflight checks presence only)."""
    path = Path(asset.paths[0])
    if asset.file:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'')
        return
    path.mkdir(parents=True, exist_ok=True)
    for group in asset.expect:
        (path / group[0]).touch() if '.' in group[0] else (path / group[0]).mkdir(exist_ok=True)


@pytest.mark.parametrize('recipe', RECIPES)
def test_recipe_preflight_names_every_missing_asset_and_its_fixes_work(recipe, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)  # relative paths of the recipe (data/...) point nowhere
    cache = tmp_path / 'empty-cache'
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    config = str(ROOT / recipe)
    cfg = load_config(config)
    needs = needs_of(cfg, cache, config)
    assert needs == [] or all(n.keys and n.sources == [config] for n in needs)
    missing = [n for n in needs if n.problem]
    try:
        preflight(cfg, 'all', config=config, cache_dir=str(cache), raw=True)
        assert missing == []
    except MissingAssetsError as exc:
        assert [n.asset.identity() for n in exc.needs] == [n.asset.identity() for n in missing]
        text = str(exc)
        assert text.count('\n') == 0 if len(missing) == 1 else f'needs {len(missing)} things' in text
        for need in missing:
            assert need.problem in text
    # every fix the message offers is a valid --cfg-options setting that removes the need
    options = [opt for i, need in enumerate(missing) for opt in _fix(need, tmp_path / 'fix' / str(i))]
    fixed = load_config(config, options)  # a key that does not exist (without '+') would raise here
    for need in needs_of(fixed, cache):
        if need.problem:
            assert isinstance(need.asset, LocalPath) and need.asset.paths[0].startswith(str(tmp_path / 'fix')), \
                need.problem
            _create(need.asset)
    assert all(n.location for n in preflight(fixed, 'all', cache_dir=str(cache), raw=True) if n.asset.kind !=
               'Package')


def test_declared_hub_files_are_what_the_libraries_request(fake_hub, tmp_path):  # noqa: F811
    """Build each component that declares Hub files, alone, against the loopback Hub holding empty repos: the files
    timm / open_clip request (every alternative, in their order, since none exists) are the declared ones."""
    seen = set()
    for recipe in RECIPES:
        cfg = load_config(str(ROOT / recipe))
        for need in needs_of(cfg, tmp_path / 'cache'):
            asset = need.asset
            if not isinstance(asset, HubFiles) or asset.identity() in seen:
                continue
            seen.add(asset.identity())
            path = need.keys[0].lstrip('+').rsplit('.', 1)[0]
            node = cfg
            for part in path.split('.'):
                node = node[int(part)] if part.isdigit() else node[part]
            owner = next(r for r in registry.ALL.values() if node['type'] in r)
            fake_hub.add_model(asset.repo_id, {})
            start = len(fake_hub.requests)
            with pytest.raises(Exception):  # noqa: B017 - no file exists: the build fails after asking for them
                owner.build(dict(node))
            asked = [re.fullmatch(r'/(.+?/.+?)/resolve/[^/]+/(.+)', p) for m, p in fake_hub.requests[start:]
                     if m == 'HEAD' and '/resolve/' in p]
            assert [(m[1], m[2]) for m in asked] == [(asset.repo_id, f) for group in asset.files for f in group], \
                (recipe, path)
    assert len(seen) >= 2  # the CUB recipes' ResNet-50 weights and LICO's CLIP text tower
