"""Synthetic seeds × images tables with a known mean, and the measured coverage of an interval method.

:func:`crossed_table` draws ``y[s, i] = mean + a[s] + b[i] + e[s, i]`` (normal components with the given standard
deviations), or, with ``binary=True``, 0/1 outcomes whose probability is ``mean`` shifted on the logit scale by the
seed and image effects (a per-image "correct or not" as accuracy has; the true mean is then computed exactly by
averaging the probabilities over the image population by Monte Carlo). :func:`coverage` repeats a draw many times
and counts how often an interval holds the true mean.

Example:
    >>> cov = coverage('crossed', trials=200, n_seeds=5, n_images=100, sd_seed=0.2, sd_image=1.0, sd_residual=1.0)
    >>> 0.9 < cov['coverage'] < 0.99
    True
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .crossed import estimate_mean


def crossed_table(rng: np.random.Generator, n_seeds: int, n_images: int, mean: float = 0.0, sd_seed: float = 1.0,
                  sd_image: float = 1.0, sd_residual: float = 1.0, binary: bool = False) -> np.ndarray:
    """One ``[n_seeds, n_images]`` table of the crossed model (see the module docstring)."""
    a = rng.normal(0, sd_seed, (n_seeds, 1))
    b = rng.normal(0, sd_image, (1, n_images))
    e = rng.normal(0, sd_residual, (n_seeds, n_images))
    if not binary:
        return mean + a + b + e
    logit = np.log(mean / (1 - mean)) + a + b + e
    return (rng.random((n_seeds, n_images)) < 1 / (1 + np.exp(-logit))).astype(np.float64)


def binary_truth(mean: float, sd_seed: float, sd_image: float, sd_residual: float, draws: int = 2_000_000,
                 seed: int = 12345) -> float:
    """The population mean of :func:`crossed_table` with ``binary=True`` (Monte Carlo over the three effects)."""
    rng = np.random.default_rng(seed)
    sd = float(np.sqrt(sd_seed ** 2 + sd_image ** 2 + sd_residual ** 2))
    logit = np.log(mean / (1 - mean)) + rng.normal(0, sd, draws)
    return float((1 / (1 + np.exp(-logit))).mean())


def coverage(method: str = 'crossed', trials: int = 500, n_seeds: int = 5, n_images: int = 200, mean: float = 0.0,
             sd_seed: float = 1.0, sd_image: float = 1.0, sd_residual: float = 1.0, binary: bool = False,
             level: float = 0.95, seed: int = 0, **kwargs: Any) -> dict[str, float]:
    """How often ``method``'s interval holds the true mean over ``trials`` independent tables.

    Returns ``coverage`` (a share), ``mean_width`` and ``trials``; ``kwargs`` go to the interval method.
    """
    rng = np.random.default_rng(seed)
    truth = binary_truth(mean, sd_seed, sd_image, sd_residual) if binary else mean
    hits, widths = 0, []
    for _ in range(trials):
        y = crossed_table(rng, n_seeds, n_images, mean, sd_seed, sd_image, sd_residual, binary)
        est = estimate_mean(y, method=method, level=level, **kwargs)
        hits += est.low <= truth <= est.high
        widths.append(est.high - est.low)
    return dict(coverage=hits / trials, mean_width=float(np.mean(widths)), trials=trials, truth=truth)
