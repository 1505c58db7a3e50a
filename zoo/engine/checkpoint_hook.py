"""``AtomicCheckpointHook``: mmengine's ``CheckpointHook`` with crash-safe files.

What it changes, and only that (intervals, ``save_best``, ``max_keep_ckpts``, ``published_keys``... are mmengine's):

1. every file goes through :class:`~zoo.engine.atomic.AtomicLocalBackend` (the atomic writer of
   :mod:`zoo.core.fileio`): written to ``<name>.partial-<pid>``, fsync'ed, renamed (a killed write never leaves a
   half ``iter_N.pth``);
2. ``last_checkpoint`` is replaced atomically, and only once the checkpoint it names is complete on disk;
3. with ``max_keep_ckpts``, old checkpoints are deleted *after* the new one is complete (mmengine deletes first,
   so a kill during the write with ``max_keep_ckpts=1`` leaves no checkpoint at all);
4. ``*.partial-<pid>`` leftovers of a killed run are removed when training starts — only those whose writer
   process is gone (another live run's file is never touched; the work-dir lock of ``tools/train.py`` keeps a
   second run out in the first place).

For a remote ``out_dir`` (``s3://...``) or explicit ``backend_args`` the writes are mmengine's (an object store
publishes a ``put`` as a whole); 2-4 still apply.

Example (``configs/_base_/default_runtime.py``)::

    default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3))
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from registry import HOOKS
from zoo.core.fileio import atomic_write_bytes, remove_partial_files

from .atomic import ATOMIC_BACKEND


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) whose checkpoints survive a kill at any moment."""

    def __init__(self, interval: int = -1, by_epoch: bool = True, save_optimizer: bool = True,
                 save_param_scheduler: bool = True, out_dir: str | None = None, max_keep_ckpts: int = -1,
                 save_last: bool = True, save_best: str | list[str] | None = None, rule: str | list[str] | None = None,
                 greater_keys: Sequence[str] | None = None, less_keys: Sequence[str] | None = None,
                 file_client_args: dict | None = None, filename_tmpl: str | None = None,
                 backend_args: dict | None = None, published_keys: str | list[str] | None = None,
                 save_begin: int = 0) -> None:
        self._own_backend = backend_args is None and file_client_args is None
        self._local = True  # decided in before_train from out_dir
        if self._own_backend:
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(interval=interval, by_epoch=by_epoch, save_optimizer=save_optimizer,
                         save_param_scheduler=save_param_scheduler, out_dir=out_dir, max_keep_ckpts=max_keep_ckpts,
                         save_last=save_last, save_best=save_best, rule=rule, greater_keys=greater_keys,
                         less_keys=less_keys, file_client_args=file_client_args, filename_tmpl=filename_tmpl,
                         backend_args=backend_args, published_keys=published_keys, save_begin=save_begin)

    def before_train(self, runner: Any) -> None:
        out_dir = str(self.out_dir or runner.work_dir)
        self._local = '://' not in out_dir
        if self._own_backend and not self._local:
            self.backend_args = None  # a remote store: mmengine's backend for its prefix
        super().before_train(runner)
        if self._local and is_main_process():
            for path in remove_partial_files(str(self.out_dir)):
                runner.logger.info(f'Removed {path}, left by a checkpoint write that was killed.',
                                   extra={'console': True})

    def _save_checkpoint_with_step(self, runner: Any, step: int, meta: dict) -> None:
        stale: list[int] = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        runner.save_checkpoint(self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                               backend_args=self.backend_args, **self.args)
        if not is_main_process():  # rank 0 writes; the others only keep the same bookkeeping
            return
        pointer = os.path.join(runner.work_dir, 'last_checkpoint')
        if self._local:
            atomic_write_bytes(pointer, str(self.last_ckpt).encode('utf-8'))
        else:
            with open(pointer, 'w', encoding='utf-8') as fh:
                fh.write(str(self.last_ckpt))
        for old in stale:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)
