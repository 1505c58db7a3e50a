"""Markdown tables of a :func:`zoo.stats.table.compare_arms` result, and the statement of the interval method.

Numbers are shown with two significant digits of their interval's width (a width of 2.3 gives one decimal, 0.05
three), so no digit is printed that the data cannot support; per-seed figures get one digit more.

Example:
    >>> fmt(0.123456, 0.05), fmt(59.2345, 2.3), fmt(None)
    ('0.123', '59.2', 'n/a')
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

METHOD_TEXT = {
    'crossed': ('crossed random-effects t interval: the per-(seed, image) values are modelled as grand mean + seed '
                'effect + image effect + interaction; the variance of the grand mean, var_seed/S + var_image/N + '
                'var_residual/(S·N), comes from the two-way ANOVA mean squares (negative components set to zero), '
                "and the interval is Student-t with Satterthwaite's degrees of freedom. The p-value is the t-test "
                'of the same model.'),
    'bootstrap': ('two-level paired percentile bootstrap: seeds and test images are resampled independently with '
                  'replacement, with the same draws for every arm; the p-value is twice the smaller bootstrap tail '
                  'beyond 0. With few seeds it under-covers when training randomness dominates (see '
                  'docs/comparisons.md).'),
}


def fmt(x: float | None, width: float | None = None, sign: bool = False) -> str:
    """``x`` with two significant digits of ``width`` (4 decimals without a usable width); ``'n/a'`` for none."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return 'n/a'
    if width is None or not math.isfinite(width) or width <= 0:
        decimals = 4
    else:
        decimals = min(6, max(0, 1 - math.floor(math.log10(width))))
    x = round(x, decimals) + 0.0  # no '-0.000'
    return f'{x:+.{decimals}f}' if sign else f'{x:.{decimals}f}'


def fmt_p(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return 'n/a'
    return '< 0.001' if p < 0.001 else f'{p:.3f}'


def _width(est: Mapping[str, Any]) -> float | None:
    low, high = est.get('low'), est.get('high')
    return None if low is None or high is None else high - low


def interval(est: Mapping[str, Any], sign: bool = False) -> str:
    """``'mean [low, high]'``."""
    w = _width(est)
    return f"{fmt(est.get('mean'), w, sign)} [{fmt(est.get('low'), w, sign)}, {fmt(est.get('high'), w, sign)}]"


def arrow(higher_is_better: bool | None) -> str:
    return {True: ' ↑', False: ' ↓'}.get(higher_is_better, '')


def verdict(diff: Mapping[str, Any]) -> str:
    """Which arm the interval favours, in words."""
    if diff.get('better') == 'arm':
        return f"{diff['arm']} better"
    if diff.get('better') == 'reference':
        return f"{diff['reference']} better"
    if diff.get('low') is not None and diff['low'] > 0 or diff.get('high') is not None and diff['high'] < 0:
        return 'differs'
    return 'no difference shown'


def differences_table(result: Mapping[str, Any]) -> str:
    """One row per (metric, pair): the paired difference, its interval, p, Holm's p and the verdict."""
    pct = round(result['level'] * 100)
    rows = [f'| metric | difference | mean [{pct} % CI] | p | p (Holm) | verdict |', '|---|---|---|---|---|---|']
    for metric, entry in result['metrics'].items():
        for name, d in entry['differences'].items():
            rows.append(f"| {metric}{arrow(entry['higher_is_better'])} | {name} | {interval(d, sign=True)} | "
                        f"{fmt_p(d['p_value'])} | {fmt_p(d.get('p_holm'))} | {verdict(d)} |")
    return '\n'.join(rows)


def means_table(result: Mapping[str, Any]) -> str:
    """One row per metric, one column per arm: mean [interval]."""
    arms = result['arms']
    rows = ['| metric | ' + ' | '.join(arms) + ' |', '|---|' + '---|' * len(arms)]
    for metric, entry in result['metrics'].items():
        cells = [interval(entry['means'][a]) if a in entry['means'] else 'n/a' for a in arms]
        rows.append(f"| {metric}{arrow(entry['higher_is_better'])} | " + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def per_seed_table(result: Mapping[str, Any], seeds: Sequence[Any]) -> str:
    """Each arm's and each difference's mean over images, seed by seed."""
    head = ' | '.join(f'seed {s}' for s in seeds)
    rows = [f'| metric | arm | {head} |', '|---|---|' + '---|' * len(seeds)]
    for metric, entry in result['metrics'].items():
        for name, est in [*entry['means'].items(), *entry['differences'].items()]:
            w = _width(est)
            cells = [fmt(v, w / 10 if w else None, sign=' - ' in name) for v in est['per_seed']]
            rows.append(f'| {metric} | {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def components_table(result: Mapping[str, Any]) -> str:
    """Diagnostics of each difference: the variance components as standard deviations, df, images used."""
    rows = ['| metric | difference | sd seeds | sd images | sd residual | df | images (dropped) |',
            '|---|---|---|---|---|---|---|']
    for metric, entry in result['metrics'].items():
        for name, d in entry['differences'].items():
            sds = [fmt(None if d['components'].get(k) is None else math.sqrt(d['components'][k]))
                   for k in ('seeds', 'images', 'residual')]
            df = 'n/a' if d['df'] is None else f"{d['df']:.1f}"
            rows.append(f"| {metric} | {name} | {' | '.join(sds)} | {df} | {d['n_images']} ({d['n_dropped']}) |")
    return '\n'.join(rows)


def method_statement(method: str, level: float, n_seeds: int) -> str:
    """What the intervals are and what they cover, in words."""
    pct = round(level * 100)
    covers = ('training randomness (seeds) and test-set sampling (images)' if n_seeds > 1 else
              'test-set sampling (images) only: with one seed, training randomness is not measured')
    return f'{pct} % intervals, {METHOD_TEXT[method]} They cover {covers}.'
