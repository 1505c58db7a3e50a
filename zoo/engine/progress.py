"""``ProgressBarHook``: tqdm bars for training iterations, validation and testing (registry ``HOOKS``).

mmengine's ``LoggerHook`` writes a line every ``interval`` iterations; with a quiet console (the tools' default,
see ``zoo.apis._runner``) those lines go to the log file only and this hook shows the progress instead: one bar per
loop, on the main process, removed when the loop ends. The training bar shows the latest losses (every loss term,
e.g. LICO's ``loss_mm`` and ``loss_ot``) as its postfix.

Example (in a config; the tools add it themselves unless ``--verbose``)::

    custom_hooks = [dict(type='ProgressBarHook')]
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from registry import HOOKS


def _number(value: Any) -> float | None:
    try:
        return float(value.item() if hasattr(value, 'item') else value)
    except (TypeError, ValueError, RuntimeError):
        return None


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """One tqdm bar per training, validation and test loop (main process only).

    Args:
        mininterval: seconds between two redraws (tqdm's ``mininterval``).
        leave: keep the finished bars on the console (default: remove them).
    """

    priority = 'LOW'

    def __init__(self, mininterval: float = 1.0, leave: bool = False) -> None:
        self.mininterval = float(mininterval)
        self.leave = bool(leave)
        self._bars: dict[str, Any] = {}
        self._pending: dict[str, dict[str, Any]] = {}

    def _plan(self, kind: str, runner: Any, total: int | None, initial: int = 0, unit: str = 'it') -> None:
        """Get a bar ready; it is drawn once the first iteration has run (a loop that fails at once — a wrong
        setting, an unreadable first image — prints its one-line error and no bar)."""
        self._close(kind)
        if is_main_process():
            name = os.path.basename(os.path.normpath(runner.work_dir)) if runner.work_dir else ''
            self._pending[kind] = dict(total=total, initial=initial, desc=f'{kind} {name}'.strip(), unit=unit)

    def _step(self, kind: str, postfix: Mapping[str, Any] | None = None) -> None:
        values = {k: _number(v) for k, v in (postfix or {}).items() if k.startswith('loss')}
        shown = {k: f'{v:.4g}' for k, v in values.items() if v is not None}
        if kind in self._pending:  # the first step: draw the bar with it
            from tqdm.auto import tqdm

            plan = self._pending.pop(kind)
            self._bars[kind] = tqdm(**{**plan, 'initial': plan['initial'] + 1}, postfix=shown or None,
                                    mininterval=self.mininterval, leave=self.leave, dynamic_ncols=True)
            return
        bar = self._bars.get(kind)
        if bar is not None:
            if shown:
                bar.set_postfix(shown, refresh=False)
            bar.update(1)

    def _close(self, kind: str) -> None:
        self._pending.pop(kind, None)
        bar = self._bars.pop(kind, None)
        if bar is not None:
            bar.close()

    def close_all(self) -> None:
        """Close every open bar (a loop that stopped on an error leaves no half-drawn bar before the message)."""
        for kind in {*self._bars, *self._pending}:
            self._close(kind)

    # --- training ---------------------------------------------------------------------------------------------
    def before_train(self, runner: Any) -> None:
        self._plan('training', runner, runner.max_iters, initial=runner.iter)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._step('training', outputs if isinstance(outputs, Mapping) else None)

    def after_train(self, runner: Any) -> None:
        self._close('training')

    # --- validation and test ----------------------------------------------------------------------------------
    def before_val_epoch(self, runner: Any) -> None:
        self._plan('validating', runner, len(runner.val_dataloader), unit='batch')

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._step('validating')
        if batch_idx + 1 >= len(runner.val_dataloader):
            self._close('validating')  # before the evaluator's own work (and bars) starts

    def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
        self._close('validating')

    def before_test_epoch(self, runner: Any) -> None:
        self._plan('testing', runner, len(runner.test_dataloader), unit='batch')

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._step('testing')
        if batch_idx + 1 >= len(runner.test_dataloader):
            self._close('testing')  # before the evaluator's own work (and bars) starts

    def after_test_epoch(self, runner: Any, metrics: Any = None) -> None:
        self._close('testing')
