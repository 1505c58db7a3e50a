"""Resume after SIGKILL ends bit-identical to an uninterrupted run; checkpoints are atomic.

Every training run is a real process killed with SIGKILL by a test hook (``SigkillHook``) at a chosen point:
right after iteration k, right after a checkpoint, or in the middle of a checkpoint write. Runs are forked from a
``forkserver`` that has imported torch/timm/mmengine/xzoo once (about 10 s per fresh process on the CI machine).

"Bit-identical" here: the final checkpoint of the resumed run and of the uninterrupted one hold the same bytes in
every tensor of the model state dict (parameters and BatchNorm buffers), of the optimizer state (AdamW moments,
steps) and of the saved random-generator states, and equal scheduler states, epoch and iteration.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

import zoo.datasets  # noqa: F401  (preloaded in the forkserver)
import zoo.engine  # noqa: F401
import zoo.metrics  # noqa: F401
import zoo.models  # noqa: F401
from registry import HOOKS
from zoo.core.checkpoints import find_resume_checkpoint, is_complete_checkpoint
from zoo.core.fileio import PARTIAL, atomic_write_bytes

from .conftest import ROOT

# --- test-only hook: the process kills itself ---------------------------------------------------------------------


@HOOKS.register_module(force=True)
class SigkillHook(Hook):
    """SIGKILL this process after train iteration ``after_iter`` (1-based; after that iteration's checkpoint, if
    any) or while the checkpoint of iteration ``during_save_iter`` is being written (half of it on disk)."""

    priority = 'LOWEST'  # after CheckpointHook: a checkpoint due at that iteration is written first

    def __init__(self, after_iter: int | None = None, during_save_iter: int | None = None) -> None:
        self.after_iter, self.during_save_iter = after_iter, during_save_iter

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if runner.iter + 1 == self.after_iter:
            os.kill(os.getpid(), signal.SIGKILL)

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if checkpoint['meta']['iter'] != self.during_save_iter:
            return

        def torn_replace(src: str, dst: str) -> None:  # the write is half done when the process dies
            os.truncate(src, os.path.getsize(src) // 2)
            os.kill(os.getpid(), signal.SIGKILL)

        os.replace = torn_replace


# --- configs ------------------------------------------------------------------------------------------------------

def _config(loop: str, **kill: int) -> dict:
    """A tiny but complete training config: BatchNorm, dropout, random flips, AdamW, warm-up + cosine, validation.

    ``loop='iter'``: iteration loop, InfiniteSampler, main-process data, a checkpoint every 2 iterations, keep 1.
    ``loop='epoch'``: epoch loop, DefaultSampler, 2 data-loader workers, a checkpoint per epoch.
    ``loop='epoch-iterckpt'``: the epoch loop, main-process data, a checkpoint every 2 iterations (mid-epoch).
    """
    by_epoch = loop == 'epoch'
    iter_based = loop == 'iter'
    data = dict(type='SyntheticShapes', num_samples=12, image_size=32, seed=3,
                pipeline=[dict(type='RandomHorizontalFlip', p=0.5), dict(type='PackInputs')])
    workers = 2 if loop == 'epoch' else 0
    cfg = dict(
        default_scope='zoo',
        model=dict(type='ImageClassifier',
                   backbone=dict(type='TimmBackbone', model_name='test_resnet'),
                   head=dict(type='LinearClsHead', num_classes=9, dropout=0.3),
                   data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3)),
        train_dataloader=dict(batch_size=4, num_workers=workers, persistent_workers=False, dataset=data,
                              sampler=dict(type='InfiniteSampler' if iter_based else 'DefaultSampler', shuffle=True)),
        val_dataloader=dict(batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                            dataset=dict(type='SyntheticShapes', num_samples=8, image_size=32, split='test')),
        val_evaluator=dict(type='Accuracy', topk=(1,)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01, weight_decay=0.01)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4),
                         dict(type='CosineAnnealingLR', by_epoch=False, begin=4, end=12)],
        train_cfg=dict(by_epoch=False, max_iters=10, val_interval=3) if iter_based else
        dict(by_epoch=True, max_epochs=4, val_interval=1),
        val_cfg=dict(),
        default_hooks=dict(
            checkpoint=dict(type='AtomicCheckpointHook', by_epoch=by_epoch, interval=1 if by_epoch else 2,
                            max_keep_ckpts=1 if iter_based else -1),
            logger=dict(type='LoggerHook', interval=1),
            sampler_seed=dict(type='DistSamplerSeedHook'),
            param_scheduler=dict(type='ParamSchedulerHook')),
        custom_hooks=[dict(type='SigkillHook', **kill)] if kill else [],
        randomness=dict(seed=7, deterministic=True),
        log_processor=dict(by_epoch=not iter_based),
        env_cfg=dict(mp_cfg=dict(mp_start_method='fork')),
    )
    return cfg


# --- running training in killed processes ---------------------------------------------------------------------------

def _child(config: str, work_dir: str, resume: str | None, log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    torch.set_num_threads(1)
    from zoo.apis import train
    train(config, work_dir=work_dir, resume=resume)


_CTX = mp.get_context('forkserver')
_CTX.set_forkserver_preload([__name__])


def _run(tmp: Path, name: str, cfg: dict, work_dir: Path, resume: str | None = None) -> int:
    """Train in a fresh process; its exit code (``-9``: killed)."""
    path = tmp / f'{name}.py'
    Config(cfg).dump(str(path))
    proc = _CTX.Process(target=_child, args=(str(path), str(work_dir), resume, str(tmp / f'{name}.log')))
    proc.start()
    proc.join(600)
    return proc.exitcode


def _log(tmp: Path, name: str) -> str:
    return (tmp / f'{name}.log').read_text()[-4000:]


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def _assert_identical(a: Any, b: Any, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(_bits(a), _bits(b)), f'{where} differs (max abs diff {(a - b).abs().max()})'
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), f'{where}: keys {sorted(set(a) ^ set(b))}'
        for k in a:
            _assert_identical(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


def _assert_same_training_state(resumed: Path, reference: Path) -> None:
    """Same iteration and the same bits in weights, buffers, optimizer, schedulers and generator states."""
    a = torch.load(resumed, map_location='cpu', weights_only=False)
    b = torch.load(reference, map_location='cpu', weights_only=False)
    assert a['meta']['iter'] == b['meta']['iter']
    for key in ('state_dict', 'optimizer', 'param_schedulers', 'rng_state'):
        _assert_identical(a[key], b[key], key)


# --- the tests ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def iter_reference(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp('iter_ref')
    assert _run(tmp, 'ref', _config('iter'), tmp / 'work') == 0, _log(tmp, 'ref')
    return tmp / 'work' / 'iter_10.pth'


def test_iteration_loop_killed_three_times_resumes_bit_identical(tmp_path, iter_reference):
    """Kill after iteration 3 (mid-interval), during the write of checkpoint 4, right after checkpoint 6 (before
    the validation due at 6, which the uninterrupted run does: validation must not shift the random stream)."""
    work = tmp_path / 'work'
    assert _run(tmp_path, 'a', _config('iter', after_iter=3), work) == -signal.SIGKILL, _log(tmp_path, 'a')
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth']

    code = _run(tmp_path, 'b', _config('iter', during_save_iter=4), work, 'auto')
    assert code == -signal.SIGKILL, _log(tmp_path, 'b')
    # killed mid-write with max_keep_ckpts=1: the previous checkpoint survives and stays the resume point
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth']
    assert [p.name.split(PARTIAL)[0] for p in work.glob(f'*{PARTIAL}*')] == ['iter_4.pth']
    assert (work / 'last_checkpoint').read_text().endswith('iter_2.pth')
    assert 'Auto resumed from the latest checkpoint' in _log(tmp_path, 'b') and 'iter_2.pth' in _log(tmp_path, 'b')

    assert _run(tmp_path, 'c', _config('iter', after_iter=6), work, 'auto') == -signal.SIGKILL, _log(tmp_path, 'c')
    assert not list(work.glob(f'*{PARTIAL}*'))  # the torn write was cleaned up
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_6.pth']

    assert _run(tmp_path, 'd', _config('iter'), work, 'auto') == 0, _log(tmp_path, 'd')
    assert 'iter_6.pth' in _log(tmp_path, 'd')
    _assert_same_training_state(work / 'iter_10.pth', iter_reference)


@pytest.fixture(scope='module')
def epoch_reference(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp('epoch_ref')
    assert _run(tmp, 'ref', _config('epoch'), tmp / 'work') == 0, _log(tmp, 'ref')
    return tmp / 'work' / 'epoch_4.pth'


def test_epoch_loop_with_workers_killed_mid_epoch_resumes_bit_identical(tmp_path, epoch_reference):
    """Epoch checkpoints (the recipes' setting), 2 data-loader workers: kill in the middle of epoch 2."""
    work = tmp_path / 'work'
    assert _run(tmp_path, 'a', _config('epoch', after_iter=5), work) == -signal.SIGKILL, _log(tmp_path, 'a')
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
    assert _run(tmp_path, 'b', _config('epoch'), work, 'auto') == 0, _log(tmp_path, 'b')
    _assert_same_training_state(work / 'epoch_4.pth', epoch_reference)


def test_epoch_loop_resumes_a_mid_epoch_checkpoint_bit_identical(tmp_path):
    """Iteration checkpoints in an epoch loop, main-process data: resume at iteration 4 (the first batch of epoch 2
    already trained). mmengine's own loop would train epoch 2 from its first batch again."""
    ref = tmp_path / 'ref'
    assert _run(tmp_path, 'ref', _config('epoch-iterckpt'), ref) == 0, _log(tmp_path, 'ref')
    work = tmp_path / 'work'
    assert _run(tmp_path, 'a', _config('epoch-iterckpt', after_iter=5), work) == -signal.SIGKILL, _log(tmp_path, 'a')
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth', 'iter_4.pth']
    assert _run(tmp_path, 'b', _config('epoch-iterckpt'), work, 'auto') == 0, _log(tmp_path, 'b')
    assert 'Replaying the 1 batches of epoch 2' in _log(tmp_path, 'b')
    _assert_same_training_state(work / 'iter_12.pth', ref / 'iter_12.pth')


# --- how --resume auto chooses (no training) --------------------------------------------------------------------------

def _ckpt(path: Path, step: int) -> Path:
    torch.save({'meta': {'iter': step}, 'state_dict': {'w': torch.full((64,), float(step))}}, path)
    return path


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def test_auto_resume_takes_the_pointer_when_complete(tmp_path):
    _ckpt(tmp_path / 'iter_2.pth', 2)
    _ckpt(tmp_path / 'iter_4.pth', 4)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    (tmp_path / f'iter_6.pth{PARTIAL}123').write_bytes(b'half a checkpoint')
    assert find_resume_checkpoint(str(tmp_path)) == (str(tmp_path / 'iter_4.pth'), '')


def test_auto_resume_never_picks_a_truncated_checkpoint(tmp_path):
    _ckpt(tmp_path / 'iter_2.pth', 2)
    _ckpt(tmp_path / 'iter_4.pth', 4)
    _truncate(_ckpt(tmp_path / 'iter_6.pth', 6))  # e.g. written by a plain, non-atomic CheckpointHook
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_6.pth'))
    path, note = find_resume_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'iter_4.pth') and 'incomplete' in note
    assert not is_complete_checkpoint(str(tmp_path / 'iter_6.pth'))


def test_auto_resume_ignores_later_checkpoints_of_an_older_run(tmp_path):
    _ckpt(tmp_path / 'iter_900.pth', 900)  # left by an earlier, longer run in the same work_dir
    _ckpt(tmp_path / 'iter_2.pth', 2)
    os.remove(_ckpt(tmp_path / 'iter_4.pth', 4))  # the pointer names a file that was deleted
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    path, note = find_resume_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'iter_2.pth') and 'does not exist' in note


def test_auto_resume_without_pointer_and_on_an_empty_dir(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) == (None, '')
    _ckpt(tmp_path / 'epoch_1.pth', 1)
    _truncate(_ckpt(tmp_path / 'epoch_2.pth', 2))
    assert find_resume_checkpoint(str(tmp_path))[0] == str(tmp_path / 'epoch_1.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    os.remove(tmp_path / 'epoch_1.pth')
    path, note = find_resume_checkpoint(str(tmp_path))
    assert path is None and 'starts from scratch' in note


def test_atomic_write_leaves_old_content_or_new_never_half(tmp_path, monkeypatch):
    target = tmp_path / 'f.bin'
    atomic_write_bytes(target, b'old')

    def boom(fd: int) -> None:
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', boom)
    with pytest.raises(OSError, match='disk full'):
        atomic_write_bytes(target, b'new content')
    assert target.read_bytes() == b'old' and sorted(p.name for p in tmp_path.iterdir()) == ['f.bin']


def test_default_runtime_uses_the_atomic_hook_and_exact_resume():
    cfg = Config.fromfile(str(ROOT / 'configs' / '_base_' / 'default_runtime.py'))
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert {'type': 'ExactResumeHook'} in cfg.custom_hooks
