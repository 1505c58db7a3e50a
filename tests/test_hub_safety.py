"""Loading never unpickles or executes anything, and damaged files give clear errors naming the file."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from registry.errors import CheckpointError, ConfigError
from tests.hub_fixtures import copy_export, exported, trained  # noqa: F401


class _Payload:
    """Unpickling this creates a file: proof of code execution if the marker appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def _malicious_pickle(path: Path, marker: Path) -> Path:
    torch.save({'state_dict': _Payload(marker)}, path)
    return path


@pytest.mark.parametrize('filename', ['pytorch_model.bin', 'model.pth'])
def test_malicious_pickle_is_refused_and_not_executed(exported, tmp_path, filename):  # noqa: F811
    folder = copy_export(exported, tmp_path / 'evil')
    (folder / 'model.safetensors').unlink()
    marker = tmp_path / 'pwned'
    _malicious_pickle(folder / filename, marker)
    with pytest.raises(CheckpointError, match=f"only the pickle '{filename}'.*refused.*trust_pickle=True"):
        zoo.load(f'local-dir:{folder}')
    assert not marker.exists()
    # the payload is real: trusting the pickle explicitly does run it (and the load then fails)
    with pytest.raises(CheckpointError):
        zoo.load(f'local-dir:{folder}', trust_pickle=True)
    assert marker.exists()


def test_pickle_next_to_safetensors_is_never_opened(exported, tmp_path):  # noqa: F811
    folder = copy_export(exported, tmp_path / 'both')
    marker = tmp_path / 'pwned'
    _malicious_pickle(folder / 'pytorch_model.bin', marker)
    model = zoo.load(f'local-dir:{folder}')
    assert model.pretrained_files['weights'].endswith('model.safetensors')
    assert not marker.exists()


def test_weights_loader_refuses_pickles_by_suffix_before_opening(tmp_path):
    from zoo.models.weights import load_model_weights

    marker = tmp_path / 'pwned'
    path = _malicious_pickle(tmp_path / 'weights.safetensors.pth', marker)
    with pytest.raises(CheckpointError, match='is a pickle file.*refused'):
        load_model_weights(torch.nn.Linear(2, 2), path)
    assert not marker.exists()


def _edit_config(folder: Path, edit) -> None:
    path = folder / 'config.json'
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize('component', [
    {'type': 'posix.system', 'command': 'touch {marker}'},
    {'type': 'os.system', 'command': 'touch {marker}'},
    {'type': 'subprocess.getoutput', 'cmd': 'touch {marker}'},
])
def test_config_cannot_name_a_callable_by_module_path(exported, tmp_path, component):  # noqa: F811
    folder = copy_export(exported, tmp_path / 'evil')
    marker = tmp_path / 'pwned'
    payload = {k: v.format(marker=marker) for k, v in component.items()}
    _edit_config(folder, lambda c: c['model_args'].update(backbone=payload))
    with pytest.raises(ConfigError, match=r"backbone\.type = '.*' is not the name of a registered xzoo component"):
        zoo.load(f'local-dir:{folder}')
    with pytest.raises(ConfigError, match="architecture 'builtins.exec' is not the name of a registered"):
        _edit_config(folder, lambda c: c.update(architecture='builtins.exec'))
        zoo.load(f'local-dir:{folder}', pretrained=False)
    assert not marker.exists()


@pytest.mark.parametrize('key,value,message', [
    ('init_cfg', {'type': 'Pretrained', 'checkpoint': '/tmp/x.pth'}, 'init_cfg is set'),
    ('pretrained', True, 'pretrained = True'),
    ('pretrained', '/tmp/evil.pth', 'pretrained'),
    ('checkpoint_path', '/tmp/evil.pth', 'checkpoint_path is set'),
    ('pretrained_cfg_overlay', {'file': '/tmp/evil.bin'}, 'pretrained_cfg_overlay is set'),
    ('model_name', 'hf-hub:evil/weights', 'would fetch files'),
])
def test_config_keys_that_load_files_are_refused(exported, tmp_path, key, value, message):  # noqa: F811
    folder = copy_export(exported, tmp_path / 'cfg')
    _edit_config(folder, lambda c: c['model_args']['backbone'].update({key: value}))
    with pytest.raises(ConfigError, match=message):
        zoo.load(f'local-dir:{folder}', pretrained=False)


def test_truncated_safetensors(exported, tmp_path):  # noqa: F811
    folder = copy_export(exported, tmp_path / 'trunc')
    weights = folder / 'model.safetensors'
    data = weights.read_bytes()
    weights.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"'{weights}' is not a valid safetensors file.*truncated or corrupt"):
        zoo.load(f'local-dir:{folder}')


def test_garbage_weights_file(exported, tmp_path):  # noqa: F811
    folder = copy_export(exported, tmp_path / 'garbage')
    (folder / 'model.safetensors').write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError, match='model.safetensors.*not a valid safetensors file'):
        zoo.load(f'local-dir:{folder}')


def test_missing_tensor(exported, tmp_path):  # noqa: F811
    folder = copy_export(exported, tmp_path / 'missing')
    state = load_file(folder / 'model.safetensors')
    dropped = sorted(k for k in state if k.startswith('head.fc.'))[0]
    del state[dropped]
    save_file(state, folder / 'model.safetensors')
    with pytest.raises(CheckpointError, match=rf"model.safetensors' does not fit this model: 1 missing key\(s\), "
                                              rf"e.g. {dropped}"):
        zoo.load(f'local-dir:{folder}')


def test_shape_mismatch(exported, tmp_path):  # noqa: F811
    folder = copy_export(exported, tmp_path / 'shape')

    def five_classes(c: dict) -> None:
        c['model_args']['head']['num_classes'] = 5
        c['num_classes'] = 5
        c['class_names'] = None

    _edit_config(folder, five_classes)
    with pytest.raises(CheckpointError, match=r"model.safetensors' does not fit this model: .*shape mismatch.*"
                                              r"head.fc.weight: checkpoint \[4, 96\] vs model \[5, 96\]"):
        zoo.load(f'local-dir:{folder}')


def test_unexpected_tensor(exported, tmp_path):  # noqa: F811
    folder = copy_export(exported, tmp_path / 'extra')
    state = load_file(folder / 'model.safetensors')
    state['head.extra.weight'] = torch.zeros(2)
    save_file(state, folder / 'model.safetensors')
    with pytest.raises(CheckpointError, match=r'1 unexpected key\(s\), e.g. head.extra.weight'):
        zoo.load(f'local-dir:{folder}')


def test_sha256_mismatch_names_the_file(exported):  # noqa: F811
    from zoo.models.weights import verify_sha256

    weights = exported / 'model.safetensors'
    with pytest.raises(CheckpointError, match=rf"'{weights}' \(test\) has sha256 [0-9a-f]{{64}}, but 0+ was expected"):
        verify_sha256(weights, '0' * 64, 'test')
    with pytest.raises(CheckpointError, match='has sha256'):
        zoo.ZooModel.from_pretrained(exported, sha256='0' * 64)


@pytest.mark.parametrize('damage,message', [
    (lambda p: p.write_text(p.read_text()[:40]), 'is not valid JSON.*truncated'),
    (lambda p: p.write_text('[1, 2]'), 'must hold a JSON object'),
    (lambda p: p.write_text('{"format": "timm"}'), 'is not an xzoo model config'),
    (lambda p: p.unlink(), 'config.json.*does not exist'),
])
def test_damaged_config_json(exported, tmp_path, damage, message):  # noqa: F811
    folder = copy_export(exported, tmp_path / 'cfg')
    damage(folder / 'config.json')
    with pytest.raises(ConfigError, match=message):
        zoo.load(f'local-dir:{folder}')


def test_local_dir_that_does_not_exist(tmp_path):
    with pytest.raises(CheckpointError, match="is not a folder"):
        zoo.load(f'local-dir:{tmp_path / "nope"}')
