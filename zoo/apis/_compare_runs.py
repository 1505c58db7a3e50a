"""The runs of a comparison: one folder per (arm, seed), what is done in it, doing the rest quietly, cost estimates.

A run folder ``<out>/runs/<arm>/seed_<s>/`` is the training work dir and holds, besides mmengine's checkpoints and
logs:

- ``run.json``: the config, the overrides and the fingerprint of the resolved config (written before training);
- ``train_done.json``: written after training finished (checkpoint, seconds, iterations);
- ``per_image.json``: the test's per-image values (:func:`zoo.apis.testing.per_image_values`);
- ``test_done.json``: the fingerprint of the test settings that produced it, and its seconds;
- ``console.log``: everything the run printed (the console shows one line per run).

A run whose ``train_done.json`` matches its fingerprint is never retrained; a run killed during training resumes
from its newest complete checkpoint (``train(resume='auto')``); a test is redone only when its settings changed.
A folder trained with a *different* config is an error, never silently reused or overwritten.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.errors import ConfigError, XZooError
from zoo.core.checkpoints import find_resume_checkpoint, latest_checkpoint, step_of
from zoo.core.fileio import ensure_dir, write_json

from .config import load_config


@dataclass
class RunSpec:
    """One training (or, for explainer comparisons, one given checkpoint) and its test."""

    arm: str
    seed: int
    config: str
    work_dir: str
    cfg_options: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None  # given: no training (explainer comparisons)

    @property
    def name(self) -> str:
        return f'{self.arm} seed {self.seed}'

    def path(self, name: str) -> str:
        return os.path.join(self.work_dir, name)


def read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding='utf-8') as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _plain(obj: Any) -> str:
    return f'<{type(obj).__qualname__}>'


def fingerprint(payload: Any) -> str:
    """sha256 of ``payload`` as sorted JSON (objects JSON cannot hold count by their type only)."""
    text = json.dumps(payload, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_fingerprint(run: RunSpec) -> str:
    """Fingerprint of the run's resolved config (overrides and seed applied)."""
    cfg = load_config(run.config, run.cfg_options)
    return fingerprint(cfg.to_dict())


def fingerprint_of_test(train_fp: str, checkpoint: str, test_args: Mapping[str, Any]) -> str:
    """Fingerprint of a test: the config, the checkpoint file (name, size, time) and the test settings."""
    info = os.stat(checkpoint)
    return fingerprint(dict(train=train_fp, checkpoint=[os.path.basename(checkpoint), info.st_size, info.st_mtime_ns],
                            test=dict(test_args)))


def schedule_note(run: RunSpec) -> str | None:
    """A warning when every learning-rate schedule of the run's config ends before its training does (e.g.
    ``train_cfg.max_epochs`` raised by an override but not the cosine's ``end``): the rate then stays at its final
    value for the rest of training. Warm-ups that end early are fine as long as one schedule reaches the end."""
    cfg = load_config(run.config, run.cfg_options)
    train_cfg = cfg.get('train_cfg') or {}
    by_epoch = bool(train_cfg.get('by_epoch', 'max_epochs' in train_cfg))
    length = train_cfg.get('max_epochs' if by_epoch else 'max_iters')
    scheds = cfg.get('param_scheduler') or []
    scheds = [scheds] if isinstance(scheds, Mapping) else list(scheds)
    if not length or not scheds:
        return None
    same_unit = [sc for sc in scheds if bool(sc.get('by_epoch', True)) == by_epoch]
    if len(same_unit) < len(scheds) and not same_unit:
        return None  # schedules in the other unit only: cannot tell without the data loader's length
    if any(sc.get('end') is None for sc in scheds):
        return None
    last = max(same_unit, key=lambda sc: sc['end'])
    if last['end'] >= length:
        return None
    unit = 'epoch' if by_epoch else 'iteration'
    index = scheds.index(last)
    return (f'{run.arm}: every learning-rate schedule ends by {unit} {last["end"]} but training runs {length} '
            f'{unit}s; the rate stays at its final value after that. Lengthen it too, e.g. '
            f'param_scheduler.{index}.end={length}.')


# --- state --------------------------------------------------------------------------------------------------------

@dataclass
class RunState:
    """What is left of a run: ``train`` is ``'done'``, ``'given'``, ``'new'`` or ``'resume'`` (from
    ``resume_from``); ``test`` is ``'done'`` or ``'todo'``."""

    run: RunSpec
    fingerprint: str
    train: str
    test: str
    resume_from: str | None = None
    record: dict[str, Any] | None = None


def run_state(run: RunSpec, test_args: Mapping[str, Any]) -> RunState:
    """The run's state, after checking that its folder belongs to this config."""
    fp = config_fingerprint(run)
    known = read_json(run.path('run.json'))
    if known is not None and known.get('fingerprint') != fp:
        raise ConfigError(f'{run.work_dir!r} holds a run of a different config or overrides ({known.get("config")}, '
                          f'{known.get("cfg_options")}); choose another --out, or delete that folder to redo it.')
    if run.checkpoint is not None:
        train, resume, ckpt = 'given', None, run.checkpoint
    else:
        done = read_json(run.path('train_done.json'))
        ckpt = done and run.path(done['checkpoint'])
        if done and done.get('fingerprint') == fp and ckpt and os.path.isfile(ckpt):
            train, resume = 'done', None
        else:
            resume, _ = find_resume_checkpoint(run.work_dir) if os.path.isdir(run.work_dir) else (None, '')
            train, ckpt = ('resume' if resume else 'new'), None
    test = 'todo'
    tested = read_json(run.path('test_done.json'))
    if ckpt and tested and os.path.isfile(run.path('per_image.json')) and \
            tested.get('fingerprint') == fingerprint_of_test(fp, ckpt, test_args):
        test = 'done'
    return RunState(run, fp, train, test, resume, read_json(run.path('train_done.json')))


# --- quiet execution ----------------------------------------------------------------------------------------------

class _Switch(io.TextIOBase):
    """A stand-in for ``sys.stdout``/``sys.stderr`` that writes to a run's log while one is active and to the
    console otherwise, so a logger created during a run never holds a closed file afterwards."""

    def __init__(self, console: Any) -> None:
        self.console, self.target = console, console

    def write(self, text: str) -> int:
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return getattr(self.target, 'encoding', 'utf-8')


class Console:
    """The comparison's own output (``out``, ``err``: one line per run, the progress bar) and :meth:`capture`,
    which sends everything a run prints (Python and C level) to its log file."""

    def __init__(self) -> None:
        self._orig = (sys.stdout, sys.stderr)
        self._fds = all(_real_fd(s) is not None for s in self._orig)
        if self._fds:  # private copies of the terminal, so that fd 1/2 can point at a log during a run
            self.out = os.fdopen(os.dup(_real_fd(sys.stdout)), 'w', buffering=1, encoding='utf-8')
            self.err = os.fdopen(os.dup(_real_fd(sys.stderr)), 'w', buffering=1, encoding='utf-8')
        else:
            self.out, self.err = self._orig
        self._switch = (_Switch(self._orig[0]), _Switch(self._orig[1]))

    @contextlib.contextmanager
    def capture(self, log_path: str) -> Iterator[None]:
        ensure_dir(os.path.dirname(log_path))
        with open(log_path, 'a', encoding='utf-8', buffering=1) as log:
            saved = None
            for s in (sys.stdout, sys.stderr):
                s.flush()
            if self._fds:
                saved = (os.dup(1), os.dup(2))
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
            for sw in self._switch:
                sw.target = log
            sys.stdout, sys.stderr = self._switch
            try:
                yield
            finally:
                for s in (sys.stdout, sys.stderr):
                    s.flush()
                for sw, orig in zip(self._switch, self._orig):
                    sw.target = orig
                sys.stdout, sys.stderr = self._orig
                if saved is not None:
                    os.dup2(saved[0], 1)
                    os.dup2(saved[1], 2)
                    os.close(saved[0])
                    os.close(saved[1])

    def close(self) -> None:
        if self._fds:
            for s in (self.out, self.err):
                with contextlib.suppress(OSError):
                    s.close()


def _real_fd(stream: Any) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd if fd in (1, 2) else None


def _failed(run: RunSpec, what: str, exc: BaseException) -> BaseException:
    log = run.path('console.log')
    if isinstance(exc, XZooError):
        return type(exc)(f'{run.name}: {what} failed: {exc} (full log: {log})')
    return exc


def do_train(state: RunState, console: Console) -> dict[str, Any]:
    """Train (or resume) the run; write ``run.json`` first and ``train_done.json`` at the end."""
    from .training import train

    run = state.run
    ensure_dir(run.work_dir)
    write_json(run.path('run.json'), dict(arm=run.arm, seed=run.seed, config=os.path.abspath(run.config),
                                          cfg_options=run.cfg_options, fingerprint=state.fingerprint))
    start = time.perf_counter()
    try:
        with console.capture(run.path('console.log')):
            runner = train(run.config, work_dir=run.work_dir, resume='auto', cfg_options=run.cfg_options)
    except Exception as exc:
        raise _failed(run, 'training', exc) from exc
    seconds = time.perf_counter() - start
    iters, per_epoch = int(runner.iter), len(runner.train_dataloader)
    del runner
    gc.collect()
    ckpt = latest_checkpoint(run.work_dir)
    resumed = state.resume_from and os.path.basename(state.resume_from)
    record = dict(checkpoint=os.path.basename(ckpt), fingerprint=state.fingerprint, seconds=round(seconds, 2),
                  iters=iters, iters_per_epoch=per_epoch, resumed_from=resumed,
                  seconds_per_iter=None if state.resume_from else round(seconds / max(iters, 1), 5))
    write_json(run.path('train_done.json'), record)
    return record


def do_test(state: RunState, checkpoint: str, test_args: Mapping[str, Any], console: Console) -> dict[str, Any]:
    """Test the run's checkpoint with per-image values (``per_image.json``), then ``test_done.json``."""
    from .testing import test

    run = state.run
    ensure_dir(run.work_dir)
    if run.checkpoint is not None:
        write_json(run.path('run.json'), dict(arm=run.arm, seed=run.seed, config=os.path.abspath(run.config),
                                              checkpoint=os.path.abspath(checkpoint), cfg_options=run.cfg_options,
                                              fingerprint=state.fingerprint))
    start = time.perf_counter()
    try:
        with console.capture(run.path('console.log')):
            metrics = test(run.config, checkpoint, work_dir=run.work_dir, cfg_options=run.cfg_options,
                           per_image=run.path('per_image.json'), **test_args)
    except Exception as exc:
        raise _failed(run, 'testing', exc) from exc
    gc.collect()
    record = dict(fingerprint=fingerprint_of_test(state.fingerprint, checkpoint, test_args),
                  checkpoint=os.path.abspath(checkpoint), seconds=round(time.perf_counter() - start, 2),
                  metrics=metrics)
    write_json(run.path('test_done.json'), record)
    return record


# --- cost ---------------------------------------------------------------------------------------------------------

def remaining_iters(state: RunState, total: int, per_epoch: int | None) -> int:
    """Training iterations left for a run of ``total`` iterations (``per_epoch`` converts epoch checkpoints)."""
    if state.train in ('done', 'given'):
        return 0
    step = step_of(state.resume_from) if state.resume_from else None
    if step is None:
        return total
    done = step[1] * (per_epoch or 0) if step[0] == 'epoch' else step[1]
    return max(0, total - done)


def probe_cost(run: RunSpec, test_args: Mapping[str, Any], console: Console, steps: int = 2,
               explain_images: int = 2) -> dict[str, float]:
    """Time ``steps`` training iterations (after one warm-up), the test forward of one batch and the explanation
    (explainers and metrics) of ``explain_images`` images, on the untrained model.

    Returns ``seconds_per_iter``, ``total_iters``, ``iters_per_epoch`` and ``test_seconds`` (the whole test set
    extrapolated from one batch, explanations included).
    """
    import tempfile

    import torch

    from zoo.engine.hooks import sync_class_names
    from zoo.metrics.evaluator import ExplanationQuality

    from ._runner import build_runner, build_training, prepare_runtime, prepare_training

    with tempfile.TemporaryDirectory(prefix='xzoo-probe-') as tmp, console.capture(os.path.join(tmp, 'probe.log')):
        cfg = load_config(run.config, run.cfg_options)
        prepare_runtime(cfg, tmp, run.config, 'none')
        prepare_training(cfg)
        runner = build_runner(cfg)
        build_training(runner)
        loader = runner.train_dataloader
        sync_class_names(runner.model, loader.dataset, 'training')
        batch = next(iter(loader))
        runner.model.train()
        runner.model.train_step(batch, optim_wrapper=runner.optim_wrapper)
        start = time.perf_counter()
        for _ in range(steps):
            runner.model.train_step(batch, optim_wrapper=runner.optim_wrapper)
        per_iter = (time.perf_counter() - start) / steps
        total, per_epoch = int(runner.train_loop.max_iters), len(loader)
        test_loader = runner.build_dataloader(cfg.test_dataloader)
        tbatch = next(iter(test_loader))
        model = runner.model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            outputs = model.test_step(tbatch)
        n_batch, n_test = len(outputs), len(test_loader.dataset)
        test_seconds = (time.perf_counter() - start) / n_batch * n_test
        if test_args.get('explainers'):  # explained images cost far more than a forward pass: time a few
            few = min(explain_images, n_batch)
            quality = ExplanationQuality(test_args['explainers'], test_args.get('explain_metrics') or
                                         ('insertion', 'deletion', 'pointing_game'), subset=few, progress=False,
                                         num_examples=0)
            quality.attach(model, None)
            start = time.perf_counter()
            quality.process(tbatch, outputs)
            n_explained = min(test_args.get('explain_subset') or n_test, n_test)
            test_seconds += (time.perf_counter() - start) / few * n_explained
        del runner, model
        gc.collect()
    return dict(seconds_per_iter=per_iter, total_iters=total, iters_per_epoch=per_epoch, test_seconds=test_seconds)


def measured_cost(states: Sequence[RunState]) -> dict[str, float] | None:
    """Cost of an arm from its finished runs (median seconds per iteration of the runs trained from scratch, median
    test seconds; the first run of a process also pays for imports), or ``None`` when none has both."""
    rates = [s.record['seconds_per_iter'] for s in states if s.record and s.record.get('seconds_per_iter')]
    iters = [s.record['iters'] for s in states if s.record and s.record.get('seconds_per_iter')]
    tests = [r['seconds'] for s in states if (r := read_json(s.run.path('test_done.json')))]
    if not rates or not tests:
        return None
    per_epoch = next((s.record.get('iters_per_epoch') for s in states if s.record), None)
    return dict(seconds_per_iter=statistics.median(rates), total_iters=max(iters), iters_per_epoch=per_epoch,
                test_seconds=statistics.median(tests))
