"""timm backbone adapter and ImageClassifier."""
from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from registry import BACKBONES, MODELS
from registry.errors import CheckpointError, ConfigError
from zoo.structures import DataSample


def _classifier(name: str = 'resnet18', num_classes: int = 3, **backbone) -> torch.nn.Module:
    return MODELS.build(dict(type='ImageClassifier',
                             backbone=dict(type='TimmBackbone', model_name=name, **backbone),
                             head=dict(type='LinearClsHead', num_classes=num_classes)))


@pytest.mark.parametrize('name, layer, grid', [
    ('resnet18', 'model.layer4', (2, 2)),
    ('tf_efficientnet_lite0', 'model.bn2', (2, 2)),
    ('test_convnext', 'model.stages.3', (2, 2)),
    ('test_vit', 'model.blocks.5.norm1', (4, 4)),
    ('test_mambaout', 'model.stages.3', (2, 2)),  # NHWC model: the adapter returns NCHW
])
def test_backbone_feature_map_pooled_and_default_layer(name, layer, grid):
    bb = BACKBONES.build(dict(type='TimmBackbone', model_name=name))
    out = bb(torch.randn(2, 3, 64, 64))
    assert out.feature_map.shape[0] == 2 and tuple(out.feature_map.shape[2:]) == grid
    assert out.pooled.shape == (2, bb.num_features)
    assert bb.default_target_layer == layer
    dict(bb.named_modules())[layer]  # the name resolves


def test_timm_options_pass_through():
    bb = BACKBONES.build(dict(type='TimmBackbone', model_name='resnet18', output_stride=16, drop_path_rate=0.1))
    assert bb(torch.randn(1, 3, 64, 64)).feature_map.shape[-1] == 4
    assert bb.model.layer4[0].drop_path.drop_prob > 0


def test_local_weights_file_is_loaded(tmp_path):
    ref = timm.create_model('resnet18', num_classes=0)
    path = tmp_path / 'w.safetensors'
    save_file(ref.state_dict(), str(path))
    bb = BACKBONES.build(dict(type='TimmBackbone', model_name='resnet18', pretrained=str(path)))
    for k, v in ref.state_dict().items():
        assert torch.equal(v, bb.model.state_dict()[k]), k


def test_bad_names_and_weights_are_explained(tmp_path):
    with pytest.raises(ConfigError, match="timm has no model 'resnet5O'. Did you mean 'resnet50'"):
        BACKBONES.build(dict(type='TimmBackbone', model_name='resnet5O'))
    with pytest.raises(CheckpointError, match='does not exist'):
        BACKBONES.build(dict(type='TimmBackbone', model_name='resnet18', pretrained=str(tmp_path / 'x.pth')))
    save_file({'fc.weight': torch.zeros(2, 2)}, str(tmp_path / 'wrong.safetensors'))
    with pytest.raises(CheckpointError, match='does not fit timm model'):
        BACKBONES.build(dict(type='TimmBackbone', model_name='resnet18',
                             pretrained=str(tmp_path / 'wrong.safetensors')))


def test_pretrained_from_the_hub_offline_fails_fast_with_advice():
    with pytest.raises(CheckpointError, match='model.backbone.pretrained=False'):
        BACKBONES.build(dict(type='TimmBackbone', model_name='resnet18', pretrained=True))


def test_freeze_until_freezes_everything_before_the_boundary():
    bb = BACKBONES.build(dict(type='TimmBackbone', model_name='resnet18', freeze_until='layer3'))
    frozen = {n for n, p in bb.model.named_parameters() if not p.requires_grad}
    assert any(n.startswith('layer2') for n in frozen) and 'conv1.weight' in frozen
    assert not any(n.startswith(('layer3', 'layer4')) for n in frozen)
    bb.train()
    assert not bb.model.bn1.training and bb.model.layer3[0].bn1.training


def test_classifier_modes_and_metadata():
    model = _classifier()
    model.class_names = ['a', 'b', 'c']
    x = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    samples = [DataSample().set_gt_label(0), DataSample().set_gt_label(2)]
    data = model.data_preprocessor(dict(inputs=list(x), data_samples=samples), True)
    assert set(model(**data, mode='loss')) == {'loss_cls'}
    preds = model(**data, mode='predict')
    assert preds[0].pred_score.shape == (3,) and abs(float(preds[0].pred_score.sum()) - 1) < 1e-5
    logits = model(data['inputs'])
    assert torch.equal(preds[1].pred_label, logits[1].argmax())
    assert model.explain_meta['target_layer'] == 'backbone.model.layer4'
    assert model.explain_meta['class_names'] == ['a', 'b', 'c']
    with pytest.raises(ConfigError, match='2 class names given but the head predicts 3'):
        model.class_names = ['a', 'b']


def test_default_normalisation_comes_from_timm():
    model = _classifier('tf_efficientnet_lite0')  # timm: mean = std = 0.5
    assert torch.allclose(model.data_preprocessor.mean.flatten(), torch.full((3,), 127.5))


def test_classifier_equals_plain_timm_model_with_same_weights():
    model = _classifier('resnet18', 5).eval()
    ref = timm.create_model('resnet18', num_classes=5).eval()
    state = {k[len('backbone.model.'):]: v for k, v in model.state_dict().items() if k.startswith('backbone.model.')}
    state.update({'fc.weight': model.head.fc.weight, 'fc.bias': model.head.fc.bias})
    ref.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(model(x), ref(x), atol=1e-6)


def test_inference_state_dict_has_no_alignment_heads():
    model = _classifier()
    model.alignment_heads.append(torch.nn.Linear(2, 2))
    assert any(k.startswith('alignment_heads.') for k in model.state_dict())
    assert not any(k.startswith('alignment_heads.') for k in model.inference_state_dict())


def test_default_layer_is_found_for_a_model_of_another_dtype():
    bb = BACKBONES.build(dict(type='TimmBackbone', model_name='resnet18')).double().train()
    assert bb.default_target_layer == 'model.layer4'
    assert bb.training and bb.model.layer4.training  # the probe restores every module's mode
