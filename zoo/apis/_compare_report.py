"""Reading a comparison's runs into seeds x images tables, and ``report.md``.

:func:`tables_from_runs` turns the runs' ``per_image.json`` files into ``{arm: {metric: [S, N]}}`` with every table
aligned on the test images' indices (and refuses runs that tested other images); :func:`markdown` writes the report
from the ``report.json`` payload.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from registry.errors import DataError
from zoo.stats import report as md

from ._compare_runs import read_json


def duration(seconds: float | None) -> str:
    """``'41 s'``, ``'12 min'``, ``'1.5 h'``; ``'?'`` when unknown."""
    if seconds is None:
        return '?'
    if seconds < 90:
        return f'{seconds:.0f} s'
    if seconds < 5400:
        return f'{seconds / 60:.0f} min'
    return f'{seconds / 3600:.1f} h'


def _aligned(entry: Mapping[str, Any], order: list[Any], where: str) -> np.ndarray:
    ids = entry['sample_idx']
    if any(i is None for i in ids):
        ids = list(range(len(ids)))
    if sorted(ids) != sorted(order):
        raise DataError(f'{where} was scored on other test images than the first run ({len(ids)} vs {len(order)} '
                        'images, or other ones); every run must test the same images (same test dataset and '
                        'explain_subset).')
    pos = {i: k for k, i in enumerate(ids)}
    return np.array([np.nan if entry['values'][pos[i]] is None else entry['values'][pos[i]] for i in order],
                    dtype=np.float64)


def tables_from_runs(records: Sequence[Mapping[str, Any]], kind: str
                     ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, bool | None], list[str]]:
    """``({arm: {metric: [S, N]}}, {metric: higher_is_better}, notes)`` from the runs' ``per_image.json``."""
    per = {(r['arm'], r['seed']): (read_json(os.path.join(r['work_dir'], 'per_image.json')) or {}).get('per_image')
           for r in records}
    missing = [f'{a} seed {s}' for (a, s), v in per.items() if v is None]
    if missing:
        raise DataError(f'no per-image values for {", ".join(missing)}; rerun the comparison to test them.')
    first = next(iter(per.values()))
    notes, keys = [], []
    for key in first:
        absent = [f'{a} seed {s}' for (a, s), v in per.items() if key not in v]
        if absent:
            notes.append(f'{key} is missing in {", ".join(absent)}: not compared.')
        elif kind == 'configs' or key.startswith('explain/'):
            keys.append(key)
    labels = {}
    values: dict[str, dict[str, list[np.ndarray]]] = {}
    directions: dict[str, bool | None] = {}
    for key in keys:
        ids = first[key]['sample_idx']
        order = sorted(ids) if all(i is not None for i in ids) else list(range(len(ids)))
        for (arm, seed), v in per.items():
            row = _aligned(v[key], order, f'{arm} seed {seed} ({key})')
            if key.startswith('accuracy/'):
                lab = _aligned(dict(sample_idx=v[key]['sample_idx'], values=v[key]['label']), order, arm)
                if key in labels and not np.array_equal(labels[key], lab):
                    raise DataError(f'{arm} seed {seed} has other labels for the same test images than the first '
                                    'run: the configs test on different data; compare configs with the same test '
                                    'dataset.')
                labels[key] = lab
            if kind == 'configs':
                arm_name, metric = arm, key.removeprefix('explain/')
            else:
                arm_name, metric = key.split('/')[1], key.split('/', 2)[2]
            values.setdefault(arm_name, {}).setdefault(metric, []).append(row)
            directions[metric] = v[key].get('higher_is_better')
    return {a: {m: np.stack(rows) for m, rows in per_m.items()} for a, per_m in values.items()}, directions, notes


def title(result: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    arms = ' vs '.join(result['arms'])
    return f'{arms} (explainers of one model)' if info['kind'] == 'explainers' else arms


def markdown(report: Mapping[str, Any]) -> str:
    """``report.md`` from a ``report.json`` payload."""
    res, seeds = report['result'], report['seeds']
    n_img = {m: max(e['n_images'] for e in entry['means'].values()) for m, entry in res['metrics'].items()}
    unit = 'checkpoints' if report['kind'] == 'explainers' else 'seeds'
    lines = [f"# Comparison: {report['title']}", '',
             f"{len(res['arms'])} arms × {len(seeds)} {unit} ({', '.join(map(str, seeds))}); test images per "
             'metric: ' + ', '.join(f'{m} {n}' for m, n in n_img.items()) + '.', '', report['method']['statement'],
             '']
    if any(e['differences'] for e in res['metrics'].values()):
        lines += ['## Paired differences', '', 'Each row is B − A, paired by seed and by test image; ↑/↓: higher/'
                  'lower is better. p (Holm) adjusts for every row of this table.', '', md.differences_table(res),
                  '', '![forest plot of the paired differences](forest.png)', '']
    lines += ['## Means', '', md.means_table(res), '', '## Per seed', '', 'Mean over the test images of each seed '
              '(for differences: of B − A).', '', md.per_seed_table(res, seeds), '']
    if any(e['differences'] for e in res['metrics'].values()):
        lines += ['## Diagnostics', '', 'Variance components of each difference (as standard deviations), the '
                  "interval's degrees of freedom, and the images used (dropped: no value in some run).", '',
                  md.components_table(res), '']
    lines += ['## Runs', '', '| arm | seed | checkpoint | train | test |', '|---|---|---|---|---|']
    for r in report['runs']:
        train = duration(r['train'].get('seconds')) if r['train'].get('seconds') is not None else 'given'
        lines.append(f"| {r['arm']} | {r['seed']} | `{r['checkpoint']}` | {train} | "
                     f"{duration(r['test'].get('seconds'))} |")
    lines += ['', '## Notes', '', '- Per-image values: accuracy is 100 (correct) or 0, explanation metrics are '
              "each metric's per-image number; means are plain means over images (a metric that reports a mean of "
              'per-class means, such as the pointing game in tools/test.py, can differ slightly).',
              '- Every run was tested on its last checkpoint.', *[f'- {n}' for n in report['notes']]]
    return '\n'.join(lines) + '\n'
