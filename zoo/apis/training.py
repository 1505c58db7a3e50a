"""``train()``: what ``tools/train.py`` runs.

Example::

    from zoo.apis import train
    runner = train('configs/efficientnetlite0_baseline_clutteredfmnist.py')
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from registry.errors import CheckpointError, ConfigError
from zoo.core.checkpoints import check_work_dir, find_resume_checkpoint, is_complete_checkpoint
from zoo.core.fileio import WorkDirLock

from ._runner import build_runner, build_training, prepare_runtime, prepare_training
from .config import load_config
from .preflight import preflight


def train(config: Any, work_dir: str | None = None, resume: str | None = None, amp: bool = False,
          cfg_options: Iterable[str] | Mapping[str, Any] | None = None, launcher: str = 'none',
          verbose: bool = False) -> Any:
    """Train a model from a config with mmengine's Runner and return the Runner.

    Args:
        config: config file path (or a ``Config``/dict).
        work_dir: where checkpoints and logs go (default ``./work_dirs/<config name>``).
        resume: ``'auto'`` resumes from the newest checkpoint in ``work_dir`` (or starts fresh if there is none);
            a path resumes from that checkpoint (model, optimizer, scheduler, RNG and iteration).
        amp: mixed precision (mmengine's ``AmpOptimWrapper``; needs a GPU).
        cfg_options: checked overrides, e.g. ``['model.backbone.pretrained=False']``.
        launcher: ``'none'`` or ``'pytorch'`` (under ``torchrun``).
        verbose: mmengine's full console output (environment, config, hooks, a line per logged iteration) instead
            of progress bars and warnings; the log file holds all of it either way (``zoo.apis._runner``).
    """
    cfg = load_config(config, cfg_options)
    add_nonfinite_loss_hook(cfg)
    prepare_runtime(cfg, work_dir, config, launcher, verbose=verbose)
    if amp:
        import torch
        if not torch.cuda.is_available():
            raise ConfigError('--amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper); none is available here. '
                              'Run without --amp.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    prepare_training(cfg)
    # one work dir, one writer: a second run into the same folder fails at once (rank 0 holds the lock)
    lock = WorkDirLock(cfg.work_dir) if int(os.environ.get('RANK', '0')) == 0 else None
    if lock is not None:
        lock.acquire()
    try:
        check_work_dir(cfg.work_dir)
        note = _resolve_resume(cfg, resume)
        preflight(cfg, 'train', config=config, cfg_options=cfg_options)  # every asset it reads is here, or one message
        runner = build_runner(cfg)
        build_training(runner)
        if note:
            runner.logger.warning(note)
        if cfg.get('resume'):
            runner.logger.info(f'Auto resumed from the latest checkpoint {cfg.load_from}.' if resume == 'auto'
                               else f'Resuming from {cfg.load_from}.', extra={'console': True})
        runner.train()
    finally:
        if lock is not None:
            lock.release()
    return runner


def add_nonfinite_loss_hook(cfg: Any) -> None:
    """Stop on a NaN/Inf loss (``default_hooks.nonfinite_loss``, see :mod:`zoo.engine.nonfinite`) unless the config
    sets that hook itself or switches it off with ``None`` (``prepare_runtime`` then drops the entry)."""
    hooks = dict(cfg.get('default_hooks') or {})
    if 'nonfinite_loss' not in hooks:
        hooks['nonfinite_loss'] = dict(type='NonFiniteLossHook')
        cfg.default_hooks = hooks


def _resolve_resume(cfg: Any, resume: str | None) -> str:
    """Set ``cfg.resume``/``cfg.load_from`` for ``--resume``; return a note for the log ('' if none).

    ``'auto'`` takes the newest *complete* checkpoint of the work_dir (``zoo.engine.find_resume_checkpoint``:
    ``last_checkpoint`` if its file is whole, else the newest whole one before it) or starts from scratch.
    """
    if resume is None and cfg.get('resume'):  # resume = True in the config file
        resume = cfg.get('load_from') or 'auto'
    if resume == 'auto':
        path, note = find_resume_checkpoint(cfg.work_dir)
        cfg.resume, cfg.load_from = path is not None, path
        return note
    if resume:
        if os.path.isdir(resume):
            raise CheckpointError(f'--resume {resume!r} is a folder; pass a checkpoint file (epoch_N.pth / '
                                  'iter_N.pth), or --resume auto to take the newest one of the work_dir.')
        if not os.path.isfile(resume):
            raise CheckpointError(f'--resume {resume!r}: no such checkpoint file. Use --resume (or --resume auto) '
                                  "to continue from the newest checkpoint in the work_dir.")
        if not is_complete_checkpoint(resume):
            raise CheckpointError(f'--resume {resume!r}: the file is incomplete or not a checkpoint (truncated by a '
                                  'killed write, or corrupt). Use --resume auto to take the newest complete one.')
        cfg.resume, cfg.load_from = True, resume
    return ''
