"""Every metric of a comparison: each arm's mean and each paired difference, with intervals and p-values.

An *arm* is what is compared (a training config, an explainer); every arm has, per metric, a seeds × images table
with the same seeds (rows) and the same images (columns) as the others, so that differences are paired twice.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> base = rng.integers(0, 2, (3, 50)).astype(float)  # 3 seeds x 50 images, correct or not
    >>> res = compare_arms({'a': {'top1': base}, 'b': {'top1': np.ones_like(base)}}, higher_is_better={'top1': True})
    >>> diff = res['metrics']['top1']['differences']['b - a']
    >>> diff['low'] > 0, diff['better']
    (True, 'arm')
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from registry.errors import ConfigError, DataError

from .crossed import estimate_mean, holm, paired_difference


def arm_pairs(arms: Sequence[str], reference: str | None = None, pairs: str = 'reference') -> list[tuple[str, str]]:
    """``(A, B)`` pairs to report as ``B − A``: every arm against ``reference`` (default the first arm), or every
    pair in the given order with ``pairs='all'``."""
    if pairs not in ('reference', 'all'):
        raise ConfigError(f"pairs must be 'reference' or 'all', got {pairs!r}.")
    if pairs == 'all':
        return list(itertools.combinations(arms, 2))
    ref = arms[0] if reference is None else reference
    if ref not in arms:
        raise ConfigError(f'reference {ref!r} is not one of the arms {list(arms)}.')
    return [(ref, b) for b in arms if b != ref]


def compare_arms(values: Mapping[str, Mapping[str, Any]], reference: str | None = None, pairs: str = 'reference',
                 method: str = 'crossed', level: float = 0.95,
                 higher_is_better: Mapping[str, bool | None] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Means and paired differences for every metric.

    Args:
        values: ``{arm: {metric: [S, N] table}}``; ``NaN`` marks a missing value (the image is dropped from the
            estimates that involve it).
        reference, pairs: which differences (:func:`arm_pairs`).
        method, level, kwargs: the interval (:func:`zoo.stats.estimate_mean`).
        higher_is_better: direction per metric (reported, and used for the "better" column).

    Returns ``{method, level, arms, pairs, metrics: {metric: {higher_is_better, means: {arm: estimate},
    differences: {'B - A': estimate + arm, reference, p_holm, better}}}}``; ``p_holm`` is Holm's adjustment over
    every difference of every metric in the result.
    """
    arms = list(values)
    if not arms:
        raise DataError('nothing to compare: no arms.')
    directions = dict(higher_is_better or {})
    chosen = arm_pairs(arms, reference, pairs)
    metrics: list[str] = []
    for per in values.values():
        metrics += [m for m in per if m not in metrics]
    out: dict[str, Any] = dict(method=method, level=level, arms=arms, pairs=[list(p) for p in chosen], metrics={})
    for metric in metrics:
        tables = {arm: np.asarray(per[metric], dtype=np.float64) for arm, per in values.items() if metric in per}
        shapes = {arm: t.shape for arm, t in tables.items()}
        if len(set(shapes.values())) > 1:
            raise DataError(f'{metric}: the arms have different seeds x images shapes {shapes}; every arm must be '
                            'scored on the same seeds and test images.')
        entry: dict[str, Any] = dict(higher_is_better=directions.get(metric), means={}, differences={})
        for arm, table in tables.items():
            entry['means'][arm] = estimate_mean(table, method=method, level=level, **kwargs).to_dict()
        for a, b in chosen:
            if a in tables and b in tables:
                est = paired_difference(tables[a], tables[b], method=method, level=level, **kwargs).to_dict()
                est.update(arm=b, reference=a, better=_better(est, directions.get(metric)))
                entry['differences'][f'{b} - {a}'] = est
        out['metrics'][metric] = entry
    rows = [d for e in out['metrics'].values() for d in e['differences'].values()]
    for row, p in zip(rows, holm([np.nan if r['p_value'] is None else r['p_value'] for r in rows])):
        row['p_holm'] = None if p != p else p
    return out


def _better(est: Mapping[str, Any], higher_is_better: bool | None) -> str | None:
    """``arm`` or ``reference`` when the interval excludes 0, by the metric's direction; ``None`` otherwise."""
    low, high = est['low'], est['high']
    if low is None or high is None or higher_is_better is None or (low <= 0 <= high):
        return None
    up = low > 0
    return 'arm' if up == higher_is_better else 'reference'
