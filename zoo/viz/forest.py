"""Forest plot of paired differences: one panel per metric (its own x axis and units), one row per difference.

Each row is a dot at the estimate with a bar over its interval and the numbers at the right; a dashed line marks
zero. Rows whose interval excludes zero are drawn in colour (green when the difference goes the metric's better
way, red otherwise, blue when the metric has no direction), the others in grey. Uses ``matplotlib.figure.Figure``
with the Agg canvas (no pyplot state); written through :func:`zoo.viz.files.save_figure`.

Example:
    >>> import os, tempfile
    >>> rows = {'accuracy/top1': dict(higher_is_better=True, rows=[
    ...     dict(label='lico - baseline', mean=-0.7, low=-2.1, high=0.6)]),
    ...         'gradcam/deletion': dict(higher_is_better=False, rows=[
    ...     dict(label='lico - baseline', mean=0.03, low=0.01, high=0.05)])}
    >>> save_forest(os.path.join(tempfile.mkdtemp(), 'forest.png'), rows).name
    'forest.png'
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from registry.errors import DataError

from .files import save_figure

GREY, GREEN, RED, BLUE = '#8c8c8c', '#1a9850', '#d73027', '#2166ac'


def _colour(row: Mapping[str, Any], higher_is_better: bool | None) -> str:
    low, high = row.get('low'), row.get('high')
    if low is None or high is None or low <= 0 <= high:
        return GREY
    if higher_is_better is None:
        return BLUE
    return GREEN if (low > 0) == higher_is_better else RED


def _finite(*xs: Any) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def forest_figure(panels: Mapping[str, Mapping[str, Any]], title: str | None = None, level: float = 0.95,
                  fmt: Any = None) -> Any:
    """A ``Figure``: ``panels`` maps a metric to ``dict(higher_is_better, rows=[dict(label, mean, low, high)])``.

    ``fmt(row)`` gives the text at the right of a row (default: ``mean [low, high]`` with 3 significant digits).
    """
    from matplotlib.figure import Figure

    panels = {k: v for k, v in panels.items() if v.get('rows')}
    if not panels:
        raise DataError('forest_figure: nothing to draw; give at least one metric with one difference.')
    sizes = [len(p['rows']) for p in panels.values()]
    fig = Figure(figsize=(8.5, 0.9 + sum(0.32 * n + 0.75 for n in sizes) + (0.3 if title else 0)), dpi=100)
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw=dict(height_ratios=[n + 1.2 for n in sizes]))[:, 0]
    text = fmt or (lambda r: f"{r['mean']:+.3g} [{r['low']:+.3g}, {r['high']:+.3g}]")
    for ax, (metric, panel) in zip(axes, panels.items()):
        rows = panel['rows']
        hib = panel.get('higher_is_better')
        lows = [r['low'] for r in rows if _finite(r.get('low'))] + [0.0]
        highs = [r['high'] for r in rows if _finite(r.get('high'))] + [0.0]
        span = (max(highs) - min(lows)) or 1.0
        for y, row in enumerate(rows):
            colour = _colour(row, hib)
            if _finite(row.get('low'), row.get('high')):
                ax.plot([row['low'], row['high']], [y, y], color=colour, lw=2.2, solid_capstyle='butt')
            if _finite(row.get('mean')):
                ax.plot([row['mean']], [y], 'o', color=colour, ms=6)
            label = text(row) if _finite(row.get('mean'), row.get('low'), row.get('high')) else 'n/a'
            ax.annotate(label, xy=(1.01, y), xycoords=('axes fraction', 'data'), va='center', fontsize=8)
        ax.axvline(0.0, color='black', ls='--', lw=0.8)
        ax.set_xlim(min(lows) - 0.08 * span, max(highs) + 0.08 * span)
        ax.set_ylim(len(rows) - 0.4, -0.6)
        ax.set_yticks(range(len(rows)), [r['label'] for r in rows], fontsize=8)
        way = {True: 'higher is better', False: 'lower is better'}.get(hib, 'no preferred direction')
        ax.set_title(f'{metric} ({way})', fontsize=9, loc='left')
        ax.tick_params(axis='x', labelsize=8)
        ax.grid(axis='x', alpha=0.3)
    axes[-1].set_xlabel(f'paired difference with its {round(level * 100)} % interval', fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    return fig


def save_forest(path: str | Path, panels: Mapping[str, Mapping[str, Any]], title: str | None = None,
                level: float = 0.95, fmt: Any = None) -> Path:
    """:func:`forest_figure` written as a PNG at ``path``."""
    return save_figure(forest_figure(panels, title=title, level=level, fmt=fmt), path)


def panels_from_result(result: Mapping[str, Any], label: Any = None) -> dict[str, dict[str, Any]]:
    """Panels of a :func:`zoo.stats.table.compare_arms` result (its differences, metric by metric)."""
    out = {}
    for metric, entry in result['metrics'].items():
        rows: Sequence[dict[str, Any]] = [dict(label=name if label is None else label(name), **d)
                                          for name, d in entry['differences'].items()]
        out[metric] = dict(higher_is_better=entry.get('higher_is_better'), rows=list(rows))
    return out
