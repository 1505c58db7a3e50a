"""A LICO ImageClassifier: losses, one text forward per step, and inference that is exactly timm's model."""
from __future__ import annotations

import pytest
import timm
import torch

from registry import MODELS
from registry.errors import ConfigError
from zoo.structures import DataSample

CLASSES = ['cat', 'dog', 'red winged blackbird']


def _lico_cfg(tiny_clip: str, **over) -> dict:
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(type='TimmBackbone', model_name='resnet10t', pretrained=False),
        head=dict(type='LinearClsHead', num_classes=3),
        text_branch=dict(type='LICOTextBranch',
                         encoder=dict(type='OpenCLIPTextEncoder', model_name=tiny_clip, pretrained=None),
                         prompt=dict(type='RolledPromptLearner', n_ctx=4)),
        alignment_heads=[dict(type='ManifoldAlignmentHead', weight=10.0),
                         dict(type='OTAlignmentHead', weight=1.0)],
        alignment_defaults=dict(spatial_size=2 * 2),  # resnet10t at 64 px
        class_names=CLASSES)
    cfg.update(over)
    return cfg


def _batch(n: int = 6, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 64, 64, generator=gen)
    return x, [DataSample().set_gt_label(i % 3) for i in range(n)]


def test_lico_losses_and_gradients(tiny_clip: str) -> None:
    torch.manual_seed(0)
    model = MODELS.build(_lico_cfg(tiny_clip))
    assert model.alignment_heads[1].projection[0].in_features == 48  # text_dim from the branch
    calls = []
    model.text_branch.register_forward_hook(lambda *_: calls.append(1))
    losses = model.loss(*_batch())
    assert set(losses) == {'loss_cls', 'loss_mm', 'loss_ot'} and len(calls) == 1  # one text forward per step
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads['text_branch.prompt.ctx'].abs().sum() > 0
    assert grads['alignment_heads.0.temperature'] is not None
    assert grads['alignment_heads.1.projection.0.weight'].abs().sum() > 0
    assert grads['backbone.model.conv1.0.weight'].abs().sum() > 0
    assert all(g is None for n, g in grads.items() if n.startswith('text_branch.encoder'))  # frozen CLIP


def test_trained_lico_model_predicts_like_plain_timm(tiny_clip: str) -> None:
    torch.manual_seed(0)
    model = MODELS.build(_lico_cfg(tiny_clip))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for step in range(3):
        opt.zero_grad()
        sum(model.loss(*_batch(seed=step)).values()).backward()
        opt.step()
    model.eval()
    weights = model.inference_state_dict()
    assert not [k for k in weights if k.startswith(('text_branch', 'alignment_heads'))]
    plain = timm.create_model('resnet10t', num_classes=3).eval()
    backbone = {k[len('backbone.model.'):]: v for k, v in weights.items() if k.startswith('backbone.model.')}
    head = {k[len('head.'):]: v for k, v in weights.items() if k.startswith('head.fc.')}
    plain.load_state_dict({**backbone, **head}, strict=True)
    x, _ = _batch(seed=9)
    scores = torch.stack([s.pred_score for s in model.predict(x)])
    with torch.no_grad():
        assert torch.allclose(scores, plain(x).softmax(-1), atol=1e-6)
        assert torch.allclose(model(x), plain(x), atol=1e-5)  # mode='tensor'


def test_class_names_reach_the_text_branch_and_defaults_are_filtered(tiny_clip: str) -> None:
    model = MODELS.build(_lico_cfg(tiny_clip, class_names=None))
    assert model.text_branch.class_names is None
    model.class_names = ['a', 'b', 'c']
    assert model.text_branch.class_names == ['a', 'b', 'c']
    # ManifoldAlignmentHead takes neither in_channels, text_dim nor spatial_size: none is passed to it
    assert model._alignment_defaults(dict(type='ManifoldAlignmentHead')) == {}
    assert set(model._alignment_defaults(dict(type='OTAlignmentHead'))) == {'text_dim', 'spatial_size'}


def test_alignment_heads_without_text_branch_explain_themselves(tiny_clip: str) -> None:
    model = MODELS.build(_lico_cfg(tiny_clip, text_branch=None, alignment_heads=[dict(type='ManifoldAlignmentHead')]))
    with pytest.raises(ConfigError, match='text_branch'):
        model.loss(*_batch())


def test_no_text_branch_without_alignment_heads(tiny_clip: str) -> None:
    # what the test and inference tools build from a LICO config: backbone + head only, no text encoder
    model = MODELS.build(_lico_cfg(tiny_clip, alignment_heads=[]))
    assert model.text_branch is None and not any(k.startswith('text_branch') for k in model.state_dict())
