"""Mean of a seeds × images table with a confidence interval that covers both sources of randomness.

A comparison of training recipes has two random factors, *crossed*: every run (seed) is scored on the same test
images. One value per (seed ``s``, image ``i``) — a paired difference ``B − A``, or one recipe's score — follows

    y[s, i] = mu + a[s] + b[i] + e[s, i]

with ``a`` the training randomness (seed), ``b`` the test-image sampling and ``e`` their interaction. The estimate
is the grand mean; its variance is ``var_a / S + var_b / N + var_e / (S N)``.

``method='crossed'`` (the default) estimates the three components by the two-way ANOVA of the table (mean squares
of seeds, images and residual; a component whose estimate is negative is set to zero, and its term dropped) and
forms a Student-t interval with Satterthwaite's degrees of freedom. With few seeds the seed term has few degrees of
freedom and the t quantile widens accordingly (4 degrees of freedom at 5 seeds: 2.78 instead of 1.96).
One seed (``S == 1``) reduces it to the paired t-test over images; the seed term is then not estimated.

``method='bootstrap'`` is the two-level paired bootstrap: seeds and images are resampled independently with
replacement (the same draws for every arm, so pairs stay pairs), percentile interval. It is known to under-cover
when seeds are few and training randomness dominates (a bootstrap of 5 values sees too little of their spread) and
to over-cover when the interaction dominates (the residual is counted twice); see :mod:`zoo.stats.simulate`.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = 0.5 + rng.normal(0, 0.1, (5, 1)) + rng.normal(0, 1, (1, 300)) + rng.normal(0, 1, (5, 300))
    >>> est = crossed_mean(y)
    >>> est.low < 0.5 < est.high, est.n_seeds, est.n_images
    (True, 5, 300)
    >>> round(paired_difference(y, y + 0.25).mean, 6)
    0.25
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from registry.errors import ConfigError, DataError

METHODS = ('crossed', 'bootstrap')


@dataclass
class Estimate:
    """A mean with its confidence interval and two-sided p-value (against ``null``).

    Attributes:
        mean: the grand mean over seeds and images.
        low, high: the interval at ``level``.
        p_value: two-sided, for ``mean == null`` (``nan`` when undefined).
        se: standard error (``crossed``; the bootstrap's standard deviation for ``bootstrap``).
        df: degrees of freedom of the t interval (``crossed``; ``inf`` when the variance is zero).
        n_seeds, n_images: the table's shape after removing images with a missing value.
        n_dropped: images removed because some seed (or arm) had no value for them.
        components: variance components ``seeds``, ``images``, ``residual`` (``None`` where not estimable).
        per_seed: the mean over images of each seed's row.
        covers: the sources of randomness the interval covers (``'seeds'``, ``'images'``).
    """

    mean: float
    low: float
    high: float
    p_value: float
    se: float
    df: float
    level: float
    method: str
    n_seeds: int
    n_images: int
    n_dropped: int = 0
    null: float = 0.0
    components: dict[str, float | None] = field(default_factory=dict)
    per_seed: list[float] = field(default_factory=list)
    covers: tuple[str, ...] = ()

    @property
    def excludes_null(self) -> bool:
        """Whether the interval lies entirely on one side of ``null``."""
        return self.low > self.null or self.high < self.null

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``nan``/``inf`` as ``None``)."""
        def plain(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            return v
        return plain(asdict(self))


def as_table(values: Any) -> tuple[np.ndarray, int]:
    """``values`` as float64 ``[S, N]`` (a 1-D input is one seed) without the images that have a ``NaN`` in any
    seed; and how many images were dropped."""
    y = np.asarray(values, dtype=np.float64)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise DataError(f'expected a seeds x images table (2-D), got shape {tuple(y.shape)}.')
    keep = ~np.isnan(y).any(0)
    if np.isinf(y).any():
        raise DataError('the table holds infinite values; per-image metrics must be finite (NaN marks a missing one).')
    return y[:, keep], int((~keep).sum())


def _p_value(t: float, df: float) -> float:
    from scipy.stats import t as student_t

    return float(2 * student_t.sf(abs(t), df))


def _crossed(y: np.ndarray) -> tuple[float, float, dict[str, float | None], tuple[str, ...]]:
    """Variance of the grand mean, its degrees of freedom, the components and what they cover."""
    s, n = y.shape
    m = y.mean()
    rows, cols = y.mean(1), y.mean(0)
    if s == 1 or n == 1:  # one factor only: the ordinary standard error of a mean of independent values
        v = y.ravel()
        k = v.size
        var = float(v.var(ddof=1) / k) if k > 1 else math.nan
        comp = {'seeds': None, 'images': None, 'residual': None}
        comp['images' if s == 1 else 'seeds'] = float(v.var(ddof=1)) if k > 1 else None
        return var, float(k - 1), comp, ('images',) if s == 1 else ('seeds',)
    ms_s = n * float(((rows - m) ** 2).sum()) / (s - 1)
    ms_i = s * float(((cols - m) ** 2).sum()) / (n - 1)
    ms_e = float(((y - rows[:, None] - cols[None, :] + m) ** 2).sum()) / ((s - 1) * (n - 1))
    df_s, df_i, df_e = s - 1, n - 1, (s - 1) * (n - 1)
    keep_s, keep_i = ms_s > ms_e, ms_i > ms_e
    # var(mean) = var_s / S + var_i / N + var_e / (S N) written as a sum of (sign, mean square, its df) / (S N)
    if keep_s and keep_i:
        terms = [(1, ms_s, df_s), (1, ms_i, df_i), (-1, ms_e, df_e)]
    elif keep_s:
        terms = [(1, ms_s, df_s)]
    elif keep_i:
        terms = [(1, ms_i, df_i)]
    else:
        terms = [(1, ms_e, df_e)]
    total = sum(sign * ms for sign, ms, _ in terms)
    var = total / (s * n)
    denom = sum(ms ** 2 / df for _, ms, df in terms)
    df = total ** 2 / denom if denom > 0 else math.inf
    comp = {'seeds': max(0.0, (ms_s - ms_e) / n), 'images': max(0.0, (ms_i - ms_e) / s), 'residual': ms_e}
    return float(var), float(df), comp, ('seeds', 'images')


def crossed_mean(values: Any, level: float = 0.95, null: float = 0.0) -> Estimate:
    """Grand mean of a seeds × images table with a crossed random-effects t interval (see the module docstring).

    ``values``: ``[S, N]`` (a 1-D array is one seed); images with a ``NaN`` in any seed are dropped.
    """
    from scipy.stats import t as student_t

    _check_level(level)
    y, dropped = as_table(values)
    if y.size == 0:
        raise DataError('no image has a value in every seed: nothing to average.')
    m = float(y.mean())
    var, df, comp, covers = _crossed(y)
    se = math.sqrt(var) if var == var else math.nan
    if se == 0:
        low = high = m
        p = 1.0 if m == null else 0.0
        df = math.inf
    elif math.isnan(se):
        low = high = p = math.nan
    else:
        q = float(student_t.ppf(0.5 + level / 2, df))
        low, high = m - q * se, m + q * se
        p = _p_value((m - null) / se, df)
    return Estimate(mean=m, low=low, high=high, p_value=p, se=se, df=df, level=level, method='crossed',
                    n_seeds=y.shape[0], n_images=y.shape[1], n_dropped=dropped, null=null, components=comp,
                    per_seed=[float(r) for r in y.mean(1)], covers=covers)


def bootstrap_mean(values: Any, level: float = 0.95, null: float = 0.0, samples: int = 4000, seed: int = 0,
                   resample: Sequence[str] = ('seeds', 'images')) -> Estimate:
    """Grand mean with a two-level (seeds × images) percentile bootstrap interval.

    Both levels are resampled independently with replacement (``resample`` may name one level only). The p-value
    is twice the smaller bootstrap tail beyond ``null`` (at least ``1 / samples``).
    """
    _check_level(level)
    y, dropped = as_table(values)
    if y.size == 0:
        raise DataError('no image has a value in every seed: nothing to average.')
    unknown = set(resample) - {'seeds', 'images'}
    if unknown or not resample:
        raise ConfigError(f"resample names the levels to resample, 'seeds' and/or 'images'; got {list(resample)!r}.")
    s, n = y.shape
    rng = np.random.default_rng(seed)
    w = rng.multinomial(s, np.full(s, 1 / s), size=samples) if 'seeds' in resample else np.ones((samples, s))
    v = rng.multinomial(n, np.full(n, 1 / n), size=samples) if 'images' in resample else np.ones((samples, n))
    means = np.einsum('bs,sn,bn->b', w, y, v) / (s * n)
    low, high = (float(q) for q in np.quantile(means, [0.5 - level / 2, 0.5 + level / 2]))
    tail = min(float((means <= null).mean()), float((means >= null).mean()))
    p = 1.0 if np.all(means == null) else min(1.0, max(2 * tail, 1 / samples))
    var, _, comp, _ = _crossed(y)
    return Estimate(mean=float(y.mean()), low=low, high=high, p_value=p, se=float(means.std(ddof=1)),
                    df=math.nan, level=level, method='bootstrap', n_seeds=s, n_images=n, n_dropped=dropped,
                    null=null, components=comp, per_seed=[float(r) for r in y.mean(1)],
                    covers=tuple(k for k in ('seeds', 'images') if k in resample and (s if k == 'seeds' else n) > 1))


def estimate_mean(values: Any, method: str = 'crossed', level: float = 0.95, null: float = 0.0,
                  **kwargs: Any) -> Estimate:
    """:func:`crossed_mean` or :func:`bootstrap_mean` by name (``kwargs`` go to the bootstrap)."""
    if method == 'crossed':
        return crossed_mean(values, level=level, null=null)
    if method == 'bootstrap':
        return bootstrap_mean(values, level=level, null=null, **kwargs)
    raise ConfigError(f'unknown interval method {method!r}; choose one of {", ".join(METHODS)}.')


def paired_difference(a: Any, b: Any, method: str = 'crossed', level: float = 0.95, **kwargs: Any) -> Estimate:
    """``B − A`` paired by seed (row) and image (column); images missing in either arm are dropped."""
    ya, yb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if ya.shape != yb.shape:
        raise DataError(f'paired tables must have the same seeds x images shape, got {ya.shape} and {yb.shape}.')
    return estimate_mean(yb - ya, method=method, level=level, **kwargs)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error) of ``p_values``; ``nan`` stays ``nan``.

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    idx = [i for i, p in enumerate(p_values) if p == p]
    order = sorted(idx, key=lambda i: p_values[i])
    out = [math.nan] * len(p_values)
    running, k = 0.0, len(order)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p_values[i]))
        out[i] = round(running, 12)
    return out


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ConfigError(f'level is a confidence level in (0, 1), e.g. 0.95; got {level!r}.')
