"""Parameter schedulers (registry ``PARAM_SCHEDULERS``).

``FixMatchCosineLR``: ``lr_k = lr_0 * cos(7 * pi * k / (16 * K))`` for step ``k`` of ``K`` (FixMatch's schedule, used
by both LICO reproductions; the ratio 7/16 is ``num_cycles``). Configure it per epoch with
``convert_to_iter_based=True`` to step it every iteration, as they did.

Example:
    >>> import torch
    >>> from zoo.engine.schedulers import FixMatchCosineLR
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.03)
    >>> sched = FixMatchCosineLR(opt, T_max=16, by_epoch=False)
    >>> for _ in range(16):
    ...     opt.step(); sched.step()
    >>> round(opt.param_groups[0]['lr'] / 0.03, 4)     # cos(7 pi / 16)
    0.1951
"""
from __future__ import annotations

import math
from typing import Any

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from registry import PARAM_SCHEDULERS
from registry.errors import ConfigError


class FixMatchCosineParamScheduler(_ParamScheduler):
    """``value_k = base * cos(num_cycles * pi * k / T_max)``, ``k`` counted from ``begin``.

    Args:
        optimizer: the optimizer (or optim wrapper).
        param_name: the scheduled hyperparameter (``'lr'``).
        T_max: length of the schedule; defaults to ``end - begin``.
        num_cycles: 7/16 as FixMatch (the value never reaches 0).
        begin, end, last_step, by_epoch, verbose: as mmengine's schedulers.
    """

    def __init__(self, optimizer: Any, param_name: str, T_max: int | None = None, num_cycles: float = 7 / 16,
                 begin: int = 0, end: int = INF, last_step: int = -1, by_epoch: bool = True,
                 verbose: bool = False) -> None:
        if T_max is None and end == INF:
            raise ConfigError('FixMatchCosineLR needs T_max or a finite end (e.g. end=max_epochs).')
        self.T_max = T_max or (end - begin)
        self.num_cycles = num_cycles
        super().__init__(optimizer, param_name=param_name, begin=begin, end=end, last_step=last_step,
                         by_epoch=by_epoch, verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls, *args: Any, T_max: int | None = None, begin: int = 0, end: int = INF,
                              by_epoch: bool = True, epoch_length: int | None = None,
                              **kwargs: Any) -> FixMatchCosineParamScheduler:
        """Iteration-based instance from an epoch-based config (``convert_to_iter_based=True``)."""
        if not by_epoch or not epoch_length:
            raise ConfigError('convert_to_iter_based needs by_epoch=True and a dataloader with a length.')
        return cls(*args, T_max=None if T_max is None else T_max * epoch_length, begin=int(begin * epoch_length),
                   end=end if end == INF else int(end * epoch_length), by_epoch=False, **kwargs)

    def _get_value(self) -> list[float]:
        factor = math.cos(self.num_cycles * math.pi * min(self.last_step, self.T_max) / self.T_max)
        return [base * factor for base in self.base_values]


@PARAM_SCHEDULERS.register_module()
class FixMatchCosineLR(LRSchedulerMixin, FixMatchCosineParamScheduler):
    """Learning-rate version of :class:`FixMatchCosineParamScheduler` (``lr * cos(7 pi k / 16 K)``)."""
