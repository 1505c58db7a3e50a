"""Registries: scope, lazy locations, plugins through entry points, and errors meant for people."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import DefaultScope

import registry
from registry import HEADS, MODELS, OPTIMIZERS, SCOPE
from registry.errors import ConfigError, UnknownTypeError

from .conftest import ROOT


def test_every_registry_is_in_the_project_scope():
    expected = {'MODELS', 'BACKBONES', 'HEADS', 'LOSSES', 'TEXT_ENCODERS', 'EXPLAINERS', 'METRICS', 'DATASETS',
                'TRANSFORMS', 'HOOKS', 'EXPLANATION_METRICS'}
    assert expected <= set(registry.ALL)
    for name, reg in registry.ALL.items():
        assert reg.scope == SCOPE, name
    # children of mmengine's roots, so the Runner finds them under default_scope='zoo'
    assert MMENGINE_MODELS._children[SCOPE] is MODELS


def test_registry_package_never_imports_zoo():
    code = 'import sys, registry; assert not any(m == "zoo" or m.startswith("zoo.") for m in sys.modules), 1'
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)


def test_import_zoo_is_light():
    """`import zoo` must stay fast: it may not pull torch, timm, open_clip, mmengine or POT."""
    code = ('import sys, zoo; heavy = [m for m in ("torch", "timm", "open_clip", "mmengine", "ot") '
            'if m in sys.modules]; assert not heavy, heavy')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)


def test_names_resolve_without_imports_and_through_the_mmengine_root():
    code = textwrap.dedent('''
        from mmengine.registry import MODELS, DefaultScope
        import registry
        with DefaultScope.overwrite_default_scope('zoo'):
            cls = MODELS.get('zoo.ImageClassifier')
        assert cls.__name__ == 'ImageClassifier', cls
        assert registry.HEADS.get('LinearClsHead').__name__ == 'LinearClsHead'
    ''')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)


def test_mmengine_components_found_through_parents():
    assert OPTIMIZERS.get('SGD') is torch.optim.SGD
    assert MODELS.get('ImageClassifier').__name__ == 'ImageClassifier'


def test_building_under_the_scope_prints_no_warnings():
    import logging

    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        with DefaultScope.overwrite_default_scope(SCOPE):
            MMENGINE_MODELS.build(dict(type='ImageClassifier', backbone=dict(type='TimmBackbone',
                                       model_name='test_resnet'), head=dict(type='LinearClsHead', num_classes=2)))
            from mmengine.registry import OPTIMIZERS as ROOT_OPT
            ROOT_OPT.build(dict(type='SGD', lr=0.1, params=[torch.nn.Parameter(torch.zeros(1))]))
    finally:
        logger.removeHandler(handler)
    warnings = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert not warnings, warnings


def test_unknown_type_message_names_registry_closest_names_and_remedy():
    with pytest.raises(UnknownTypeError) as info:
        HEADS.build(dict(type='LinearClsHaed', num_classes=2, in_channels=3))
    msg = str(info.value)
    assert msg.startswith("HEADS has no 'LinearClsHaed'.")
    assert "Did you mean 'LinearClsHead'?" in msg
    assert 'Registered: ' in msg and 'xzoo.plugins' in msg and 'custom_imports' in msg
    assert '\n' not in msg


def test_unknown_type_through_the_root_registry_is_friendly_too():
    with DefaultScope.overwrite_default_scope(SCOPE), pytest.raises(UnknownTypeError, match='MODELS has no'):
        MMENGINE_MODELS.build(dict(type='ImageClasifier'))


def test_unknown_and_missing_arguments_name_the_component():
    with pytest.raises(ConfigError, match=r"HEADS 'LinearClsHead' got unknown argument 'num_clases'\. "
                                          r"Did you mean 'num_classes'\?"):
        HEADS.build(dict(type='LinearClsHead', num_clases=3, in_channels=4))
    with pytest.raises(ConfigError, match="needs argument 'num_classes'"):
        HEADS.build(dict(type='LinearClsHead', in_channels=4))
    # default_args count as given
    assert HEADS.build(dict(type='LinearClsHead', num_classes=3), default_args=dict(in_channels=4)).fc.in_features == 4


def test_contains_does_not_raise():
    assert 'LinearClsHead' in HEADS
    assert 'NoSuchHead' not in HEADS


def _write_plugin(tmp_path: Path, group: str = 'xzoo.plugins') -> Path:
    pkg = tmp_path / 'site' / 'xzoo_demo_plugin'
    pkg.mkdir(parents=True)
    (pkg / '__init__.py').write_text('')
    (pkg / 'components.py').write_text(textwrap.dedent('''
        import torch
        from registry import BACKBONES, EXPLAINERS
        from zoo.models.backbones import BackboneOutput

        @BACKBONES.register_module()
        class TinyPluginBackbone(torch.nn.Module):
            """A plugin backbone: global average of the input channels."""
            num_features = 3
            def forward(self, x):
                return BackboneOutput(feature_map=x, pooled=x.mean((2, 3)), raw=x)

        @EXPLAINERS.register_module()
        class PluginExplainer:
            pass
    '''))
    dist = tmp_path / 'site' / 'xzoo_demo_plugin-0.1.dist-info'
    dist.mkdir()
    (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: xzoo-demo-plugin\nVersion: 0.1\n')
    (dist / 'entry_points.txt').write_text(f'[{group}]\ndemo = xzoo_demo_plugin.components\n')
    return tmp_path / 'site'


def test_plugin_entry_point_component_builds_by_name_from_a_config(tmp_path):
    site = _write_plugin(tmp_path)
    config = tmp_path / 'plugin_cfg.py'
    config.write_text(textwrap.dedent('''
        model = dict(type='ImageClassifier', backbone=dict(type='TinyPluginBackbone'),
                     head=dict(type='LinearClsHead', num_classes=2))
    '''))
    code = textwrap.dedent(f'''
        import sys, torch
        from zoo.apis import load_config
        from registry import MODELS, EXPLAINERS
        cfg = load_config({str(config)!r})
        model = MODELS.build(cfg.model)            # no import of the plugin anywhere
        assert type(model.backbone).__name__ == 'TinyPluginBackbone'
        assert model(torch.rand(2, 3, 8, 8)).shape == (2, 2)
        assert EXPLAINERS.get('PluginExplainer').__module__ == 'xzoo_demo_plugin.components'
        print('ok')
    ''')
    env = {'PYTHONPATH': f'{site}:{ROOT}', 'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin:/bin'}
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'


def test_broken_plugin_warns_and_is_named_in_the_error(tmp_path):
    site = _write_plugin(tmp_path)
    (site / 'xzoo_demo_plugin' / 'components.py').write_text('raise ImportError("needs libfoo")\n')
    code = textwrap.dedent('''
        import warnings
        from registry import BACKBONES
        from registry.errors import UnknownTypeError
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try:
                BACKBONES.get('TinyPluginBackbone')
            except UnknownTypeError as exc:
                msg = str(exc)
        assert any('failed to import' in str(w.message) for w in caught), caught
        assert 'demo (xzoo_demo_plugin.components: ImportError: needs libfoo)' in msg, msg
        assert BACKBONES.get('TimmBackbone').__name__ == 'TimmBackbone'   # others still work
        print('ok')
    ''')
    env = {'PYTHONPATH': f'{site}:{ROOT}', 'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin:/bin'}
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
