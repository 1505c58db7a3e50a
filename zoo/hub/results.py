"""The evaluation outputs a model card reports: found in a work dir, read, and turned into results with conventions.

A training work dir holds, once tested (``tools/test.py --out WORK_DIR/metrics.json --explainers ...``, or
``make demo``):

- ``metrics.json``: ``{"config", "checkpoint", "metrics": {"accuracy/top1": 59.2, ...}}``;
- ``explain/results.json``: every explanation number with the way it was computed (explainer, target layer, metric
  fields such as substrate and step, the class explained, the images), plus ``explain/examples_<explainer>.png``
  (best and worst saliency maps) and ``explain/curves.png`` (mean insertion/deletion curves);
- when the run was one of a comparison's (``tools/compare.py OUT``: ``OUT/runs/<arm>/seed_<s>/``), the comparison's
  ``OUT/report.json`` with confidence intervals over seeds (found by itself, or given).

:func:`find_evaluation` gathers them (any can be pointed elsewhere or left out) into an :class:`Evaluation`:
results ``[{key, name, value, conventions, higher_is_better, source}]`` — what :func:`zoo.hub.card.build_card`
turns into ``model-index`` ``EvalResult`` entries — and the figures to ship with the export. Outputs older than the
checkpoint being exported are stale (they describe an earlier model) and are skipped with a note.

Example:
    >>> ev = find_evaluation(None)
    >>> ev.results, ev.notes
    ([], ['No evaluation outputs were given.'])
"""
from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.errors import ConfigError, XZooError
from zoo.core.limits import read_json

METRICS_FILE = 'metrics.json'
EXPLAIN_FILE = os.path.join('explain', 'results.json')
_METRIC_NAMES = {'insertion': 'insertion AUC', 'deletion': 'deletion AUC', 'overall': 'insertion − deletion',
                 'pointing_game': 'pointing game'}
_SPEED_ONLY = ('batch_size', 'type')
"""Metric fields that do not change a number (left out of the conventions shown with it)."""


@dataclass
class Evaluation:
    """What a card reports: ``results`` (see the module docstring), ``figures`` (file name in the export → path),
    the files read, and ``notes`` (what was missing or skipped, for people)."""

    results: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.results


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _plain(conventions: Mapping[str, Any]) -> dict[str, Any]:
    """Conventions without empty values (a YAML-ready flat dict: lists and scalars)."""
    return {k: v for k, v in conventions.items() if v is not None and v != {} and v != []}


def metric_name(key: str) -> str:
    """A readable name for a metric key: ``'accuracy/top5'`` → ``'Top-5 accuracy'``; others unchanged."""
    top = re.fullmatch(r'accuracy/top(\d+)', key)
    return f'Top-{top.group(1)} accuracy' if top else key


def read_metrics(path: str) -> list[dict[str, Any]]:
    """Results of a ``tools/test.py --out`` file (or ``{name: value}`` / ``{name: {"value": v, ...}}``)."""
    data = read_json(path, f'Metrics file {path!r}')
    metrics = data.get('metrics', data) if isinstance(data, Mapping) else None
    if not isinstance(metrics, Mapping):
        raise ConfigError(f'Metrics file {path!r} must hold a JSON object of metrics (or {{"metrics": {{...}}}} as '
                          'tools/test.py --out writes).')
    out = []
    for key, value in metrics.items():
        conventions: dict[str, Any] = {}
        if isinstance(value, Mapping):
            conventions = {k: v for k, v in value.items() if k not in ('value', 'name', 'conventions')}
            conventions.update(value.get('conventions') or {})
            name, value = value.get('name'), value.get('value')
        else:
            name = None
        if _number(value):
            out.append(dict(key=str(key), name=name or metric_name(str(key)), value=float(value),
                            conventions=_plain(conventions), higher_is_better=None, source=path))
    return out


def explanation_results(summary: Mapping[str, Any], source: str = '') -> list[dict[str, Any]]:
    """Results of an explanation report (``explain/results.json``), one per (explainer, metric), each with its
    conventions: explainer, target layer, the metric's fields (substrate, step, scored class, ...), the class the
    maps explain, and the number of images scored."""
    conv = summary.get('conventions') or {}
    explainers = conv.get('explainers') or {}
    out = []
    for ename, per_metric in (summary.get('results') or {}).items():
        ecfg = dict(explainers.get(ename) or {})
        common = dict(explainer=ecfg.get('type', ename),
                      target_layer=ecfg.get('target_layer') or conv.get('default_target_layer'),
                      explain_class=conv.get('explain_class'), subset_seed=conv.get('subset_seed'))
        for mname, entry in per_metric.items():
            if not isinstance(entry, Mapping) or not _number(entry.get('aggregate')):
                continue
            mconv = {k: v for k, v in (entry.get('conventions') or {}).items() if k not in _SPEED_ONLY}
            if 'step_resolved' in mconv:
                mconv['step'] = mconv.pop('step_resolved')
            if mconv.get('substrate') != 'blur':
                mconv.pop('blur_size', None), mconv.pop('blur_sigma', None)
            metric_type = (entry.get('conventions') or {}).get('type')
            conventions = _plain({**common, 'metric': metric_type, **mconv, 'n_images': entry.get('n'),
                                  'n_excluded': entry.get('n_excluded') or None})
            out.append(dict(key=f'explain/{ename}/{mname}',
                            name=f'{ename} {_METRIC_NAMES.get(mname, mname.replace("_", " "))}',
                            value=float(entry['aggregate']), conventions=conventions,
                            higher_is_better=entry.get('higher_is_better'), source=source))
    return out


def _stem(name: Any) -> str:
    base = os.path.basename(str(name))
    return base[:-3] if base.endswith('.py') else base


def comparison_results(report: Mapping[str, Any], names: Sequence[str], source: str = '',
                       work_dir: str | None = None) -> list[dict[str, Any]]:
    """This model's confidence intervals from a ``tools/compare.py`` report (``report.json``), or ``[]``.

    The model is the arm that ran ``work_dir``, or whose label or config file is one of ``names`` (a zoo name, a
    config file name). For every
    metric: its mean over seeds with the interval (``<metric>/seed_mean``), and each paired difference of this arm
    against a reference arm (``<metric>/minus_<reference>``), with level, seeds, images, p-value and method.
    """
    wanted = {_stem(n) for n in names if n}
    result = report.get('result') if isinstance(report.get('result'), Mapping) else {}
    runs = [r for r in report.get('runs') or [] if isinstance(r, Mapping)]
    configs = {r.get('arm'): _stem(r.get('config')) for r in runs}
    here = os.path.realpath(work_dir) if work_dir else None
    ran = {r.get('arm') for r in runs if here and r.get('work_dir') and os.path.realpath(str(r['work_dir'])) == here}
    arm = next((a for a in result.get('arms') or [] if a in ran), None) or next(
        (a for a in result.get('arms') or [] if _stem(a) in wanted or configs.get(a) in wanted), None)
    if arm is None:
        return []
    method = (report.get('method') or {}).get('statement') if isinstance(report.get('method'), Mapping) else None

    def entry(key: str, name: str, est: Mapping[str, Any], **extra: Any) -> dict[str, Any] | None:
        if not all(_number(est.get(k)) for k in ('mean', 'low', 'high')):
            return None
        conventions = _plain({'ci_level': est.get('level', result.get('level')), 'ci_low': float(est['low']),
                              'ci_high': float(est['high']), 'n_seeds': est.get('n_seeds'),
                              'n_images': est.get('n_images'), **extra, 'method': est.get('method'),
                              'interval': method})
        return dict(key=key, name=name, value=float(est['mean']), conventions=conventions, higher_is_better=None,
                    source=source)

    out = []
    for metric, per in (result.get('metrics') or {}).items():
        if not isinstance(per, Mapping):
            continue
        out.append(entry(f'{metric}/seed_mean', f'{metric_name(metric)} (mean over seeds)',
                         (per.get('means') or {}).get(arm) or {}))
        for diff in (per.get('differences') or {}).values():
            if isinstance(diff, Mapping) and diff.get('arm') == arm and diff.get('reference'):
                ref = diff['reference']
                out.append(entry(f'{metric}/minus_{ref}', f'{metric_name(metric)}: {arm} − {ref}', diff,
                                 p_value=diff.get('p_holm', diff.get('p_value'))))
    return [e for e in out if e is not None]


def _comparison_of(work_dir: str) -> str | None:
    """The ``tools/compare.py`` report that ran this work dir (``OUT/runs/<arm>/seed_<s>/`` → ``OUT/report.json``),
    if there is one."""
    path = os.path.normpath(os.path.join(os.path.abspath(work_dir), os.pardir, os.pardir, os.pardir, 'report.json'))
    if not os.path.isfile(path):
        return None
    try:
        report = read_json(path, path)
    except XZooError:
        return None
    runs = report.get('runs') if isinstance(report, Mapping) else None
    here = os.path.realpath(work_dir)
    mine = any(isinstance(r, Mapping) and r.get('work_dir') and os.path.realpath(str(r['work_dir'])) == here
               for r in runs or [])
    return path if mine else None


def _fresh(path: str, checkpoint: str | None, notes: list[str]) -> bool:
    """``path`` is not older than ``checkpoint`` (else it describes an earlier model: skipped, with a note)."""
    if checkpoint and os.path.isfile(checkpoint) and os.path.getmtime(path) < os.path.getmtime(checkpoint):
        notes.append(f'{path} is older than the checkpoint {os.path.basename(checkpoint)} (an earlier model); left '
                     'out. Test the checkpoint again to report its results.')
        return False
    return True


def find_evaluation(work_dir: str | os.PathLike | None, *, checkpoint: str | None = None,
                    metrics: Sequence[str | os.PathLike] | None = None, explain: str | os.PathLike | None = None,
                    comparison: str | os.PathLike | None = None, names: Sequence[str] = (),
                    include: bool = True) -> Evaluation:
    """The evaluation outputs of a model: by default ``WORK_DIR/metrics.json`` and ``WORK_DIR/explain/results.json``
    (with the PNGs next to it); ``metrics``/``explain``/``comparison`` point elsewhere; ``include=False`` leaves
    everything out. ``names`` (zoo name, config file) pick this model's entry in a comparison report."""
    ev = Evaluation()
    if not include:
        ev.notes.append('Evaluation outputs were left out on request.')
        return ev
    root = os.fspath(work_dir) if work_dir is not None else None
    given = [os.fspath(m) for m in metrics or ()]
    metric_files = given or ([os.path.join(root, METRICS_FILE)] if root else [])
    explain_file = os.fspath(explain) if explain else (os.path.join(root, EXPLAIN_FILE) if root else None)
    for path in [*given, *([os.fspath(explain)] if explain else []), *([os.fspath(comparison)] if comparison else [])]:
        if not os.path.isfile(path):
            raise ConfigError(f'Evaluation file {path!r} does not exist.')
    explained: list[dict[str, Any]] = []
    if explain_file and os.path.isfile(explain_file) and (explain or _fresh(explain_file, checkpoint, ev.notes)):
        summary = read_json(explain_file, f'Explanation report {explain_file!r}')
        explained = explanation_results(summary if isinstance(summary, Mapping) else {}, explain_file)
        ev.files.append(explain_file)
        folder = os.path.dirname(explain_file)
        for png in sorted(glob.glob(os.path.join(folder, 'examples_*.png'))) + [os.path.join(folder, 'curves.png')]:
            if os.path.isfile(png):
                ev.figures[os.path.basename(png)] = png
    keys = {r['key'] for r in explained}  # explanation numbers come with their conventions from results.json
    for path in metric_files:
        if os.path.isfile(path) and (given or _fresh(path, checkpoint, ev.notes)):
            ev.results += [r for r in read_metrics(path) if r['key'] not in keys]
            ev.files.append(path)
    ev.results += explained
    comparison = comparison or (_comparison_of(root) if root else None)
    if comparison:
        report = read_json(os.fspath(comparison), f'Comparison report {os.fspath(comparison)!r}')
        cis = comparison_results(report if isinstance(report, Mapping) else {}, names, os.fspath(comparison), root)
        if not cis:
            ev.notes.append(f'{os.fspath(comparison)} has no entry for this model ({", ".join(filter(None, names))}).')
        ev.results += cis
        ev.files.append(os.fspath(comparison))
    if not ev.files and root:
        ev.notes.append(f'No evaluation outputs in {root} ({METRICS_FILE}, {EXPLAIN_FILE}); make them with '
                        f'tools/test.py CONFIG CHECKPOINT --work-dir {root} --out {os.path.join(root, METRICS_FILE)} '
                        '--explainers gradcam.')
    elif not ev.files:
        ev.notes.append('No evaluation outputs were given.')
    return ev
