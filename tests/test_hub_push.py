"""Publishing to and loading from the Hub, against the loopback fake Hub (a TEST DOUBLE: tests/fakehub.py)."""
from __future__ import annotations

import json

import pytest
import torch

import zoo
from registry.errors import CheckpointError
from tests.hub_fixtures import CLASSES, fake_hub, logits, probe_images, trained  # noqa: F401
from zoo.hub import index as zoo_index
from zoo.hub.publish import push_to_hub


@pytest.fixture
def original(trained):  # noqa: F811
    from zoo.hub.export import load_trained

    return load_trained(trained)[0]


def test_push_then_load_into_a_fresh_cache(fake_hub, trained, original, tmp_path):  # noqa: F811
    res = push_to_hub(trained, 'lab/tiny-shapes', metrics={'accuracy/top1': 62.5})
    assert fake_hub.commit_count('lab/tiny-shapes') == 1  # one commit holding every file
    assert sorted(fake_hub.files('lab/tiny-shapes')) == ['README.md', 'config.json', 'model.safetensors']
    assert res.commit_oid and res.revision == 'main' and res.pr_url is None
    entry = res.index_entry('lab-tiny')
    assert entry['status'] == 'published' and entry['revision'] == res.commit_oid
    assert len(entry['sha256']['model.safetensors']) == 64

    model = zoo.load('hf-hub:lab/tiny-shapes', cache_dir=str(tmp_path / 'fresh'))
    images = probe_images()
    assert not model.training and model.class_names == CLASSES
    assert torch.equal(logits(model, images), logits(original, images))
    assert model.pretrained_files['weights'].startswith(str(tmp_path / 'fresh'))
    pinned = zoo.load(f'hf-hub:lab/tiny-shapes@{res.commit_oid}', cache_dir=str(tmp_path / 'fresh'))
    assert torch.equal(logits(pinned, images), logits(original, images))


def test_download_then_load_offline(fake_hub, trained, original, tmp_path, monkeypatch):  # noqa: F811
    from huggingface_hub import constants

    push_to_hub(trained, 'lab/tiny-shapes')
    cache = str(tmp_path / 'cache')
    folder = zoo.download('hf-hub:lab/tiny-shapes', cache_dir=cache)
    assert {'config.json', 'model.safetensors'} <= set(__import__('os').listdir(folder))
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    before = len(fake_hub.requests)
    model = zoo.load('hf-hub:lab/tiny-shapes', cache_dir=cache)
    assert len(fake_hub.requests) == before  # nothing asked of the Hub
    assert torch.equal(logits(model, probe_images()), logits(original, probe_images()))
    with pytest.raises(CheckpointError, match=r"Hub repo 'lab/tiny-shapes' \(revision main\) is not in the local "
                                              r"cache .*HF_HUB_OFFLINE=1.*zoo.download\('hf-hub:lab/tiny-shapes'\)"):
        zoo.load('hf-hub:lab/tiny-shapes', cache_dir=str(tmp_path / 'cold'))


def test_published_index_entry_is_verified(fake_hub, trained, original, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(zoo_index, '_entries', {})
    monkeypatch.setattr(zoo_index, '_indexes', [])
    res = push_to_hub(trained, 'lab/tiny-shapes')
    good, bad = res.index_entry('lab-tiny'), res.index_entry('lab-tiny-corrupt')
    bad['sha256'] = {'model.safetensors': '0' * 64}
    (tmp_path / 'lab.json').write_text(json.dumps({'format_version': 1, 'models': [good, bad]}))
    zoo.register_index(tmp_path / 'lab.json')
    assert zoo.list_models('lab-*', pretrained=True) == ['lab-tiny', 'lab-tiny-corrupt']
    model = zoo.load('lab-tiny', cache_dir=str(tmp_path / 'c'))
    assert torch.equal(logits(model, probe_images()), logits(original, probe_images()))
    assert model.pretrained_files['sha256'] == good['sha256']['model.safetensors']
    with pytest.raises(CheckpointError, match=r"model.safetensors' \(lab-tiny-corrupt\) has sha256 [0-9a-f]{64}, "
                                              r'but 0{64} was expected.*corrupt'):
        zoo.load('lab-tiny-corrupt', cache_dir=str(tmp_path / 'c'))


def test_card_kept_branches_and_pull_requests(fake_hub, trained, tmp_path):  # noqa: F811
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo('lab/tiny-shapes')
    api.upload_file(path_or_fileobj=b'# hand-written card\n', path_in_repo='README.md', repo_id='lab/tiny-shapes')
    res = push_to_hub(trained, 'lab/tiny-shapes')
    assert res.card_kept and fake_hub.files('lab/tiny-shapes')['README.md'] == b'# hand-written card\n'
    push_to_hub(trained, 'lab/tiny-shapes', overwrite_card=True)
    assert fake_hub.files('lab/tiny-shapes')['README.md'].startswith(b'---')

    res = push_to_hub(trained, 'lab/tiny-shapes', revision='v1')
    assert res.revision == 'v1' and 'config.json' in fake_hub.files('lab/tiny-shapes', 'v1')
    assert zoo.load('hf-hub:lab/tiny-shapes@v1', cache_dir=str(tmp_path / 'c')).class_names == CLASSES

    res = push_to_hub(trained, 'lab/other', create_pr=True, private=True)
    assert res.pr_url.endswith('/discussions/1') and res.revision == 'refs/pr/1'
    assert fake_hub.files('lab/other', 'main') == {}  # main untouched until the PR is merged
    assert res.index_entry()['status'] == 'unpublished'
    assert fake_hub.repos[('model', 'lab/other')].private


def test_pickle_only_repo_is_refused_without_downloading_it(fake_hub, trained, tmp_path):  # noqa: F811
    from huggingface_hub import HfApi

    push_to_hub(trained, 'lab/tiny-shapes', dry_run=tmp_path / 'export')
    api = HfApi()
    api.create_repo('lab/pickled')
    api.upload_file(path_or_fileobj=str(tmp_path / 'export' / 'config.json'), path_in_repo='config.json',
                    repo_id='lab/pickled')
    api.upload_file(path_or_fileobj=b'not really a pickle', path_in_repo='pytorch_model.bin', repo_id='lab/pickled')
    with pytest.raises(CheckpointError, match="'lab/pickled' has no model.safetensors.*pickle.*trust_pickle=True"):
        zoo.load('hf-hub:lab/pickled', cache_dir=str(tmp_path / 'c'))
    assert not any('pytorch_model.bin' in path for _, path in fake_hub.requests)


def test_push_errors(fake_hub, trained):  # noqa: F811
    from registry.errors import ConfigError

    with pytest.raises(ConfigError, match='must be ORG/NAME'):
        push_to_hub(trained, 'tiny')
    with pytest.raises(ConfigError, match='--create-pr opens a pull request against main'):
        push_to_hub(trained, 'lab/x', create_pr=True, revision='dev')
    with pytest.raises(CheckpointError, match="Hub repo 'lab/missing' does not exist"):
        zoo.load('hf-hub:lab/missing')
    push_to_hub(trained, 'lab/tiny-shapes')
    with pytest.raises(CheckpointError, match="has no revision 'nope'"):
        zoo.load('hf-hub:lab/tiny-shapes@nope')
