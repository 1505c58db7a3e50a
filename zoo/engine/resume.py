"""Exact resume: what mmengine's resume leaves out, so a killed and resumed run equals an uninterrupted one.

mmengine restores the model, optimizer, parameter schedulers, message hub, epoch and iteration, and re-seeds from
``randomness.seed``. It does not restore the *state* of the random generators: after a resume, dropout, drop-path
and the augmentations of a main-process data pipeline draw different numbers than the uninterrupted run would
have. :class:`ExactResumeHook` closes that gap:

- ``before_save_checkpoint``: stores the torch (CPU and CUDA), numpy and Python generator states in the
  checkpoint (``checkpoint['rng_state']``);
- ``after_load_checkpoint`` (resume only): checks that the checkpoint fits the model and the optimizer (one
  line naming the file instead of mmengine's silent partial load) and keeps the states for the train loop, which
  puts them back at the point where they were saved (after replaying the batches the checkpoint already
  trained; see :mod:`zoo.engine.loops`);
- validation leaves the training random stream untouched (states saved before, restored after), so it makes no
  difference to the weights when, or whether, validation runs.

Under DDP, rank 0's states are saved and every rank restores them: exact when ranks draw in lockstep, the
default (``randomness.diff_rank_seed=False``). With ``diff_rank_seed=True`` they are not restored (a warning
says so) and resume is as exact as mmengine's.

Example::

    custom_hooks = [dict(type='ExactResumeHook')]   # tools/train.py adds it to every run
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from registry import HOOKS
from registry.errors import CheckpointError
from zoo.models.weights import check_state_dict_fits


def capture_rng_state() -> dict[str, Any]:
    """The states of Python's, numpy's and torch's (CPU and every CUDA device) global generators."""
    state: dict[str, Any] = {'python': random.getstate(), 'numpy': np.random.get_state(),
                             'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back states from :func:`capture_rng_state` (CUDA ones only where the devices exist)."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])


def _resuming(runner: Any) -> bool:
    return bool(getattr(runner, '_resume', False) or (runner.cfg.get('resume') if runner.cfg else False))


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Saves and restores random-generator states and checks a resumed checkpoint (see the module docstring)."""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None
        self._outside_val: dict[str, Any] | None = None

    # --- saving -------------------------------------------------------------------------------------------------
    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        # a best checkpoint is saved during validation: store the training stream, not validation's
        checkpoint['rng_state'] = self._outside_val or capture_rng_state()

    def before_val(self, runner: Any) -> None:
        self._outside_val = capture_rng_state()

    def after_val(self, runner: Any) -> None:
        if self._outside_val is not None:
            restore_rng_state(self._outside_val)
            self._outside_val = None

    # --- resuming -----------------------------------------------------------------------------------------------
    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if not _resuming(runner):
            return  # load_from (fine-tuning): mmengine's partial loading is wanted
        name = runner.cfg.get('load_from') or 'the checkpoint to resume from'
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = checkpoint.get('state_dict', checkpoint)
        check_state_dict_fits(model, state, name, ignore_prefixes=())
        _check_optimizer_fits(runner, checkpoint, name)
        randomness = runner.cfg.get('randomness') or {}
        if runner.world_size > 1 and randomness.get('diff_rank_seed'):
            runner.logger.warning('randomness.diff_rank_seed=True: the ranks draw different random numbers and a '
                                  'checkpoint keeps rank 0\'s generator states only, so they are not restored; '
                                  'the resumed run is as exact as mmengine\'s resume.')
            return
        self.pending = checkpoint.get('rng_state')
        if self.pending is None:
            runner.logger.warning(f'{name} holds no random-generator states (written by plain mmengine or an older '
                                  'xzoo): training continues, but not bit-identical to an uninterrupted run.')

    def restore_pending(self, runner: Any) -> None:
        """Called by the train loop at the point where the checkpoint's states were saved."""
        if self.pending is not None:
            restore_rng_state(self.pending)
            self.pending = None
            runner.logger.info('Restored the random generator states saved in the checkpoint.')

    def before_train_epoch(self, runner: Any) -> None:
        # xzoo's resumable loops put the states back themselves, after replaying data (zoo.engine.loops)
        if self.pending is not None and not getattr(runner.train_loop, 'restores_rng_after_replay', False):
            runner.logger.warning(f'{type(runner.train_loop).__name__} does not replay data before restoring the '
                                  'random state; resume may differ from an uninterrupted run. Leave train_cfg '
                                  'without `type` to get xzoo\'s resumable loops.')
            self.restore_pending(runner)


def restore_resumed_rng(runner: Any) -> None:
    """Let every :class:`ExactResumeHook` of ``runner`` put back the states of the checkpoint it resumed."""
    for hook in runner.hooks:
        if isinstance(hook, ExactResumeHook):
            hook.restore_pending(runner)


def _check_optimizer_fits(runner: Any, checkpoint: dict, name: str) -> None:
    saved = (checkpoint.get('optimizer') or {}).get('param_groups')
    optimizer = getattr(getattr(runner, 'optim_wrapper', None), 'optimizer', None)
    if not isinstance(saved, list) or optimizer is None:
        return
    current = optimizer.param_groups
    ignore = {'params', 'initial_lr'}
    saved_shape = [len(g['params']) for g in saved]
    current_shape = [len(g['params']) for g in current]
    saved_keys = set().union(*(set(g) for g in saved)) - ignore
    current_keys = set().union(*(set(g) for g in current)) - ignore
    # a torch upgrade may add settings (old checkpoints lack them); another optimizer has settings on both sides
    other_type = bool(saved_keys - current_keys) and bool(current_keys - saved_keys)
    if saved_shape != current_shape or other_type:
        raise CheckpointError(
            f'Cannot resume from {name!r}: it was saved with another optimizer (here {type(optimizer).__name__} '
            f'with settings {", ".join(sorted(current_keys - saved_keys)) or "as saved"} and parameter groups of '
            f'sizes {current_shape}; the checkpoint has {", ".join(sorted(saved_keys - current_keys)) or "the same"} '
            f'and {saved_shape}). Resume with the config it was trained with, or start a new run from its weights '
            'with --cfg-options load_from=PATH.')
