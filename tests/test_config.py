"""Configs: every recipe loads and resolves; --cfg-options overrides are checked against the config."""
from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

from registry.errors import ConfigError, UnknownTypeError
from zoo.apis.config import apply_cfg_options, load_config, parse_cfg_options, validate_config

from .conftest import ROOT

RECIPES = sorted(p for p in (ROOT / 'configs').glob('*.py'))


def _cfg() -> Config:
    return Config(dict(model=dict(type='ImageClassifier', head=dict(num_classes=200)),
                       pipeline=[dict(type='Resize', size=4), dict(type='PackInputs')], topk=(1, 5), lr=0.1))


@pytest.mark.parametrize('path', RECIPES, ids=lambda p: p.name)
def test_every_recipe_loads_and_every_type_resolves(path: Path):
    cfg = load_config(path)
    assert cfg.default_scope == 'zoo'
    validate_config(cfg)  # resolves model/dataset/metric types and checks their arguments


def test_recipes_follow_the_naming_scheme():
    for path in RECIPES:
        assert len(path.stem.split('_')) == 3, f'{path.name}: expected {{backbone}}_{{method}}_{{dataset}}.py'


def test_resnet50_baseline_cub_is_the_mmpretrain_cub_recipe():
    cfg = load_config(ROOT / 'configs/resnet50_baseline_cub.py')
    assert cfg.model.backbone.model_name == 'resnet50' and cfg.model.backbone.pretrained is True
    assert cfg.model.head.num_classes == 200
    assert cfg.train_dataloader.dataset.type == 'CUB200' and cfg.train_dataloader.batch_size == 8
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005,
                                               nesterov=True)
    assert cfg.train_cfg.max_epochs == 100
    assert [s.type for s in cfg.param_scheduler] == ['LinearLR', 'CosineAnnealingLR']
    assert cfg.test_dataloader.dataset.pipeline[1] == dict(type='CenterCrop', size=448)


def test_override_values_are_parsed_like_mmengine():
    parsed = parse_cfg_options(['a=1', 'b=0.5', 'c=true', 'd=None', 'e=[1,2]', 'f=(1,2)', 'g=x,y', 'h=text'])
    assert parsed == {'a': 1, 'b': 0.5, 'c': True, 'd': None, 'e': [1, 2], 'f': (1, 2), 'g': ['x', 'y'],
                      'h': 'text'}


def test_override_existing_nested_and_list_keys():
    cfg = _cfg()
    apply_cfg_options(cfg, ['model.head.num_classes=10', 'pipeline.0.size=8', 'lr=0.01'])
    assert cfg.model.head.num_classes == 10 and cfg.pipeline[0].size == 8 and cfg.lr == 0.01


def test_unknown_key_is_an_error_with_did_you_mean():
    with pytest.raises(ConfigError) as info:
        apply_cfg_options(_cfg(), ['model.head.num_clases=10'])
    msg = str(info.value)
    assert "no key 'model.head.num_clases'" in msg and "Did you mean 'num_classes'?" in msg
    assert '+model.head.num_clases=VALUE' in msg  # says how to add it on purpose


def test_plus_prefix_adds_a_key_on_purpose():
    cfg = _cfg()
    apply_cfg_options(cfg, ['+model.head.dropout=0.2', '+new.nested.key=1'])
    assert cfg.model.head.dropout == 0.2 and cfg.new.nested.key == 1


@pytest.mark.parametrize('option, fragment', [
    ('model.head', 'KEY=VALUE'),
    ('=3', 'not a valid key'),
    ('model..head=3', 'not a valid key'),
    ('pipeline.5.size=3', 'is a list of 2 items'),
    ('pipeline.x.size=3', 'is a list of 2 items'),
    ('lr.value=3', "'lr' is a float"),
    ('model.head.num_classes=[1,2', 'cannot parse value'),
])
def test_malformed_overrides_are_one_line_config_errors(option, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        apply_cfg_options(_cfg(), [option])
    assert fragment in str(info.value) and '\n' not in str(info.value)


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(ConfigError, match='does not exist'):
        load_config(tmp_path / 'nope.py')
    bad = tmp_path / 'bad.py'
    bad.write_text('model = dict(type=\n')
    with pytest.raises(ConfigError, match='syntax error'):
        load_config(bad)


def test_validate_names_the_unknown_component():
    cfg = load_config(ROOT / 'configs/resnet50_baseline_cub.py', ['model.head.type=LinearHeadd'])
    cfg.model.type = 'ImageClassifier'
    from registry import HEADS
    with pytest.raises(UnknownTypeError, match="HEADS has no 'LinearHeadd'. Did you mean 'LinearClsHead'"):
        HEADS.check_args(cfg.model.head)
    cfg = load_config(ROOT / 'configs/resnet50_baseline_cub.py', ['model.type=ImageClassifer'])
    with pytest.raises(UnknownTypeError, match="MODELS has no 'ImageClassifer'"):
        validate_config(cfg)
    cfg = load_config(ROOT / 'configs/resnet50_baseline_cub.py', ['+train_dataloader.dataset.spilt=train'])
    with pytest.raises(ConfigError, match="DATASETS 'CUB200' got unknown argument 'spilt'"):
        validate_config(cfg)
