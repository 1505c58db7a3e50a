"""GradientShareHook: each loss term's share of the backbone gradient, measured without disturbing training."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

from registry import HOOKS, MODELS
from registry.errors import ConfigError
from zoo.engine.grad_share import gradient_norms
from zoo.structures import DataSample


def _model(tiny_clip: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='TimmBackbone', model_name='resnet10t', pretrained=False),  # BatchNorm buffers
        head=dict(type='LinearClsHead', num_classes=3, dropout=0.3),                     # dropout
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3),
        text_branch=dict(type='LICOTextBranch',
                         encoder=dict(type='OpenCLIPTextEncoder', model_name=tiny_clip, pretrained=None),
                         prompt=dict(type='SharedPromptLearner', n_ctx=4, class_position='front', shuffle=True)),
        alignment_heads=[dict(type='ManifoldAlignmentHead', sign=-1, temperature_init=0.5, learn_temperature=False),
                         dict(type='OTAlignmentHead', text_points='per_token')],               # MLP dropout 0.5
        alignment_defaults=dict(spatial_size=2 * 2), class_names=['cat', 'dog', 'red winged blackbird']))


def _batch(seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (3, 64, 64), generator=gen, dtype=torch.uint8) for _ in range(6)]
    return dict(inputs=images, data_samples=[DataSample().set_gt_label(i % 3) for i in range(6)])


def _runner(model: torch.nn.Module, name: str) -> SimpleNamespace:
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    return SimpleNamespace(model=model, optim_wrapper=wrapper, message_hub=MessageHub.get_instance(name), iter=0)


def test_probe_measures_the_step_without_changing_training(tiny_clip: str) -> None:
    hook = HOOKS.build(dict(type='GradientShareHook', interval=1))
    plain = _model(tiny_clip).train()
    probed = copy.deepcopy(plain)
    runs = {'plain': _runner(plain, 'grad_share_plain'), 'probed': _runner(probed, 'grad_share_probed')}
    for step in range(2):
        batch = _batch(step)
        torch.manual_seed(10 + step)
        runs['plain'].model.train_step(batch, runs['plain'].optim_wrapper)
        torch.manual_seed(10 + step)
        norms = hook.probe(runs['probed'], batch)
        if step == 1:
            # the probe saw the step's own dropout masks, prompt permutation and BatchNorm statistics
            twin, rng = copy.deepcopy(probed), torch.get_rng_state()
            data = twin.data_preprocessor(batch, True)
            again = gradient_norms(twin.loss(**data), [p for p in twin.backbone.parameters() if p.requires_grad])
            assert again == pytest.approx(norms, rel=1e-5)
            torch.set_rng_state(rng)
        runs['probed'].model.train_step(batch, runs['probed'].optim_wrapper)
    for (name, a), b in zip(plain.state_dict().items(), probed.state_dict().values()):
        assert torch.equal(a, b), name  # weights and buffers identical: the probe left no trace
    assert set(norms) == {'loss_cls', 'loss_mm', 'loss_ot'} and all(v > 0 for v in norms.values())
    hub = runs['probed'].message_hub
    shares = [hub.get_scalar(f'train/grad_share/{t}').current() for t in ('cls', 'mm', 'ot')]
    assert sum(shares) == pytest.approx(1.0)
    assert hub.get_scalar('train/grad_l2/mm').current() == pytest.approx(norms['loss_mm'])


def test_probe_interval_and_errors(tiny_clip: str) -> None:
    model = _model(tiny_clip).train()
    runner = _runner(model, 'grad_share_interval')
    hook = HOOKS.build(dict(type='GradientShareHook', interval=3))
    for it in range(5):
        runner.iter = it
        hook.before_train_iter(runner, it, _batch(it))
    assert len(runner.message_hub.get_scalar('train/grad_share/mm').data[0]) == 2  # iterations 0 and 3
    with pytest.raises(ConfigError, match='interval'):
        HOOKS.build(dict(type='GradientShareHook', interval=0))
    with pytest.raises(ConfigError, match="no submodule 'trunk'"):
        HOOKS.build(dict(type='GradientShareHook', module='trunk')).probe(runner, _batch(0))


def test_a_term_that_does_not_reach_the_backbone_has_no_share() -> None:
    w = torch.nn.Parameter(torch.ones(3))
    other = torch.nn.Parameter(torch.ones(1))
    losses = {'loss_a': (w * 2).sum(), 'loss_b': [other.sum(), other.sum()], 'acc': torch.tensor(1.0)}
    assert gradient_norms(losses, [w]) == {'loss_a': pytest.approx(2 * 3 ** 0.5), 'loss_b': 0.0}
