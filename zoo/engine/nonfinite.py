"""``NonFiniteLossHook``: stop training when the loss becomes NaN or Inf, before a diverged checkpoint is written.

A learning rate that is far too high (``--cfg-options optim_wrapper.optimizer.lr=inf``), a bad sample or an AMP
overflow make the loss non-finite; from then on every weight is NaN, and without this hook the run goes on,
writes checkpoints full of NaN and exits 0. ``zoo.apis.train`` (``tools/train.py``) adds the hook to every run as
``default_hooks.nonfinite_loss``; it checks the losses of each iteration right after the optimizer step and before
the checkpoint hook, and raises :class:`TrainingDivergedError` (one line, exit status 2 from the tools) naming the
iteration, the losses and the last complete checkpoint. Under DDP all ranks stop together.

Switch it off with ``--cfg-options default_hooks.nonfinite_loss=None`` (``+default_hooks.nonfinite_loss=None`` for a
config without ``configs/_base_/default_runtime.py``), or tolerate a few bad iterations (AMP's dynamic loss scaling
skips their steps) with ``+default_hooks.nonfinite_loss.patience=N``.

Example (in a config)::

    default_hooks = dict(nonfinite_loss=dict(type='NonFiniteLossHook', patience=1))
"""
from __future__ import annotations

import math
from typing import Any

from mmengine.hooks import Hook

from registry import HOOKS
from registry.errors import ConfigError, XZooError


class TrainingDivergedError(XZooError, FloatingPointError):
    """The training loss became NaN or Inf (the run diverged)."""


def _value(v: Any) -> float | None:
    if hasattr(v, 'detach'):
        if v.numel() != 1:
            return float('nan') if not bool(v.detach().isfinite().all()) else float(v.detach().float().mean())
        return float(v.detach())
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`TrainingDivergedError` when the losses of ``patience`` consecutive iterations are not finite.

    Args:
        patience: how many consecutive non-finite iterations end the run (1: the first one).
    """

    priority = 'VERY_HIGH'  # before the checkpoint hook's after_train_iter

    def __init__(self, patience: int = 1) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f'NonFiniteLossHook: patience must be a positive integer, got {patience!r}.')
        self.patience = patience
        self._streak = 0

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        losses = {k: _value(v) for k, v in (outputs or {}).items() if 'loss' in k}
        bad = {k: v for k, v in losses.items() if v is not None and not math.isfinite(v)}
        if _any_rank(bool(bad)):
            self._streak += 1
        else:
            self._streak = 0
            return
        if self._streak < self.patience:
            runner.logger.warning(f'Non-finite loss at iteration {runner.iter + 1} ({self._streak} of '
                                  f'{self.patience} tolerated): {bad or "on another rank"}.')
            return
        shown = ', '.join(f'{k}: {v}' for k, v in bad.items()) or 'on another rank'
        last = runner.message_hub.get_info('last_ckpt')
        where = f'epoch {runner.epoch + 1}, iteration {runner.iter + 1}'
        resume = f'The last checkpoint, {last}, was written before; --resume continues from it. ' if last else \
            'No checkpoint was written. '
        raise TrainingDivergedError(
            f'Training stopped at {where}: the loss is not finite ({shown}); the run diverged and every later weight '
            f'would be NaN. Lower the learning rate (optim_wrapper.optimizer.lr), check the data and, with --amp, the '
            f'loss scale. {resume}To train on regardless: --cfg-options default_hooks.nonfinite_loss=None.')


def _any_rank(flag: bool) -> bool:
    """``flag`` OR-ed over the ranks of a distributed run (just ``flag`` otherwise)."""
    from mmengine.dist import all_reduce, get_comm_device, get_world_size

    if get_world_size() <= 1:
        return flag
    import torch

    t = torch.tensor([1.0 if flag else 0.0], device=get_comm_device())
    all_reduce(t, op='sum')
    return bool(t.item() > 0)
