"""ProtoPNet's stages with the real Runner: what trains in each stage, the push inside the schedule, exact resume
from checkpoints before and after the push, and the schedule's config errors."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from registry.errors import ConfigError
from zoo.models.protopnet.training import parse_stages

SHAPES = dict(type='SyntheticShapes', image_size=64, colours=('red', 'green'), shapes=('circle', 'square'))
STAGES = [dict(stage='warm', epochs=1), dict(stage='joint', epochs=1), dict(stage='push'),
          dict(stage='last_layer', epochs=1)]


def _config(**overrides) -> dict:
    cfg = dict(
        default_scope='zoo',
        model=dict(type='ProtoPNet', num_classes=4, prototypes_per_class=2, prototype_dim=8,
                   backbone=dict(type='TimmBackbone', model_name='test_resnet')),
        train_dataloader=dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
                              dataset=dict(SHAPES, num_samples=12, split='train', pipeline=[
                                  dict(type='RandomHorizontalFlip', p=0.5)])),
        test_dataloader=dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                             dataset=dict(SHAPES, num_samples=4, split='test')),
        test_evaluator=dict(type='Accuracy'), test_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=3e-3, weight_decay=1e-3),
                           paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1),
                                                           'prototype_vectors': dict(decay_mult=0.0),
                                                           'last_layer': dict(lr_mult=0.1, decay_mult=0.0)})),
        train_cfg=dict(by_epoch=True, max_epochs=3),
        randomness=dict(seed=0, deterministic=True),
        custom_hooks=[dict(type='ProtoPNetStages', stages=STAGES, joint_lr_step=1, joint_lr_gamma=0.5)],
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=100)),
    )
    cfg.update(overrides)
    return cfg


def _state(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


def _params(state: dict, prefix: str) -> dict:
    return {k: v for k, v in state.items() if k.startswith(prefix) and 'running_' not in k
            and 'num_batches' not in k}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope='module')
def reference(tmp_path_factory) -> Path:
    """An uninterrupted 3-epoch run (warm, joint, push, last layer), with the initial weights saved."""
    import zoo
    from registry import MODELS

    work = tmp_path_factory.mktemp('protopnet_run')
    cfg = _config()
    zoo.train(cfg, work_dir=str(work / 'ref'))
    torch.manual_seed(0)
    init = MODELS.build(cfg['model']).state_dict()  # what the Runner's seed-0 build also starts from
    torch.save(init, work / 'init.pt')
    return work


@pytest.mark.slow
def test_each_stage_trains_its_parts_and_the_push_runs_in_the_schedule(reference):
    s1, s2, s3 = (_state(reference / 'ref' / f'epoch_{i}.pth') for i in (1, 2, 3))
    conn = torch.tensor([[1.0 if p // 2 == c else -0.5 for p in range(8)] for c in range(4)])
    # warm and joint: the last layer keeps its class connections
    assert torch.equal(s1['last_layer.weight'], conn) and torch.equal(s2['last_layer.weight'], conn)
    # warm: backbone parameters untouched; add-on and prototypes moved
    init = torch.load(reference / 'init.pt')
    assert _same(_params(s1, 'backbone.'), _params(init, 'backbone.'))
    assert not torch.equal(s1['prototype_vectors'], init['prototype_vectors'])
    # joint: the backbone moves; the push happened at the end of epoch 2 (its checkpoint holds it)
    assert not _same(_params(s2, 'backbone.'), _params(s1, 'backbone.'))
    assert int(s1['push_count']) == 0 and int(s2['push_count']) == 1 and bool((s2['push_index'] >= 0).all())
    # last layer: only the last layer moves
    for prefix in ('backbone.', 'add_on.', 'prototype_vectors'):
        assert _same(_params(s3, prefix), _params(s2, prefix)), prefix
    assert not torch.equal(s3['last_layer.weight'], conn)
    assert int(s3['push_count']) == 1


@pytest.mark.slow
@pytest.mark.parametrize('start', [1, 2])
def test_resume_before_or_after_the_push_equals_the_uninterrupted_run(reference, tmp_path, start):
    import zoo

    work = tmp_path / 'resumed'
    work.mkdir()
    shutil.copy(reference / 'ref' / f'epoch_{start}.pth', work / f'epoch_{start}.pth')
    (work / 'last_checkpoint').write_text(str(work / f'epoch_{start}.pth'))
    zoo.train(_config(), work_dir=str(work), resume='auto')
    ref, res = _state(reference / 'ref' / 'epoch_3.pth'), _state(work / 'epoch_3.pth')
    assert ref.keys() == res.keys()
    for key in ref:
        assert torch.allclose(ref[key].float(), res[key].float(), atol=1e-6, rtol=0), key


def test_stage_plans_and_their_errors():
    plan, pushes = parse_stages([dict(stage='warm', epochs=2), dict(stage='joint', epochs=1), dict(stage='push'),
                                 dict(stage='last_layer', epochs=2), dict(stage='joint', epochs=1),
                                 dict(stage='push')])
    assert plan == ['warm', 'warm', 'joint', 'last_layer', 'last_layer', 'joint'] and pushes == {2, 5}
    with pytest.raises(ConfigError, match='needs an epoch of training before it'):
        parse_stages([dict(stage='push'), dict(stage='warm', epochs=1)])
    with pytest.raises(ConfigError, match="stage one of warm, joint, last_layer, push; got 'fine_tune'"):
        parse_stages([dict(stage='fine_tune', epochs=1)])
    with pytest.raises(ConfigError, match='needs epochs, a positive integer'):
        parse_stages([dict(stage='warm')])
    with pytest.raises(ConfigError, match='takes no epochs'):
        parse_stages([dict(stage='warm', epochs=1), dict(stage='push', epochs=1)])


def test_max_epochs_must_match_the_stages(tmp_path):
    import zoo

    with pytest.raises(ConfigError, match='the stages last 3 epochs but train_cfg.max_epochs is 2'):
        zoo.train(_config(train_cfg=dict(by_epoch=True, max_epochs=2)), work_dir=str(tmp_path / 'w'))
