"""The model index: listing, natural sort, lab indexes, name parsing, honesty of the shipped entries."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from registry.errors import ConfigError, UnknownTypeError
from tests.conftest import ROOT, run_tool
from zoo.hub import index as zoo_index
from zoo.hub.api import ModelSource, parse_name

SHIPPED = ['baseline-efficientnetlite0-clutteredfmnist', 'baseline-resnet50-cub',
           'lico-efficientnetlite0-clutteredfmnist', 'lico-resnet50-cub', 'lit-lite0-minilm-clutteredfmnist']


@pytest.fixture
def clean_index(monkeypatch):
    """Each test starts from the shipped index only (registrations do not leak)."""
    monkeypatch.setattr(zoo_index, '_entries', {})
    monkeypatch.setattr(zoo_index, '_indexes', [])


def _write_index(path: Path, entries: list[dict], version: int = 1) -> Path:
    path.write_text(json.dumps({'format_version': version, 'models': entries}))
    return path


def _entry(name: str, **kw) -> dict:
    return {'name': name, 'hf_hub': f'lab/{name}', **kw}


def test_list_models_needs_no_torch():
    code = ('import sys, zoo; names = zoo.list_models("lico-*"); assert names == '
            "['lico-efficientnetlite0-clutteredfmnist', 'lico-resnet50-cub'], names; "
            'heavy = [m for m in ("torch", "mmengine", "timm") if m in sys.modules]; assert not heavy, heavy')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)


def test_list_models_patterns(clean_index):
    assert zoo.list_models() == SHIPPED
    assert zoo.list_models('*-CUB') == ['baseline-resnet50-cub', 'lico-resnet50-cub']  # case-insensitive
    assert zoo.list_models(['lico-resnet*', 'baseline-eff*']) == [
        'baseline-efficientnetlite0-clutteredfmnist', 'lico-resnet50-cub']
    assert zoo.list_models('lico') == []  # fnmatch: no implicit wildcard
    assert zoo.list_models(pretrained=True) == []  # honest: nothing is published yet


def test_natural_sort_and_pretrained_filter(clean_index, tmp_path):
    sha = 'a' * 64
    published = dict(status='published', revision='b' * 40, sha256={'model.safetensors': sha}, config=None)
    index = _write_index(tmp_path / 'lab.json', [_entry('lab-b10'), _entry('lab-b2', **published),
                                                  _entry('lab-b1'), _entry('Lab-a')])
    assert zoo.register_index(index) == ['lab-b10', 'lab-b2', 'lab-b1', 'Lab-a']
    assert zoo.list_models('lab-*') == ['Lab-a', 'lab-b1', 'lab-b2', 'lab-b10']
    assert zoo.list_models('lab-*', pretrained=True) == ['lab-b2']
    assert zoo_index.registered_indexes() == [zoo_index.DEFAULT_INDEX, str(index)]


def test_register_index_name_clash(clean_index, tmp_path):
    index = _write_index(tmp_path / 'lab.json', [_entry('lico-resnet50-cub')])
    with pytest.raises(ConfigError, match=r"'lico-resnet50-cub' from .*lab.json' is already in the zoo \(from "
                                          r".*index.json'\).*override=True"):
        zoo.register_index(index)
    zoo.register_index(index, override=True)
    assert zoo_index.get_entry('lico-resnet50-cub').hf_hub == 'lab/lico-resnet50-cub'
    zoo.register_index(index)  # registering the same file again is fine


@pytest.mark.parametrize('entries,message', [
    ([_entry('x', status='published')], 'a published entry needs "hf_hub" and "revision"'),
    ([_entry('x', status='published', revision='c' * 40)], "needs the sha256 of 'model.safetensors'"),
    ([_entry('x', sha256={'model.safetensors': 'not-a-sha'})], 'must be 64 lowercase hex digits'),
    ([_entry('x', status='maybe')], '"status" must be one of published, unpublished'),
    ([_entry('x'), _entry('x')], "lists 'x' more than once"),
    ([{'name': 'x'}], 'needs a "config"'),
    ([_entry('bad name')], '"name" must be a string'),
])
def test_index_validation(tmp_path, entries, message):
    with pytest.raises(ConfigError, match=message):
        zoo.register_index(_write_index(tmp_path / 'bad.json', entries))


def test_index_file_errors(tmp_path):
    with pytest.raises(ConfigError, match='does not exist'):
        zoo.register_index(tmp_path / 'missing.json')
    (tmp_path / 'broken.json').write_text('{"models": [')
    with pytest.raises(ConfigError, match='is not valid JSON'):
        zoo.register_index(tmp_path / 'broken.json')
    with pytest.raises(ConfigError, match='format_version 2; this xzoo reads up to 1'):
        zoo.register_index(_write_index(tmp_path / 'new.json', [], version=2))


def test_shipped_entries_are_honest():
    """Nothing is published yet: no revision, no sha256 invented, and the note says so."""
    for name in SHIPPED:
        entry = zoo_index.get_entry(name)
        assert entry.status == 'unpublished' and not entry.published
        assert entry.revision is None and entry.weights_sha256 is None
        assert 'not published' in entry.note
        assert Path(entry.config).is_file() and entry.config.endswith('.json')
        assert entry.license and entry.paper and entry.dataset['name']
        assert any(m['key'] == 'accuracy/top1' and m['conventions'] for m in entry.metrics)
        from zoo.models.serialization import read_export_config
        config = read_export_config(entry.config)
        assert config['training']['method'] == entry.method
        assert len(config['class_names']) == config['num_classes'] == entry.dataset['num_classes']


def test_shipped_configs_match_their_recipes():
    """zoo/hub/configs/*.json are generated from configs/ (tools/zoo_configs.py); they must not drift."""
    from zoo.hub.recipes import index_configs

    status = index_configs(root=str(ROOT))
    assert all(s == 'ok' for s in status.values()), (status, 'run: python tools/zoo_configs.py')


@pytest.mark.parametrize('name,expected', [
    ('lico-resnet50-cub', ModelSource('zoo', 'lico-resnet50-cub')),
    ('hf-hub:org/model', ModelSource('hf-hub', 'org/model')),
    ('hf-hub:org/model@refs/pr/1', ModelSource('hf-hub', 'org/model', 'refs/pr/1')),
    ('hf_hub:org/model@v1', ModelSource('hf-hub', 'org/model', 'v1')),
    ('local-dir:/tmp/x', ModelSource('local-dir', '/tmp/x')),
])
def test_parse_name(name, expected):
    assert parse_name(name) == expected


@pytest.mark.parametrize('name,message', [
    ('org/model', "To load a Hugging Face Hub repo, write 'hf-hub:org/model'"),
    ('./exports/model', "To load a folder, write 'local-dir:./exports/model'"),
    ('/abs/path', "write 'local-dir:/abs/path'"),
    ('hf-hub:not a repo', "is not a Hub repo id; write 'hf-hub:ORG/NAME'"),
    ('local-dir:', "'local-dir:' needs a folder"),
    ('', 'non-empty string'),
])
def test_bare_paths_and_repo_ids_are_refused(name, message):
    with pytest.raises(ConfigError, match=message):
        zoo.load(name)


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownTypeError, match="no model 'lico-resnet50-cb'. Did you mean 'lico-resnet50-cub'"):
        zoo.load('lico-resnet50-cb')


def test_list_models_tool(tmp_path):
    out = run_tool('tools/list_models.py', timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ['name', 'dataset', 'method', 'weights', 'top1', 'hub']
    assert [ln.split()[0] for ln in lines[1:]] == SHIPPED
    assert 'not published' in lines[1] and '(planned)' in lines[1]
    lab = _write_index(tmp_path / 'lab.json', [_entry('lab-vit-cub', config=None)])
    out = run_tool('tools/list_models.py', '*cub', '--index', str(lab), timeout=120)
    assert [ln.split()[0] for ln in out.stdout.splitlines()[1:]] == [
        'baseline-resnet50-cub', 'lab-vit-cub', 'lico-resnet50-cub']
    out = run_tool('tools/list_models.py', 'lico-*', '--pretrained', timeout=120)
    assert out.returncode == 0 and out.stdout == '' and 'with published weights' in out.stderr
    out = run_tool('tools/list_models.py', '--index', str(tmp_path / 'nope.json'), timeout=120)
    assert out.returncode == 2 and out.stderr.startswith('error: Model index') and out.stderr.count('\n') == 1
