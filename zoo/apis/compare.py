"""Paired comparisons with confidence intervals: training configs over seeds, or explainers of one model.

:func:`compare` trains every config once per seed (``randomness.seed`` overridden per run; finished runs reused,
killed ones resumed), tests every run on the same test images with per-image values (correct or not, and every
explanation metric of every explainer), and reports for every metric each config's mean and the paired
difference ``B − A`` (seed by seed, image by image) with a confidence interval and a p-value
(:mod:`zoo.stats`). :func:`compare_explainers` scores several explainers on one model's test images (or several
checkpoints of it, one per seed) and compares them the same way. What is written to ``out``:

- ``report.md``, ``report.json`` (every estimate, per-seed figures and run records), ``forest.png``;
- ``runs/<arm>/seed_<s>/``: each run's work dir, ``per_image.json`` and ``console.log``;
- ``compare.log``: the lines the console showed.

Example::

    from zoo.apis.compare import compare, compare_explainers
    res = compare(['configs/efficientnetlite0_baseline_clutteredfmnist.py',
                   'configs/efficientnetlite0_lico_clutteredfmnist.py'], seeds=5, out='work_dirs/lico_vs_base',
                  cfg_options=['train_cfg.max_epochs=5'], explainers=['gradcam'],
                  explain_metrics=['insertion', 'deletion', 'pointing_game'], explain_subset=500)
    print(res.table())
    res = compare_explainers([('configs/x.py', 'work_dirs/x/epoch_5.pth')], ['gradcam', 'scorecam'],
                             out='work_dirs/cams')
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from registry.errors import CheckpointError, ConfigError, DataError
from zoo.core.fileio import WorkDirLock, atomic_write_text, ensure_dir, write_json
from zoo.stats import METHODS
from zoo.stats import report as md
from zoo.stats.table import compare_arms

from . import _compare_runs as _runs
from ._compare_report import duration, markdown, tables_from_runs, title
from ._compare_runs import Console, RunSpec, RunState, read_json, run_state
from .config import parse_cfg_options
from .preflight import preflight_runs

SEED_STRIDE = 1000
"""With ``independent_seeds``, arm ``k`` trains with seed ``s + 1000 k`` instead of ``s``."""


@dataclass
class Plan:
    """The runs of a comparison and what is left of each (``--dry-run`` prints :meth:`text`)."""

    kind: str
    out: str
    states: list[RunState]
    estimates: dict[str, float | None] = field(default_factory=dict)
    cost_notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        w = max([3, *(len(s.run.arm) for s in self.states)])
        rows = [f'{"arm":<{w}} {"seed":>5}  {"train":<24} {"test":<5} {"estimate":>9}']
        for st in self.states:
            r = st.run
            train = f'resume {os.path.basename(st.resume_from)}' if st.train == 'resume' else st.train
            rows.append(f'{r.arm:<{w}} {r.seed:>5}  {train[:24]:<24} {st.test:<5} '
                        f'{duration(self.estimates.get(r.name)):>9}')
        known = [v for v in self.estimates.values() if v is not None]
        left = duration(sum(known)) + ('' if len(known) == len(self.states) else ' + runs without an estimate')
        head = f'{self.kind} comparison: {len(self.states)} runs in {self.out}'
        return '\n'.join([head, *rows, f'estimated time left: {left}', *self.cost_notes])


@dataclass
class Comparison:
    """The outcome: ``report`` is what ``report.json`` holds, ``files`` the paths written."""

    out: str
    report: dict[str, Any]
    files: dict[str, str]

    def table(self) -> str:
        """The differences table (the means table when there is one arm)."""
        res = self.report['result']
        if any(e['differences'] for e in res['metrics'].values()):
            return md.differences_table(res)
        return md.means_table(res)


def _labels(configs: Sequence[str], labels: Sequence[str] | None) -> list[str]:
    if labels is not None and len(labels) != len(configs):
        raise ConfigError(f'{len(labels)} labels for {len(configs)} configs; give one label per config.')
    raw = list(labels) if labels else [os.path.splitext(os.path.basename(str(c)))[0] for c in configs]
    out: list[str] = []
    for name in raw:
        base = re.sub(r'[^A-Za-z0-9._+-]+', '_', str(name)).strip('_') or 'arm'
        label, k = base, 2
        while label in out:
            label, k = f'{base}_{k}', k + 1
        out.append(label)
    return out


def _seeds(seeds: int | Iterable[int]) -> list[int]:
    out = list(range(int(seeds))) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ConfigError(f'seeds must be a positive count or distinct integers, got {seeds!r}.')
    return out


def _test_args(explainers: Sequence[Any] | None, explain_metrics: Sequence[Any] | None,
               explain_subset: int | None) -> dict[str, Any]:
    if explain_metrics and not explainers:
        raise ConfigError('explain_metrics were given without explainers: name the explainers to score, e.g. '
                          '--explainers gradcam.')
    if explain_subset is not None and explain_subset < 1:
        raise ConfigError(f'explain_subset must be a positive number of images, got {explain_subset}.')
    if not explainers:
        return {}
    return dict(explainers=list(explainers), explain_metrics=list(explain_metrics or
                                                                  ('insertion', 'deletion', 'pointing_game')),
                explain_subset=explain_subset, explain_options=dict(progress=False))


def _stats_args(method: str, level: float, bootstrap_samples: int) -> dict[str, Any]:
    if method not in METHODS:
        raise ConfigError(f'unknown interval method {method!r}; choose one of {", ".join(METHODS)}.')
    if not 0 < level < 1:
        raise ConfigError(f'level is a confidence level in (0, 1), e.g. 0.95; got {level!r}.')
    return dict(method=method, level=level, **(dict(samples=int(bootstrap_samples)) if method == 'bootstrap' else {}))


def compare(configs: Sequence[str], seeds: int | Iterable[int] = 5, out: str = 'work_dirs/compare',
            labels: Sequence[str] | None = None, cfg_options: Iterable[str] | Mapping[str, Any] | None = None,
            explainers: Sequence[Any] | None = None, explain_metrics: Sequence[Any] | None = None,
            explain_subset: int | None = None, method: str = 'crossed', level: float = 0.95,
            reference: str | None = None, pairs: str = 'reference', bootstrap_samples: int = 4000,
            independent_seeds: bool = False, dry_run: bool = False, probe: bool = True,
            progress: bool = True) -> Comparison | Plan:
    """Train each config once per seed, test every run, and compare the configs (see the module docstring).

    Args:
        configs: config files; ``labels`` name them in the report (default: the file names).
        seeds: a count (seeds ``0 .. n-1``) or the seeds; the same seeds for every config (runs are paired by
            seed) unless ``independent_seeds`` (config ``k`` then uses ``seed + 1000 k``).
        cfg_options: overrides applied to every config (e.g. ``['train_cfg.max_epochs=5']``).
        explainers, explain_metrics, explain_subset: explanation quality on the test set (as ``tools/test.py``).
        method, level, bootstrap_samples: the interval (:mod:`zoo.stats`); ``reference``/``pairs``: which
            differences (default: every config minus the first).
        dry_run: return the :class:`Plan` (with time estimates; ``probe`` times a few training steps of configs
            that have no finished run) instead of running.
    """
    if not configs:
        raise ConfigError('compare needs at least one config.')
    arms = _labels(configs, labels)
    if reference is not None and reference not in arms:
        raise ConfigError(f'reference {reference!r} is not one of the configs\' labels {arms}.')
    seed_list = _seeds(seeds)
    user = parse_cfg_options(cfg_options)
    test_args = _test_args(explainers, explain_metrics, explain_subset)
    stats_args = _stats_args(method, level, bootstrap_samples)
    runs = []
    for s in seed_list:  # seed-major: a partial comparison is always paired
        for k, (arm, config) in enumerate(zip(arms, configs)):
            if not os.path.isfile(config):
                raise ConfigError(f'config {config!r} does not exist.')
            seed = s + SEED_STRIDE * k if independent_seeds else s
            runs.append(RunSpec(arm, s, config, os.path.join(out, 'runs', arm, f'seed_{s}'),
                                {**user, '+randomness.seed': seed}))
    info = dict(kind='configs', configs=dict(zip(arms, map(str, configs))), cfg_options=user,
                independent_seeds=independent_seeds)
    return _run(runs, arms, seed_list, out, test_args, stats_args, reference, pairs, info, dry_run, probe, progress)


def compare_explainers(models: Sequence[tuple[str, str]], explainers: Sequence[Any],
                       explain_metrics: Sequence[Any] | None = None, out: str = 'work_dirs/compare_explainers',
                       explain_subset: int | None = None,
                       cfg_options: Iterable[str] | Mapping[str, Any] | None = None, method: str = 'crossed',
                       level: float = 0.95, reference: str | None = None, pairs: str = 'reference',
                       bootstrap_samples: int = 4000, dry_run: bool = False, progress: bool = True
                       ) -> Comparison | Plan:
    """Compare explainers on the same test images of one model, paired image by image.

    ``models``: ``(config, checkpoint)`` pairs; several are replicates of one recipe (e.g. one per training seed),
    which makes the interval cover training randomness too. Explainer labels (``label`` in a config dict, else the
    alias) are the arms; the explanation metrics are the metrics.
    """
    if not models:
        raise ConfigError('compare_explainers needs a model: (config, checkpoint).')
    if not explainers or len(explainers) < 1:
        raise ConfigError('compare_explainers needs explainers, e.g. gradcam,scorecam.')
    test_args = _test_args(explainers, explain_metrics, explain_subset)
    stats_args = _stats_args(method, level, bootstrap_samples)
    user = parse_cfg_options(cfg_options)
    runs = []
    for r, (config, ckpt) in enumerate(models):
        if not os.path.isfile(config):
            raise ConfigError(f'config {config!r} does not exist.')
        if not os.path.isfile(ckpt):
            raise CheckpointError(f'checkpoint {ckpt!r} does not exist.')
        runs.append(RunSpec('model', r, config, os.path.join(out, 'runs', 'model', f'seed_{r}'), dict(user),
                            checkpoint=ckpt))
    info = dict(kind='explainers', models=[list(map(str, m)) for m in models], cfg_options=user)
    return _run(runs, None, list(range(len(models))), out, test_args, stats_args, reference, pairs, info, dry_run,
                False, progress)


# --- running --------------------------------------------------------------------------------------------------------

def _plan(runs: list[RunSpec], out: str, test_args: Mapping[str, Any], kind: str, probe: bool,
          console: Console) -> Plan:
    states = [run_state(r, test_args) for r in runs]
    plan = Plan(kind, out, states, cost_notes=[f'note: {n}' for n in _schedule_notes(runs)])
    for arm in dict.fromkeys(s.run.arm for s in states):
        mine = [s for s in states if s.run.arm == arm]
        cost, source = _runs.measured_cost(mine), 'measured on finished runs'
        if cost is None and probe and any(s.train != 'given' and s.train != 'done' for s in mine):
            cost, source = _runs.probe_cost(mine[0].run, test_args, console), 'probed with the untrained model'
        if cost is None and all(s.train in ('done', 'given') for s in mine):
            tests = [r['seconds'] for s in mine if (r := read_json(s.run.path('test_done.json')))]
            cost = dict(seconds_per_iter=0.0, total_iters=0, iters_per_epoch=None,
                        test_seconds=sum(tests) / len(tests) if tests else None)
        for s in mine:
            left = None
            if cost is not None:
                it = _runs.remaining_iters(s, int(cost['total_iters']), cost.get('iters_per_epoch'))
                test = 0.0 if s.test == 'done' else cost.get('test_seconds')
                left = None if test is None else it * cost['seconds_per_iter'] + test
            plan.estimates[s.run.name] = left
        if cost is not None and cost.get('seconds_per_iter'):
            plan.cost_notes.append(f"  {arm}: {cost['seconds_per_iter']:.3g} s/iteration x {cost['total_iters']} "
                                   f"iterations, test {duration(cost.get('test_seconds'))} ({source})")
    return plan


def _run(runs: list[RunSpec], arms: list[str] | None, seeds: list[int], out: str, test_args: dict[str, Any],
         stats_args: dict[str, Any], reference: str | None, pairs: str, info: dict[str, Any], dry_run: bool,
         probe: bool, progress: bool) -> Comparison | Plan:
    console = Console()
    try:
        if dry_run:
            return _plan(runs, out, test_args, info['kind'], probe, console)
        with WorkDirLock(out):
            states = [run_state(r, test_args) for r in runs]
            preflight_runs(states)  # before the first run: everything any run still needs, in one message
            notes = _schedule_notes(runs)
            for note in notes:
                print(f'note: {note}', file=console.out)
            records = _execute(states, test_args, console, out, progress)
            return _report(records, arms, seeds, out, stats_args, reference, pairs, dict(info, notes=notes),
                           test_args)
    finally:
        console.close()


def _schedule_notes(runs: list[RunSpec]) -> list[str]:
    firsts = {r.arm: r for r in runs if r.checkpoint is None}
    return [n for r in firsts.values() if (n := _runs.schedule_note(r))]


def _execute(states: list[RunState], test_args: Mapping[str, Any], console: Console, out: str,
             progress: bool) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    ensure_dir(out)
    bar = tqdm(total=len(states), desc='runs', unit='run', file=console.err, disable=not progress, leave=False)
    records = []
    try:
        for i, st in enumerate(states, 1):
            run = st.run
            bar.set_postfix_str(run.name)
            if st.train in ('new', 'resume'):
                trained = _runs.do_train(st, console)
                how = (f"resumed from {trained['resumed_from']}, " if trained['resumed_from'] else '') + \
                    f"trained in {duration(trained['seconds'])}"
            else:
                trained = st.record or {}
                how = 'checkpoint given' if st.train == 'given' else 'training reused'
            ckpt = run.checkpoint or run.path(trained['checkpoint'])
            if st.test == 'todo':
                tested = _runs.do_test(st, ckpt, test_args, console)
                how += f", tested in {duration(tested['seconds'])}"
            else:
                tested = read_json(run.path('test_done.json')) or {}
                how += ', test reused'
            line = f'[{i}/{len(states)}] {run.name}: {how}' + _headline(tested.get('metrics') or {})
            bar.write(line, file=console.out)
            with open(os.path.join(out, 'compare.log'), 'a', encoding='utf-8') as log:
                log.write(line + '\n')
            bar.update()
            records.append(dict(arm=run.arm, seed=run.seed, work_dir=run.work_dir, config=run.config,
                                cfg_options=run.cfg_options, checkpoint=ckpt, train=trained, test=tested))
    finally:
        bar.close()
    return records


def _headline(metrics: Mapping[str, float]) -> str:
    keys = [k for k in metrics if k.startswith('accuracy/')][:1]
    keys += [k for k in metrics if k.endswith('/overall')][:2] or [k for k in metrics if k.startswith('explain/')][:2]
    return ''.join(f' · {k.removeprefix("explain/")} {metrics[k]:.4g}' for k in keys)


# --- report -------------------------------------------------------------------------------------------------------

def _report(records: list[dict[str, Any]], arms: list[str] | None, seeds: list[int], out: str,
            stats_args: Mapping[str, Any], reference: str | None, pairs: str, info: Mapping[str, Any],
            test_args: Mapping[str, Any]) -> Comparison:
    from zoo.viz.forest import panels_from_result, save_forest

    values, directions, notes = tables_from_runs(records, info['kind'])
    if arms is not None:
        values = {a: values[a] for a in arms if a in values}
    if not values:
        raise DataError('the runs hold no metric to compare.')
    result = compare_arms(values, reference=reference, pairs=pairs, higher_is_better=directions, **stats_args)
    files = dict(json=os.path.join(out, 'report.json'), markdown=os.path.join(out, 'report.md'))
    panels = panels_from_result(result)
    if any(p['rows'] for p in panels.values()):
        files['forest'] = str(save_forest(os.path.join(out, 'forest.png'), panels,
                                          title=title(result, info), level=result['level'],
                                          fmt=lambda r: md.interval(r, sign=True)))
    statement = md.method_statement(result['method'], result['level'], len(seeds))
    report = dict(kind=info['kind'], title=title(result, info), seeds=seeds, method=dict(
        name=result['method'], level=result['level'], statement=statement,
        bootstrap_samples=stats_args.get('samples')), test=dict(test_args), setup=dict(info), result=result,
        notes=[*info.get('notes', []), *notes], runs=records, files=files)
    write_json(files['json'], report)
    atomic_write_text(files['markdown'], markdown(report))
    return Comparison(out, report, files)
