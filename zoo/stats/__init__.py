"""Statistics for comparisons: means and paired differences of seeds × images tables with confidence intervals.

Pure numpy (and scipy's Student-t); no model knowledge. :mod:`zoo.stats.crossed` holds the interval methods,
:mod:`zoo.stats.table` applies them to every metric of a comparison, :mod:`zoo.stats.simulate` measures their
coverage on synthetic tables with a known mean.

Example:
    >>> import numpy as np
    >>> from zoo.stats import paired_difference
    >>> a = np.array([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 1.0]])
    >>> round(paired_difference(a, np.ones_like(a)).mean, 3)
    0.25
"""
from .crossed import METHODS, Estimate, bootstrap_mean, crossed_mean, estimate_mean, holm, paired_difference

__all__ = ['METHODS', 'Estimate', 'bootstrap_mean', 'crossed_mean', 'estimate_mean', 'holm', 'paired_difference']
