"""Building an mmengine Runner from a checked xzoo config (shared by train and test), with a quiet console.

The console and the log file are two handlers of mmengine's ``MMLogger``. xzoo's runner keeps the file handler as
mmengine sets it (``log_level``, default INFO: environment, the full config, hook tables, every logged iteration,
deprecation notices) and lets through to the console only records at ``console_log_level`` (a config key, default
``'WARNING'``; ``'INFO'`` = mmengine's usual console, what the tools' ``--verbose`` sets), except deprecation
notices, plus INFO records logged with ``extra={'console': True}`` (a run that resumes says so). With a quiet
console, ``ProgressBarHook`` shows the training, validation and test progress as tqdm bars instead of log lines.
The log file is ``<work_dir>/<timestamp>/<timestamp>.log`` (:func:`last_log_file`).
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from mmengine.config import Config
from mmengine.runner import Runner

from registry.errors import ConfigError, XZooError
from zoo.validation import train_loop_type

from .config import validate_config


def default_work_dir(config: Any) -> str:
    stem = os.path.splitext(os.path.basename(os.fspath(config)))[0] if isinstance(config, (str, os.PathLike)) \
        else 'xzoo'
    return os.path.join('.', 'work_dirs', stem)


def _custom_hooks(cfg: Config) -> list:
    hooks = cfg.get('custom_hooks') or []
    if not isinstance(hooks, (list, tuple)):
        raise ConfigError(f"custom_hooks must be a list of hook configs, e.g. [dict(type='ClassNamesHook')], got "
                          f'{hooks!r}.')
    return list(hooks)


CONSOLE_LOG_LEVEL = 'WARNING'
"""The console's level when the config sets no ``console_log_level``."""
_DEPRECATION = re.compile(r'deprecat', re.IGNORECASE)


def console_level(cfg: Any) -> int:
    """The console's log level of a config (``console_log_level``, default :data:`CONSOLE_LOG_LEVEL`)."""
    level = (cfg.get('console_log_level') if cfg is not None else None) or CONSOLE_LOG_LEVEL
    if isinstance(level, str) and level.upper() in logging.getLevelNamesMapping():
        return logging.getLevelNamesMapping()[level.upper()]
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    raise ConfigError(f"console_log_level must be a logging level such as 'WARNING' or 'INFO', got {level!r}.")


class ConsoleFilter(logging.Filter):
    """What of the log reaches the console: records at ``level`` or above except deprecation notices, and records
    logged with ``extra={'console': True}``."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, 'console', False):
            return True
        return record.levelno >= self.level and not _DEPRECATION.search(record.getMessage())


def quiet_console(logger: logging.Logger, level: int) -> None:
    """Filter the console handler(s) of ``logger`` with :class:`ConsoleFilter` (file handlers are untouched)."""
    for handler in logger.handlers:
        if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
            continue
        if any(isinstance(f, ConsoleFilter) for f in handler.filters) or handler.level > logging.INFO:
            continue  # already done, or a non-main rank's console (errors only)
        handler.addFilter(ConsoleFilter(level))


def last_log_file() -> str | None:
    """The log file of the most recent Runner of this process (``None`` before any)."""
    from mmengine.logging import MMLogger

    return getattr(MMLogger.get_current_instance(), 'log_file', None)


def prepare_runtime(cfg: Config, work_dir: str | None, config: Any, launcher: str,
                    verbose: bool | None = None) -> Config:
    """Fill in what every xzoo run needs: work_dir, launcher, ClassNamesHook, a CPU-capable DDP backend, and the
    console: ``verbose=True`` sets ``console_log_level='INFO'`` (mmengine's full console output); otherwise a
    ``ProgressBarHook`` shows progress on the quiet console."""
    import torch

    if verbose:
        cfg.console_log_level = 'INFO'
    quiet = console_level(cfg) > logging.INFO
    if work_dir:
        cfg.work_dir = work_dir
    elif not cfg.get('work_dir'):
        cfg.work_dir = default_work_dir(config)
    cfg.launcher = launcher
    hooks = _custom_hooks(cfg)
    if not any(isinstance(h, dict) and h.get('type') == 'ClassNamesHook' for h in hooks):
        hooks.insert(0, dict(type='ClassNamesHook'))
    if quiet and not any(isinstance(h, dict) and h.get('type') == 'ProgressBarHook' for h in hooks):
        hooks.append(dict(type='ProgressBarHook'))
    cfg.custom_hooks = hooks
    defaults = cfg.get('default_hooks')
    if isinstance(defaults, dict) and defaults.get('nonfinite_loss', ...) is None:
        # switched off; mmengine accepts None only for its own default hooks
        cfg.default_hooks = {k: v for k, v in defaults.items() if k != 'nonfinite_loss'}
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if isinstance(loader, dict) and not loader.get('num_workers'):
            loader['persistent_workers'] = False  # torch refuses persistent workers without workers
    for key in ('env_cfg', 'randomness'):
        if cfg.get(key) is not None and not isinstance(cfg.get(key), dict):
            raise ConfigError(f'{key} must be a dict, got {cfg.get(key)!r}.')
    if not isinstance((cfg.get('env_cfg') or {}).get('dist_cfg', {}), dict):
        raise ConfigError(f"env_cfg.dist_cfg must be a dict, e.g. dict(backend='nccl'), got {cfg.env_cfg.dist_cfg!r}.")
    if not torch.cuda.is_available():
        # (ConfigDict.setdefault returns a detached copy: assign the edited dicts back)
        env = dict(cfg.get('env_cfg') or {})
        dist = dict(env.get('dist_cfg') or {})
        if dist.get('backend', 'nccl') == 'nccl':
            dist['backend'] = 'gloo'
        env['dist_cfg'] = dist
        cfg.env_cfg = env
        if launcher != 'none' and not cfg.get('model_wrapper_cfg'):
            # scoped name: mmengine's wrap_model looks it up in its root registry
            cfg.model_wrapper_cfg = dict(type='zoo.CPUDistributedDataParallel')
    if launcher == 'pytorch':
        missing = [k for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE') if k not in os.environ]
        if missing:
            raise ConfigError(f'--launcher pytorch needs the environment torchrun sets ({", ".join(missing)} '
                              'missing). Start with: torchrun --nproc_per_node=N tools/train.py CONFIG '
                              '--launcher pytorch')
    validate_config(cfg)
    return cfg


def prepare_training(cfg: Config) -> Config:
    """What exact resume needs: xzoo's resumable train loops and ``ExactResumeHook`` (see ``zoo.engine.resume``).

    A ``train_cfg`` without ``type`` gets ``ResumableEpochBasedTrainLoop`` (``by_epoch=True``, mmengine's default)
    or ``ResumableIterBasedTrainLoop``; an explicit ``type`` is kept.
    """
    missing = [k for k in ('train_dataloader', 'train_cfg', 'optim_wrapper') if not cfg.get(k)]
    if missing:
        raise ConfigError(f'The config has no {missing[0]}; training needs train_dataloader, train_cfg and '
                          'optim_wrapper (see configs/_base_/datasets/ and configs/_base_/schedules/).')
    if isinstance(cfg.get('train_cfg'), dict):
        cfg.train_cfg = train_loop_type(cfg.train_cfg)
    hooks = _custom_hooks(cfg)
    if not any(isinstance(h, dict) and h.get('type') == 'ExactResumeHook' for h in hooks):
        hooks.append(dict(type='ExactResumeHook'))
    cfg.custom_hooks = hooks
    return cfg


_runs_in_process = 0


def _unique_experiment_name(cfg: Config) -> None:
    """Give the 2nd, 3rd ... runner of one process its own logger, visualizer and message hub.

    mmengine names them ``{config stem}_{timestamp}`` (1-second resolution) and hands back the *existing* instance
    when the name is taken, so two runners started in the same second (a notebook, a test session, a sweep)
    would share the first one's log file. A config's own ``experiment_name`` is kept.
    """
    global _runs_in_process
    _runs_in_process += 1
    if _runs_in_process > 1 and not cfg.get('experiment_name'):
        stem = os.path.splitext(os.path.basename(cfg.filename or 'run'))[0]
        cfg.experiment_name = f'{stem}_run{_runs_in_process}'


class ZooRunner(Runner):
    """mmengine's ``Runner`` whose console shows only what :class:`ConsoleFilter` lets through (the log file keeps
    everything); what :func:`build_runner` builds unless the config names another ``runner_type``.

    With ``keep_config_dump=True`` (what ``zoo.apis.test`` sets) a work dir that already holds a config dump keeps
    it: testing a checkpoint in its training work dir must not replace the training config (with its
    training-only parts, which say how the model was trained) by the inference config of the test.
    """

    def build_logger(self, log_level: int | str = 'INFO', log_file: str | None = None, **kwargs: Any) -> Any:
        logger = super().build_logger(log_level=log_level, log_file=log_file, **kwargs)
        quiet_console(logger, console_level(self.cfg))
        return logger

    def train(self) -> Any:
        try:
            return super().train()
        finally:
            self._close_progress_bars()

    def test(self) -> dict:
        try:
            return super().test()
        finally:
            self._close_progress_bars()

    def _close_progress_bars(self) -> None:
        for hook in self.hooks:
            if callable(getattr(hook, 'close_all', None)):
                hook.close_all()

    def dump_config(self) -> None:
        if self.cfg.get('keep_config_dump') and glob.glob(os.path.join(glob.escape(self.work_dir), '*.py')):
            return  # the log file holds this run's config
        super().dump_config()


def build_runner(cfg: Config) -> Any:
    from registry import RUNNERS
    from zoo.engine import register_trusted_local_loader

    register_trusted_local_loader()
    _unique_experiment_name(cfg)
    if cfg.get('launcher', 'none') == 'pytorch':
        import torch

        if not torch.cuda.is_available():  # mmengine's launcher would call torch.cuda.set_device
            from zoo.engine import init_cpu_process_group
            init_cpu_process_group((cfg.get('env_cfg') or {}).get('dist_cfg'))
    level = console_level(cfg)
    with component_errors():
        if cfg.get('runner_type'):  # another Runner class: its console is quietened once it is built
            runner = RUNNERS.build(cfg)
            quiet_console(runner.logger, level)
            return runner
        return ZooRunner.from_cfg(cfg)


def build_training(runner: Any) -> None:
    """Build what ``runner.train()`` would build first (loops, optimizer, schedulers), with config errors as one
    line; ``train()`` then finds them built."""
    with component_errors():
        runner.train_loop  # noqa: B018 - the property builds the loop and its dataloader
        runner.val_loop  # noqa: B018
        runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
        if runner.param_schedulers is not None:
            runner.param_schedulers = runner.build_param_scheduler(runner.param_schedulers)


_BUILD_ERRORS = (TypeError, ValueError, AssertionError, KeyError, IndexError, AttributeError, RuntimeError)


@contextlib.contextmanager
def component_errors() -> Iterator[None]:
    """Turn an error raised while a registered component is being constructed into a one-line ConfigError.

    The constructor got a value from the config it rejects (``nn.Dropout(p=2)``, an optimizer's negative lr, a
    scheduler's ``end < begin``): the message names the component and keeps the library's own words; the original
    traceback is the ``__cause__`` (``XZOO_DEBUG=1`` prints it). Errors raised elsewhere pass through unchanged.

    Example::

        with component_errors():
            model = MODELS.build(cfg.model)
    """
    try:
        yield
    except XZooError:
        raise
    except _BUILD_ERRORS as exc:
        component = failing_component(exc.__traceback__)
        if component is None:
            raise
        text = ' '.join(str(exc).split())[:300]
        raise ConfigError(f'{component} rejected a value of the config: {type(exc).__name__}: {text}. Fix that '
                          'setting (XZOO_DEBUG=1 shows the traceback).') from exc


def _registered_classes() -> set[type]:
    from registry import ALL

    found: set[type] = set()
    for reg in ALL.values():
        node = reg
        while node is not None:
            found.update(v for v in node._module_dict.values() if isinstance(v, type))
            node = node.parent
    return found


def failing_component(tb: TracebackType | None) -> str | None:
    """Name of the innermost registered component whose ``__init__`` is on the traceback ``tb``, if any."""
    registered = _registered_classes()
    name = None
    while tb is not None:
        frame = tb.tb_frame
        owner = frame.f_locals.get('self') if frame.f_code.co_name == '__init__' else None
        if owner is not None and type(owner) in registered:
            name = type(owner).__name__
        tb = tb.tb_next
    return name
