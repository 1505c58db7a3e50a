"""``torchrun --nproc_per_node=2 tools/{train,test}.py ... --launcher pytorch`` on CPU (gloo).

Training with 2 ranks x batch 2 is compared with one process x batch 4 (the same global batch, hence the same
samples in every step: DefaultSampler gives rank r the items r, r+2 of each block of 4 of the shuffled order).

Tolerance, and why: the model has no BatchNorm (ConvNeXt uses LayerNorm, per sample), no dropout and no random
augmentation, so both runs compute the same function of the same samples; they differ only in the order of the
floating-point sums (each rank averages its 2 losses and gloo averages the 2 gradients, instead of one mean over
4). Those rounding differences are about 1e-7 relative per step and SGD adds them up over 8 steps, so the
weights must agree to ``atol=1e-5, rtol=1e-4`` (measured: below 1e-6). With BatchNorm, each rank would normalise
with the statistics of its own 2 images: a different computation (use SyncBN, ``sync_bn='torch'``, to compare).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook

from registry import HOOKS, METRICS

from .conftest import ROOT
from .test_resume import _log, _run

TORCHRUN = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']


@HOOKS.register_module(force=True)
class RankMarkerHook(Hook):
    """Test-only: each rank leaves ``rank<r>`` in ``folder`` (outside the work_dir) when training starts."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def before_train(self, runner: Any) -> None:
        os.makedirs(self.folder, exist_ok=True)
        Path(self.folder, f'rank{get_rank()}').write_text(str(runner.world_size))


@METRICS.register_module(force=True)
class SampleCountMetric(BaseMetric):
    """Test-only: how many samples, and which, reached ``compute_metrics`` (after mmengine's gather)."""

    default_prefix = 'count'

    def process(self, data_batch: Any, data_samples: Any) -> None:
        for sample in data_samples:
            self.results.append(int(sample.get('sample_idx')))

    def compute_metrics(self, results: list) -> dict[str, float]:
        return {'samples': len(results), 'distinct': len(set(results))}


def _config(markers: Path | None = None) -> dict:
    data = dict(type='SyntheticShapes', num_samples=16, image_size=32, seed=5)
    test_data = dict(type='SyntheticShapes', num_samples=9, image_size=32, split='test')  # 9: ranks get 5 + 5
    return dict(
        default_scope='zoo',
        custom_imports=dict(imports=['tests.test_distributed'], allow_failed_imports=False),
        model=dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_convnext'),
                   head=dict(type='LinearClsHead', num_classes=9),
                   data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3)),
        train_dataloader=dict(batch_size=4, num_workers=0, dataset=data,
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        val_dataloader=dict(batch_size=4, num_workers=0, dataset=test_data,
                            sampler=dict(type='DefaultSampler', shuffle=False)),
        val_evaluator=dict(type='Accuracy', topk=(1, 3)),
        test_dataloader=dict(batch_size=4, num_workers=0, dataset=test_data,
                             sampler=dict(type='DefaultSampler', shuffle=False)),
        test_evaluator=[dict(type='Accuracy', topk=(1, 3)), dict(type='SampleCountMetric')],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        val_cfg=dict(),
        test_cfg=dict(),
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='RankMarkerHook', folder=str(markers))] if markers else [],
        randomness=dict(seed=1, deterministic=True),
    )


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1')
    return subprocess.run([*TORCHRUN, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def ddp_run(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp('ddp')
    cfg = tmp / 'ddp.py'
    Config(_config(tmp / 'ranks')).dump(str(cfg))
    out = _torchrun('tools/train.py', str(cfg), '--work-dir', str(tmp / 'work'), '--launcher', 'pytorch',
                    '--cfg-options', 'train_dataloader.batch_size=2')
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    assert out.stdout.count('Checkpoints and logs:') == 1  # rank 0 reports once; rc 0 = every rank finished
    single = tmp / 'single'
    assert _run(tmp, 'single', _config(), single) == 0, _log(tmp, 'single')
    return dict(tmp=tmp, cfg=cfg, work=tmp / 'work', single=single)


def test_torchrun_trains_on_two_cpu_ranks_and_only_rank0_writes(ddp_run):
    work = ddp_run['work']
    assert sorted(p.name for p in (ddp_run['tmp'] / 'ranks').iterdir()) == ['rank0', 'rank1']
    assert (ddp_run['tmp'] / 'ranks' / 'rank1').read_text() == '2'  # world size seen by the ranks
    # rank 0's files only: checkpoints, pointer, dumped config, one log folder with one log
    runs = [p for p in work.iterdir() if p.is_dir()]
    assert len(runs) == 1 and len(list(runs[0].glob('*.log'))) == 1
    assert sorted(p.name for p in work.iterdir() if p.is_file()) == ['ddp.py', 'epoch_1.pth', 'epoch_2.pth',
                                                                     'last_checkpoint']
    assert not [p for p in work.rglob('*') if 'rank' in p.name]
    log = next(runs[0].glob('*.log')).read_text()
    assert 'Distributed training: True' in log and 'Epoch(train) [1][4/4]' in log  # 16 images / (2 x 2)
    ckpt = torch.load(work / 'epoch_2.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == 8 and not any(k.startswith('module.') for k in ckpt['state_dict'])


def test_two_ranks_match_one_process_with_the_same_global_batch(ddp_run):
    a = torch.load(ddp_run['work'] / 'epoch_2.pth', map_location='cpu', weights_only=False)['state_dict']
    b = torch.load(ddp_run['single'] / 'epoch_2.pth', map_location='cpu', weights_only=False)['state_dict']
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4, msg=lambda m, k=key: f'{k}: {m}')
    first = torch.load(ddp_run['work'] / 'epoch_1.pth', map_location='cpu', weights_only=False)['state_dict']
    moved = max(float((a[k] - first[k]).abs().max()) for k in a if a[k].is_floating_point())
    assert moved > 1e-3  # the weights did train: the comparison is not between two untouched models
    print('max |DDP - single|:', max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point()))


@pytest.mark.slow
def test_torchrun_test_tool_gathers_metrics_like_one_process(ddp_run, tmp_path):
    from zoo.apis import test

    ckpt = ddp_run['work'] / 'epoch_2.pth'
    out_file = tmp_path / 'metrics.json'
    out = _torchrun('tools/test.py', str(ddp_run['cfg']), str(ckpt), '--work-dir', str(tmp_path / 'work'),
                    '--out', str(out_file), '--launcher', 'pytorch')
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    distributed = json.loads(out_file.read_text())['metrics']
    single = test(str(ddp_run['cfg']), str(ckpt), work_dir=str(tmp_path / 'single'))
    # 9 test images on 2 ranks: DefaultSampler pads to 10; mmengine's gather drops the padding again
    assert distributed['count/samples'] == distributed['count/distinct'] == 9
    assert distributed == single
