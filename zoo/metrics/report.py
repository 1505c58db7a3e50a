"""Summaries and files of an :class:`~zoo.metrics.evaluator.ExplanationQuality` run.

:func:`summarize` reduces the per-sample records into one number per (explainer, metric) with its conventions,
mean curves and per-class values; :func:`write_report` writes ``results.json`` (every number with the way it was
computed, and the per-sample values), ``results.md`` (a table), ``curves.png`` (mean curves per explainer) and
``examples_<explainer>.png`` (the best and worst examples).

Example:
    >>> print(markdown_table({'gradcam': {'insertion': dict(aggregate=0.61, higher_is_better=True)}}))
    | explainer | insertion ↑ |
    |---|---|
    | gradcam | 0.6100 |
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import torch

from zoo.core.fileio import atomic_write_text, ensure_dir, write_json

from .base import to_plain
from .causal import Deletion, Insertion


def summarize(quality: Any, records: list[dict]) -> dict[str, Any]:
    """``{conventions, n_explained, results: {explainer: {metric: entry}}, per_sample}`` from the records."""
    out: dict[str, Any] = dict(conventions=quality.conventions(), n_explained=len(records), results={})
    for ename in quality.explainers:
        per: dict[str, Any] = {}
        for mname, metric in quality.metrics.items():
            vals = torch.tensor([r['values'][ename][mname] for r in records], dtype=torch.float64)
            cls = [r['classes'][ename][mname] for r in records]
            classes = torch.tensor(cls) if cls and all(c is not None for c in cls) else None
            nan = torch.isnan(vals)
            entry: dict[str, Any] = dict(
                aggregate=metric.reduce(vals, classes) if records else float('nan'),
                n=int((~nan).sum()), n_excluded=int(nan.sum()), higher_is_better=bool(metric.higher_is_better),
                conventions=records[0]['conventions'][mname] if records else metric.conventions())
            if hasattr(metric, 'class_accuracy'):
                entry['class_accuracy'] = metric.class_accuracy(vals, classes)
            curves = [r['curves'].get(ename, {}).get(mname) for r in records]
            if records and all(c is not None for c in curves) and len({len(c) for c in curves}) == 1:
                stacked = torch.as_tensor([list(c) for c in curves], dtype=torch.float64)
                entry['mean_curve'] = stacked.nanmean(0).tolist()
                entry['curve_x'] = records[0]['curve_x'][mname]
            per[mname] = entry
        ins = next((k for k, m in quality.metrics.items() if isinstance(m, Insertion)), None)
        dele = next((k for k, m in quality.metrics.items() if isinstance(m, Deletion)), None)
        if ins and dele:
            per['overall'] = dict(aggregate=per[ins]['aggregate'] - per[dele]['aggregate'], higher_is_better=True,
                                  n=per[ins]['n'], conventions=dict(definition=f'{ins} - {dele}'))
        out['results'][ename] = per
    out['per_sample'] = dict(sample_idx=[r['sample_idx'] for r in records], label=[r['label'] for r in records],
                             values={e: {m: [r['values'][e][m] for r in records] for m in quality.metrics}
                                     for e in quality.explainers})
    return out


def markdown_table(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """One row per explainer, one column per metric (↑ higher is better, ↓ lower), 4 decimals."""
    metrics: list[str] = []
    for per in results.values():
        metrics += [m for m in per if m not in metrics]
    arrows = {m: '↑' if next(p[m] for p in results.values() if m in p).get('higher_is_better', True) else '↓'
              for m in metrics}
    rows = ['| explainer | ' + ' | '.join(f'{m} {arrows[m]}' for m in metrics) + ' |',
            '|---|' + '---|' * len(metrics)]
    for ename, per in results.items():
        cells = []
        for m in metrics:
            v = per.get(m, {}).get('aggregate')
            cells.append('n/a' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{v:.4f}')
        rows.append(f'| {ename} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def markdown_report(summary: Mapping[str, Any]) -> str:
    """The table, then how many samples and with which conventions."""
    conv = summary['conventions']
    lines = ['# Explanation quality', '', markdown_table(summary['results']), '',
             f"Explained samples: {summary['n_explained']} (subset={conv['subset']}, seed {conv['subset_seed']}); "
             f"maps explain the {conv['explain_class']} class.", '', '## Conventions', '']
    first = next(iter(summary['results'].values()), {})
    for mname, entry in first.items():
        fields = ', '.join(f'{k}={v!r}' for k, v in entry.get('conventions', {}).items())
        excl = f" — {entry['n_excluded']} samples excluded (no object)" if entry.get('n_excluded') else ''
        lines.append(f'- **{mname}**: {fields}{excl}')
    lines += ['', '## Explainers', '']
    lines += [f'- **{k}**: {v}' for k, v in conv['explainers'].items()]
    if conv.get('default_target_layer'):
        lines.append(f"- target layer when an explainer names none: `{conv['default_target_layer']}`")
    return '\n'.join(lines) + '\n'


def write_report(summary: dict[str, Any], records: list[dict], out_dir: str, quality: Any) -> dict[str, str]:
    """Write results.json, results.md, curves.png and the example grids into ``out_dir``; return their paths."""
    ensure_dir(out_dir)
    files = dict(json=os.path.join(out_dir, 'results.json'), markdown=os.path.join(out_dir, 'results.md'))
    write_json(files['json'], to_plain(summary))
    atomic_write_text(files['markdown'], markdown_report(summary))
    panels = {}
    for mname in quality.metrics:
        lines = {e: (per[mname]['curve_x'], per[mname]['mean_curve'])
                 for e, per in summary['results'].items() if 'mean_curve' in per.get(mname, {})}
        if lines:
            panels[mname] = lines
    if panels:
        from zoo.viz.curves import save_curves

        files['curves'] = str(save_curves(os.path.join(out_dir, 'curves.png'), panels,
                                          title=f"mean curves over {summary['n_explained']} images"))
    for ename in quality.explainers:
        path = _write_examples(records, ename, quality, os.path.join(out_dir, f'examples_{ename}.png'))
        if path:
            files[f'examples_{ename}'] = path
    return files


def _write_examples(records: list[dict], ename: str, quality: Any, path: str) -> str | None:
    """The ``num_examples`` best and worst samples (by ``rank_by``) of one explainer as an overlay grid."""
    cands = [r for r in records if ename in r.get('payload', {})]
    if not cands or quality.num_examples <= 0:
        return None
    key = quality.rank_by
    higher = quality.metrics[key].higher_is_better
    cands.sort(key=lambda r: r['values'][ename][key], reverse=higher)
    k = quality.num_examples
    scored = sum(not math.isnan(r['values'][ename][key]) for r in records)
    if scored <= 2 * k:
        chosen, tags = cands, [f'rank {i + 1}/{scored}' for i in range(len(cands))]
    else:
        chosen = cands[:k] + cands[-k:]
        tags = [f'best {i + 1}' for i in range(k)] + [f'worst {k - i}' for i in range(k)]
    names = getattr(quality.model, 'class_names', None) or []
    labels = []
    for tag, r in zip(tags, chosen):
        gt = names[r['label']] if r['label'] is not None and r['label'] < len(names) else r['label']
        labels.append(f"{tag} #{r['sample_idx']} gt {gt}\n{key} {r['values'][ename][key]:.3f}")
    from zoo.viz import save_grid

    images = [r['payload'][ename]['image'] for r in chosen]
    maps = [r['payload'][ename]['map'].float() / 255 for r in chosen]
    return str(save_grid(path, images, {ename: maps}, row_labels=labels,
                         title=f'{ename}: best and worst by {key}'))
