"""mmengine's train loops, resumed exactly: data replayed, then the checkpoint's random state put back.

mmengine's ``IterBasedTrainLoop`` replays the batches a checkpoint already trained (so samplers and data-loader
workers are where they were) but a main-process pipeline draws random numbers during that replay, and its
``EpochBasedTrainLoop`` restarts a checkpoint taken mid-epoch from the epoch's first batch (training those
batches twice). These subclasses fix both and hand over to :class:`~zoo.engine.resume.ExactResumeHook` at the one
point that matches where the checkpoint was saved:

- a checkpoint at an epoch end (``CheckpointHook(by_epoch=True)``): before the epoch's data iterator is created;
- a checkpoint after iteration ``i`` (``by_epoch=False``): after replaying the ``i`` batches (of the epoch).

``tools/train.py`` uses them when ``train_cfg`` has no ``type`` (``by_epoch=True`` → epoch loop, ``False`` → iter
loop); with an explicit ``type`` the config decides.

Example::

    train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=1000, val_interval=100)
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from registry import LOOPS
from registry.errors import CheckpointError, ConfigError

from .resume import restore_resumed_rng


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f'train_cfg.{key} must be a positive integer, got {value!r}. Example: --cfg-options '
                          f'train_cfg.{key}=10')
    return value


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` (same arguments) that also resumes checkpoints taken mid-epoch."""

    restores_rng_after_replay = True  # read by ExactResumeHook, which never imports this module

    def __init__(self, runner: Any, dataloader: Any, max_epochs: int, val_begin: int = 1, val_interval: int = 1,
                 dynamic_intervals: list[tuple[int, int]] | None = None) -> None:
        _positive_int(max_epochs, 'max_epochs')
        _positive_int(val_interval, 'val_interval')
        super().__init__(runner, dataloader, max_epochs, val_begin=val_begin, val_interval=val_interval,
                         dynamic_intervals=dynamic_intervals)

    def run_epoch(self) -> None:
        runner = self.runner
        runner.call_hook('before_train_epoch')
        runner.model.train()
        done = self._iter - self._epoch * len(self.dataloader)  # > 0 only in the first epoch after a resume
        if done > len(self.dataloader):
            raise CheckpointError(f'The resumed checkpoint is at iteration {self._iter} (epoch {self._epoch}), but '
                                  f'an epoch now has {len(self.dataloader)} batches: the dataset or batch size '
                                  'changed since it was saved. Resume with the same data settings.')
        if done <= 0:
            restore_resumed_rng(runner)
        batches = iter(self.dataloader)
        if done > 0:
            runner.logger.info(f'Replaying the {done} batches of epoch {self._epoch + 1} that the checkpoint '
                               'already trained.', extra={'console': True})
            for _ in range(done):
                next(batches)
            restore_resumed_rng(runner)
        for idx, data_batch in enumerate(batches, start=max(done, 0)):
            self.run_iter(idx, data_batch)
        runner.call_hook('after_train_epoch')
        self._epoch += 1


class _RestoreAfter:
    """Iterator that calls ``on_replayed`` once ``skip`` items have been taken, before the next one is fetched."""

    def __init__(self, inner: Iterator, skip: int, on_replayed: Callable[[], None]) -> None:
        self.inner, self.left, self.on_replayed = inner, skip, on_replayed

    def __iter__(self) -> _RestoreAfter:
        return self

    def __next__(self) -> Any:
        if self.left == 0:
            self.left = -1
            self.on_replayed()
        elif self.left > 0:
            self.left -= 1
        return next(self.inner)


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """mmengine's ``IterBasedTrainLoop`` (same arguments); the random state comes back after the replay."""

    restores_rng_after_replay = True

    def __init__(self, runner: Any, dataloader: Any, max_iters: int, val_begin: int = 1, val_interval: int = 1000,
                 dynamic_intervals: list[tuple[int, int]] | None = None) -> None:
        _positive_int(max_iters, 'max_iters')
        _positive_int(val_interval, 'val_interval')
        super().__init__(runner, dataloader, max_iters, val_begin=val_begin, val_interval=val_interval,
                         dynamic_intervals=dynamic_intervals)

    def run(self) -> Any:
        if self._iter > 0:  # resumed: mmengine replays self._iter batches first
            self.dataloader_iterator = _RestoreAfter(self.dataloader_iterator, self._iter,
                                                     lambda: restore_resumed_rng(self.runner))
        return super().run()


RESUMABLE_LOOPS = (ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop)
