"""``zoo.load`` of zoo entries offline: random-init builds need no network; weights fail fast with advice."""
from __future__ import annotations

import json
import shutil
import socket
import time

import pytest
import torch

import zoo
from registry.errors import CheckpointError
from zoo.hub import index as zoo_index


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(self, address, *args, **kwargs):
        raise AssertionError(f'network access attempted: {address}')

    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket.socket, 'connect_ex', refuse)


@pytest.fixture
def offline_cold_cache(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'empty-cache'))
    monkeypatch.setattr(zoo_index, '_entries', {})
    monkeypatch.setattr(zoo_index, '_indexes', [])


def test_lico_entry_builds_offline_with_random_weights(no_network):
    model = zoo.load('lico-resnet50-cub', pretrained=False)
    assert not model.training
    assert model.num_classes == 200 and model.class_names[0] == 'Black footed Albatross'
    assert not any(k.startswith(('alignment_heads.', 'text_branch.')) for k in model.state_dict())
    pre = model.preprocessing
    assert pre.input_size == (3, 448, 448) and pre.resize == (510, 510) and pre.crop_mode == 'squash'
    assert pre.interpolation == 'bilinear' and pre.mean == (0.485, 0.456, 0.406)
    assert model.pretrained_cfg['crop_pct'] == pytest.approx(448 / 510, abs=1e-6)
    assert model.explainer_defaults['method'] == 'gradcam'
    assert model.explainer_defaults['target_layer'] == 'backbone.model.layer4'
    assert model.pretrained_source == 'lico-resnet50-cub' and 'weights' not in model.pretrained_files


def test_demo_entry_explains_and_preprocesses(no_network, tmp_path):
    from PIL import Image

    model = zoo.load('baseline-efficientnetlite0-clutteredfmnist', pretrained=False)
    assert model.preprocessing.hw == (128, 128) and len(model.class_names) == 10
    Image.new('RGB', (200, 150), 'white').save(tmp_path / 'shirt.png')  # another size: resized to the input
    from zoo.apis import load_images
    batch = load_images(model, [str(tmp_path / 'shirt.png')])
    assert batch.dtype == torch.uint8 and tuple(batch.shape) == (1, 3, 128, 128)
    maps = model.explain(batch)
    assert tuple(maps.shape) == (1, 128, 128) and 0 <= float(maps.min()) <= float(maps.max()) <= 1
    maps = model.explain([str(tmp_path / 'shirt.png')], method='eigencam')
    assert tuple(maps.shape) == (1, 128, 128)


def test_pretrained_unpublished_entry_says_so(no_network):
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"'lico-resnet50-cub' has no published weights \(planned Hub repo "
                                              r"'xzoo/lico-resnet50-cub'\).*zoo.download\('lico-resnet50-cub'\) yet"
                                              r".*not published yet.*pretrained=False"):
        zoo.load('lico-resnet50-cub')
    with pytest.raises(CheckpointError, match='has no published weights'):
        zoo.download('lico-resnet50-cub')
    assert time.perf_counter() - start < 2


def test_pretrained_offline_cold_cache_fails_fast(offline_cold_cache, tmp_path):
    """A published entry whose weights are not cached: one clear error, at once, naming repo and zoo.download."""
    shutil.copy(zoo_index.get_entry('baseline-resnet50-cub').config, tmp_path / 'config.json')  # inside the index's
    entry = {'name': 'lab-resnet50-cub', 'config': 'config.json',  # folder: an index never names files outside it
             'hf_hub': 'my-lab/resnet50-cub', 'revision': '1' * 40, 'status': 'published',
             'sha256': {'model.safetensors': 'f' * 64}}
    (tmp_path / 'lab.json').write_text(json.dumps({'models': [entry]}))
    zoo.register_index(tmp_path / 'lab.json')
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        zoo.download('lab-resnet50-cub')
    assert time.perf_counter() - start < 2
    msg = str(err.value)
    assert "'model.safetensors' of Hub repo 'my-lab/resnet50-cub' (revision 1111" in msg
    assert 'HF_HUB_OFFLINE=1' in msg and "zoo.download('lab-resnet50-cub')" in msg
    with pytest.raises(CheckpointError, match=r"my-lab/resnet50-cub.*not in the local cache.*zoo.download"):
        zoo.load('lab-resnet50-cub')


def test_hf_hub_offline_cold_cache_fails_fast(offline_cold_cache):
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"'config.json' of Hub repo 'org/model' \(revision v2\) is not in the "
                                              r"local cache .* zoo.download\('hf-hub:org/model@v2'\)"):
        zoo.load('hf-hub:org/model@v2', local_files_only=True)
    assert time.perf_counter() - start < 2
