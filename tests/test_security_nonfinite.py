"""``NonFiniteLossHook``: on by default in training, stops before a NaN checkpoint, switchable.

The end-to-end case (``--cfg-options optim_wrapper.optimizer.lr=inf`` exits 2, nothing written) is a row of the
bad-input table (tests/test_bad_input.py, ``lr-inf-diverges``).
"""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from registry.errors import ConfigError
from zoo.engine import NonFiniteLossHook, TrainingDivergedError

from .test_bad_input import TINY


def _runner(last_ckpt: str | None = None) -> SimpleNamespace:
    hub = SimpleNamespace(get_info=lambda key: last_ckpt if key == 'last_ckpt' else None)
    return SimpleNamespace(iter=6, epoch=1, message_hub=hub, logger=logging.getLogger('nonfinite-test'))


def _step(hook: NonFiniteLossHook, runner: SimpleNamespace, **losses: float) -> None:
    hook.after_train_iter(runner, 0, None, {k: torch.tensor(v) for k, v in losses.items()})


def test_stops_at_the_first_non_finite_loss_and_names_the_last_checkpoint():
    hook, runner = NonFiniteLossHook(), _runner('work/iter_6.pth')
    _step(hook, runner, loss=1.5, loss_cls=1.5, acc=float('nan'))  # only losses count
    with pytest.raises(TrainingDivergedError, match=r'epoch 2, iteration 7: the loss is not finite \(loss: nan, '
                                                    r'loss_cls: nan\).*work/iter_6.pth.*nonfinite_loss=None') as info:
        _step(hook, runner, loss=float('nan'), loss_cls=float('nan'))
    assert '\n' not in str(info.value)
    with pytest.raises(TrainingDivergedError, match='loss_align: inf.*No checkpoint was written'):
        _step(NonFiniteLossHook(), _runner(None), loss=1.0, loss_align=float('inf'))


def test_patience_tolerates_a_streak_and_a_finite_loss_resets_it(caplog):
    hook, runner = NonFiniteLossHook(patience=2), _runner()
    _step(hook, runner, loss=float('inf'))
    _step(hook, runner, loss=0.5)  # the streak restarts
    _step(hook, runner, loss=float('nan'))
    with pytest.raises(TrainingDivergedError):
        _step(hook, runner, loss=float('nan'))
    with pytest.raises(ConfigError, match='patience must be a positive integer'):
        NonFiniteLossHook(patience=0)


def test_training_adds_the_hook_and_none_switches_it_off(tmp_path):
    from zoo.apis._runner import prepare_runtime
    from zoo.apis.config import load_config
    from zoo.apis.training import add_nonfinite_loss_hook

    cfg = load_config(Config(TINY))
    add_nonfinite_loss_hook(cfg)
    prepare_runtime(cfg, str(tmp_path), 'tiny.py', 'none')
    assert cfg.default_hooks['nonfinite_loss'] == {'type': 'NonFiniteLossHook'}
    off = load_config(Config(TINY), ['+default_hooks.nonfinite_loss=None'])
    add_nonfinite_loss_hook(off)
    prepare_runtime(off, str(tmp_path), 'tiny.py', 'none')  # mmengine accepts None for its own hooks only
    assert 'nonfinite_loss' not in off.default_hooks
    base = load_config('configs/resnet50_baseline_cub.py', ['+default_hooks.nonfinite_loss.patience=3'])
    assert base.default_hooks['nonfinite_loss'] == {'type': 'NonFiniteLossHook', 'patience': 3}
