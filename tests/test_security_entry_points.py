"""Every entry point that turns a string into a component refuses a module path (``'os.getcwd'``): registered
names only, never an import.

Config files (``config.json`` of an export: ``architecture``, ``model_args.*.type``, ``explainer.method``,
``preprocessing.pipeline[].type``) are covered by the malicious-export corpus in tests/test_security_exports.py;
this file covers the Python API, the registries, the tools' flags, ``--cfg-options`` and index files.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

import zoo
from registry import ALL
from registry.errors import SecurityError, UnknownTypeError, XZooError
from zoo.cli import run_cli

from .conftest import load_tool
from .test_bad_input import TINY

DOTTED = ('os.getcwd', 'os.system', 'builtins.exec', 'mmengine.os.getcwd', 'zoo.os.getcwd', 'subprocess.getoutput')


@pytest.fixture(autouse=True)
def _no_call_of_module_paths(monkeypatch):
    """A call of ``os.system`` or ``subprocess.getoutput`` during a test fails it: a refusal happens before any
    import or call (``os.getcwd`` itself is left alone: pytest needs it)."""
    import subprocess

    def forbidden(*args, **kwargs):
        raise AssertionError('a module path was imported and called')

    monkeypatch.setattr(os, 'system', forbidden)
    monkeypatch.setattr(subprocess, 'getoutput', forbidden)


@pytest.fixture(scope='module')
def model():
    from registry import MODELS

    return MODELS.build(dict(type='ImageClassifier', class_names=['cat', 'dog'],
                             backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                             head=dict(type='LinearClsHead', num_classes=2)))


@pytest.mark.parametrize('name', DOTTED)
def test_python_api_builders(name):
    from zoo.explainers import build_explainer, explainer_class
    from zoo.metrics import build_explanation_metric

    for build in (build_explainer, build_explanation_metric, explainer_class):
        with pytest.raises(UnknownTypeError, match='never module paths'):
            build(name)
        with pytest.raises(UnknownTypeError, match='never module paths'):
            build({'type': name})


@pytest.mark.parametrize('registry', sorted(ALL), ids=sorted(ALL))
def test_every_registry_resolves_registered_names_only(registry):
    reg = ALL[registry]
    for name in DOTTED:
        assert name not in reg and reg.find(name) is None
        with pytest.raises(UnknownTypeError, match='never module paths'):
            reg.get(name)
        with pytest.raises(UnknownTypeError):
            reg.build({'type': name})


def test_model_explain_method(model):
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(UnknownTypeError, match="No explainer 'os.getcwd'.*never module paths"):
        model.explain(x, method='os.getcwd')
    with pytest.raises(UnknownTypeError, match='never module paths'):
        model.explain(x, method={'type': 'os.system', 'command': 'true'})


def test_explanation_quality_metric_config():
    from registry import METRICS

    with pytest.raises(UnknownTypeError, match="No explainer 'os.getcwd'"):
        METRICS.build(dict(type='ExplanationQuality', explainers=['os.getcwd']))
    with pytest.raises(UnknownTypeError, match="No explanation metric 'os.getcwd'"):
        METRICS.build(dict(type='ExplanationQuality', explainers=['gradcam'], metrics=['os.getcwd']))


@pytest.fixture(scope='module')
def tiny(tmp_path_factory) -> dict[str, str]:
    """A config file and a checkpoint of the tiny model (no training)."""
    from registry import MODELS

    root = tmp_path_factory.mktemp('entry')
    Config(TINY).dump(str(root / 'tiny.py'))
    torch.save({'state_dict': MODELS.build(Config(TINY).model).state_dict(), 'meta': {}}, root / 'tiny.pth')
    from PIL import Image

    Image.new('RGB', (40, 30), 'red').save(root / 'red.png')
    return {'config': str(root / 'tiny.py'), 'ckpt': str(root / 'tiny.pth'), 'image': str(root / 'red.png'),
            'root': str(root)}


def _tool_error(tool: str, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        run_cli(load_tool(tool).main, argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and err.startswith('error: ') and '\n' not in err, err
    return err


@pytest.mark.parametrize('flags,message', [
    (['--explainers', 'os.getpid'], "No explainer 'os.getpid'"),
    (['--explainers', 'gradcam', '--explain-metrics', 'os.getcwd'], "No explanation metric 'os.getcwd'"),
])
def test_tools_test_flags(tiny, tmp_path, capsys, flags, message):
    err = _tool_error('test', [tiny['config'], tiny['ckpt'], '--work-dir', str(tmp_path / 'w'), *flags], capsys)
    assert message in err and 'never module paths' in err
    assert not (tmp_path / 'w').exists()  # refused before anything was built or written


def test_tools_explain_method(tiny, tmp_path, capsys):
    err = _tool_error('explain', [tiny['config'], 'none', tiny['image'], '--method', 'os.getcwd', '--out',
                                  str(tmp_path / 'out'), '--no-progress'], capsys)
    assert "No explainer 'os.getcwd'" in err
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('options', [
    ['model.type=os.getcwd'],
    ['model.backbone.type=os.system'],
    ['train_dataloader.dataset.type=posixpath.join'],
    ['custom_hooks.0.type=os.getcwd'],
    ['+custom_hooks.0._scope_=mmengine', 'custom_hooks.0.type=os.getcwd'],
    ['+visualizer._scope_=mmengine', '+visualizer.type=os.getcwd'],  # mmengine's root registry would import it
    ['+log_processor.type=os.getcwd'],
    ['+runner_type=os.getcwd'],
    ['optim_wrapper.optimizer.type=torch.optim.SGD'],
])
def test_cfg_options_types(tiny, tmp_path, capsys, options):
    err = _tool_error('train', [tiny['config'], '--work-dir', str(tmp_path / 'w'), '--cfg-options', *options],
                      capsys)
    assert 'module path' in err, err
    assert not list((tmp_path / 'w').rglob('*.pth')) if (tmp_path / 'w').exists() else True


def test_index_files(tmp_path):
    """An index names models and files; it never turns a string into code, a file outside its folder or a bad repo."""
    from zoo.hub.index import read_index

    export = json.loads((Path(zoo.__file__).parent / 'hub/configs/baseline-resnet50-cub.json').read_text())
    export['architecture'] = 'os.getcwd'
    (tmp_path / 'configs').mkdir()
    (tmp_path / 'configs' / 'evil.json').write_text(json.dumps(export))
    index = tmp_path / 'index.json'

    def write(*entries):
        index.write_text(json.dumps({'format_version': 1, 'models': list(entries)}))

    write({'name': 'sec-test-evil', 'config': 'configs/evil.json', 'method': 'os.system'})
    from zoo.hub import index as index_module

    zoo.register_index(index)
    try:
        assert 'sec-test-evil' in zoo.list_models('sec-test-*')
        with pytest.raises(SecurityError, match="architecture 'os.getcwd' is not the name of a registered"):
            zoo.load('sec-test-evil', pretrained=False)
    finally:  # the zoo's index is process-wide: leave it as it was
        with index_module._lock:
            index_module._entries.pop('sec-test-evil', None)
            if str(index) in index_module._indexes:
                index_module._indexes.remove(str(index))
    assert zoo.list_models('os.getcwd') == []
    for entry, message in [({'name': 'x', 'config': '../outside.json'}, 'inside the index'),
                           ({'name': 'x', 'config': '/etc/hostname'}, 'inside the index'),
                           ({'name': 'x', 'hf_hub': '../../etc'}, 'must be a Hub repo id')]:
        write(entry)
        with pytest.raises(XZooError, match=message):
            read_index(index)
