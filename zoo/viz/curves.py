"""Metric curves: one panel per metric (insertion, deletion, ROAD, ...), one line per explainer (PNG).

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly, so nothing touches pyplot's global state.

Example:
    >>> import tempfile, os
    >>> from zoo.viz.curves import save_curves
    >>> x = [0.0, 0.5, 1.0]
    >>> path = save_curves(os.path.join(tempfile.mkdtemp(), 'curves.png'),
    ...                    {'insertion': {'gradcam': (x, [0.1, 0.6, 0.9]), 'eigencam': (x, [0.1, 0.4, 0.9])},
    ...                     'deletion': {'gradcam': (x, [0.9, 0.2, 0.1])}})
    >>> path.name
    'curves.png'
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from registry.errors import DataError

from .files import save_figure

XLABELS = {'insertion': 'fraction of pixels inserted', 'deletion': 'fraction of pixels deleted',
           'road': 'fraction of pixels removed', 'mask_coverage': 'map percentile / 100'}


def area(x: Sequence[float], y: Sequence[float]) -> float:
    """Trapezoid area under ``y(x)`` divided by the x range (RISE's normalised AUC for x on [0, 1])."""
    if len(x) < 2:
        return float(y[0]) if len(y) else float('nan')
    total = sum((x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2 for i in range(len(x) - 1))
    return total / (x[-1] - x[0]) if x[-1] != x[0] else float('nan')


def curves_figure(panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
                  title: str | None = None, ylabel: str = 'score of the explained class',
                  panel_inches: float = 4.0) -> Any:
    """A ``Figure`` with one panel per key of ``panels``; each panel maps a line label to ``(x, y)``.

    The legend gives each line's normalised area (:func:`area`).
    """
    from matplotlib.figure import Figure

    if not panels or not any(panels.values()):
        raise DataError('curves_figure: nothing to draw; give at least one panel with one (x, y) line.')
    fig = Figure(figsize=(panel_inches * len(panels), panel_inches * 0.8 + (0.3 if title else 0)), dpi=100)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, lines) in zip(axes, panels.items()):
        for label, (x, y) in lines.items():
            if len(x) != len(y):
                raise DataError(f'curves_figure: panel {name!r}, line {label!r} has {len(x)} x and {len(y)} y values.')
            ax.plot(list(x), list(y), label=f'{label} ({area(list(x), list(y)):.3f})')
        ax.set_title(name)
        ax.set_xlabel(XLABELS.get(name, 'x'))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_curves(path: str | Path, panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
                **kwargs: Any) -> Path:
    """:func:`curves_figure` written to ``path`` (PNG), creating parent folders."""
    return save_figure(curves_figure(panels, **kwargs), path)
