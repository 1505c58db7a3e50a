"""zoo.stats: the crossed seeds x images interval, the two-level bootstrap, Holm, comparison tables, markdown.

Coverage is measured on synthetic tables with a known mean (zoo.stats.simulate): every draw is seeded, so the
figures are exact for this code, and the bounds allow the binomial spread of the trial count (300 trials: a true
95 % lands in [0.925, 0.975] with probability ~0.95; the bounds below are wider still).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from registry.errors import ConfigError, DataError
from zoo.stats import bootstrap_mean, crossed_mean, estimate_mean, holm, paired_difference
from zoo.stats.report import components_table, differences_table, fmt, means_table, method_statement, per_seed_table
from zoo.stats.simulate import coverage, crossed_table
from zoo.stats.table import arm_pairs, compare_arms


def _anova_by_hand(y: np.ndarray) -> tuple[float, float]:
    """Variance of the grand mean and Satterthwaite df, spelled out for a table where no component is truncated."""
    s, n = y.shape
    g = y.mean()
    ms_s = n * sum((y[k].mean() - g) ** 2 for k in range(s)) / (s - 1)
    ms_i = s * sum((y[:, j].mean() - g) ** 2 for j in range(n)) / (n - 1)
    resid = sum((y[k, j] - y[k].mean() - y[:, j].mean() + g) ** 2 for k in range(s) for j in range(n))
    ms_e = resid / ((s - 1) * (n - 1))
    assert ms_s > ms_e and ms_i > ms_e
    total = ms_s + ms_i - ms_e
    df = total ** 2 / (ms_s ** 2 / (s - 1) + ms_i ** 2 / (n - 1) + ms_e ** 2 / ((s - 1) * (n - 1)))
    return total / (s * n), df


def test_crossed_interval_is_the_two_way_anova_with_satterthwaite_df():
    rng = np.random.default_rng(1)
    y = crossed_table(rng, 4, 30, mean=2.0, sd_seed=1.0, sd_image=1.0, sd_residual=0.5)
    var, df = _anova_by_hand(y)
    est = crossed_mean(y)
    assert est.se == pytest.approx(math.sqrt(var), rel=1e-12)
    assert est.df == pytest.approx(df, rel=1e-12)
    q = sps.t.ppf(0.975, df)
    assert (est.low, est.high) == pytest.approx((y.mean() - q * est.se, y.mean() + q * est.se), rel=1e-12)
    assert est.p_value == pytest.approx(2 * sps.t.sf(abs(y.mean()) / est.se, df), rel=1e-9)
    assert est.per_seed == pytest.approx(list(y.mean(1)))
    assert est.covers == ('seeds', 'images')


def test_one_seed_is_the_paired_t_test_over_images_and_one_image_the_t_test_over_seeds():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 40), rng.normal(0.3, 1, 40)
    est = paired_difference(a, b)
    ref = sps.ttest_rel(b, a)
    assert est.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (est.low, est.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert est.covers == ('images',) and est.n_seeds == 1
    col = rng.normal(1, 1, (6, 1))
    one = crossed_mean(col)
    assert one.p_value == pytest.approx(sps.ttest_1samp(col[:, 0], 0).pvalue, rel=1e-9)
    assert one.covers == ('seeds',)


def test_missing_values_drop_the_image_in_every_seed():
    y = np.array([[1.0, np.nan, 3.0, 4.0], [2.0, 5.0, np.nan, 6.0]])
    est = crossed_mean(y)
    assert (est.n_images, est.n_dropped, est.mean) == (2, 2, pytest.approx(13 / 4))
    with pytest.raises(DataError, match='no image has a value'):
        crossed_mean(np.full((2, 3), np.nan))
    with pytest.raises(DataError, match='same seeds x images shape'):
        paired_difference(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(DataError, match='infinite'):
        crossed_mean([[1.0, math.inf]])


def test_a_constant_difference_has_a_zero_width_interval():
    est = paired_difference(np.zeros((3, 5)), np.full((3, 5), 2.0))
    assert (est.low, est.high, est.p_value) == (2.0, 2.0, 0.0)
    same = paired_difference(np.ones((3, 5)), np.ones((3, 5)))
    assert (same.low, same.high, same.p_value) == (0.0, 0.0, 1.0)


REGIMES = {  # seeds, images, sd seed, sd image, sd residual
    'training randomness dominates': dict(n_seeds=5, n_images=200, sd_seed=1.0, sd_image=1.0, sd_residual=1.0),
    'test sampling dominates': dict(n_seeds=5, n_images=200, sd_seed=0.05, sd_image=1.0, sd_residual=1.0),
    'interaction dominates': dict(n_seeds=5, n_images=200, sd_seed=0.05, sd_image=0.2, sd_residual=3.0),
    'one seed': dict(n_seeds=1, n_images=200, sd_seed=0.0, sd_image=1.0, sd_residual=1.0),
    'three seeds, correct or not': dict(n_seeds=3, n_images=150, sd_seed=0.3, sd_image=1.5, sd_residual=1.0,
                                        binary=True, mean=0.7),
}


@pytest.mark.parametrize('regime', list(REGIMES))
def test_crossed_interval_covers_the_true_mean_about_95_percent_of_the_time(regime):
    cov = coverage('crossed', trials=300, seed=7, **REGIMES[regime])
    assert 0.92 <= cov['coverage'] <= 0.985, cov


def test_paired_difference_covers_a_planted_difference_detects_it_and_covers_zero_without_one():
    """Two arms sharing image difficulty and seed, B = A + delta + noise: the interval of B - A holds delta
    ~95 % of the time, excludes 0 when delta is large, and holds 0 ~95 % of the time when delta = 0."""
    rng = np.random.default_rng(11)
    for delta, want_detect in ((1.0, True), (0.0, False)):
        hits = detected = 0
        for _ in range(200):
            shared = crossed_table(rng, 5, 150, 0.0, 0.5, 1.0, 0.5)
            a = shared + rng.normal(0, 0.3, (5, 1)) + rng.normal(0, 0.7, (5, 150))
            b = shared + delta + rng.normal(0, 0.3, (5, 1)) + rng.normal(0, 0.7, (5, 150))
            est = paired_difference(a, b)
            hits += est.low <= delta <= est.high
            detected += est.excludes_null
        assert 0.9 <= hits / 200 <= 0.99
        if want_detect:
            assert detected / 200 > 0.9
        else:
            assert detected / 200 < 0.1


def test_bootstrap_agrees_when_images_dominate_and_under_covers_with_few_seeds():
    """Why ``crossed`` is the default: with 5 seeds and training randomness dominating, a percentile bootstrap of
    5 seeds sees too little of their spread."""
    easy = dict(n_seeds=5, n_images=200, sd_seed=0.05, sd_image=1.0, sd_residual=1.0)
    assert coverage('bootstrap', trials=150, seed=3, samples=400, **easy)['coverage'] >= 0.9
    hard = dict(n_seeds=5, n_images=200, sd_seed=1.0, sd_image=1.0, sd_residual=1.0)
    assert coverage('bootstrap', trials=150, seed=3, samples=400, **hard)['coverage'] < 0.9


def test_bootstrap_interval_p_value_and_arguments():
    rng = np.random.default_rng(4)
    y = crossed_table(rng, 4, 100, mean=0.5, sd_seed=0.05, sd_image=1.0, sd_residual=0.5)
    boot = bootstrap_mean(y, samples=2000, seed=1)
    ref = crossed_mean(y)
    assert boot.method == 'bootstrap' and boot.low < boot.mean < boot.high
    assert boot.high - boot.low == pytest.approx(ref.high - ref.low, rel=0.35)
    assert boot.p_value < 0.01 and bootstrap_mean(y - y.mean(), samples=500).p_value > 0.5
    assert bootstrap_mean(y, samples=300, seed=2).low == bootstrap_mean(y, samples=300, seed=2).low
    only_images = bootstrap_mean(y, resample=['images'], samples=300)
    assert only_images.covers == ('images',)
    with pytest.raises(ConfigError, match="'seeds' and/or 'images'"):
        bootstrap_mean(y, resample=['runs'])
    with pytest.raises(ConfigError, match='unknown interval method'):
        estimate_mean(y, method='jackknife')
    with pytest.raises(ConfigError, match='confidence level'):
        crossed_mean(y, level=95)


def test_holm_is_the_step_down_adjustment():
    assert holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]
    assert holm([0.5, math.nan, 0.001]) == pytest.approx([0.5, math.nan, 0.002], nan_ok=True)
    assert holm([]) == []


def test_compare_arms_pairs_directions_and_holm():
    rng = np.random.default_rng(5)
    base = crossed_table(rng, 3, 80, 0.5, 0.05, 0.3, 0.1)
    values = {'a': {'del': base, 'acc': (base > 0.5) * 100.0},
              'b': {'del': base + 0.2, 'acc': (base > 0.5) * 100.0},
              'c': {'del': base - 0.2}}
    res = compare_arms(values, higher_is_better={'del': False, 'acc': True})
    d = res['metrics']['del']['differences']
    assert list(d) == ['b - a', 'c - a']
    assert d['b - a']['better'] == 'reference' and d['c - a']['better'] == 'arm'
    assert res['metrics']['acc']['differences']['b - a']['better'] is None  # identical: interval [0, 0]
    assert list(res['metrics']['acc']['differences']) == ['b - a']  # c has no 'acc'
    ps = [r['p_value'] for e in res['metrics'].values() for r in e['differences'].values()]
    assert [r['p_holm'] for e in res['metrics'].values() for r in e['differences'].values()] == holm(ps)
    assert arm_pairs(['a', 'b', 'c'], pairs='all') == [('a', 'b'), ('a', 'c'), ('b', 'c')]
    assert arm_pairs(['a', 'b', 'c'], reference='b') == [('b', 'a'), ('b', 'c')]
    with pytest.raises(ConfigError, match="reference 'z'"):
        arm_pairs(['a', 'b'], reference='z')
    with pytest.raises(DataError, match='different seeds x images shapes'):
        compare_arms({'a': {'m': np.zeros((2, 5))}, 'b': {'m': np.zeros((3, 5))}})


def test_markdown_tables_show_what_the_data_support():
    rng = np.random.default_rng(6)
    base = crossed_table(rng, 2, 40, 60.0, 2.0, 10.0, 5.0)
    res = compare_arms({'base': {'top1': base}, 'new': {'top1': base + 3.0 + rng.normal(0, 5, base.shape)}},
                       higher_is_better={'top1': True})
    table = differences_table(res)
    assert '| top1 ↑ | new - base |' in table and '95 % CI' in table
    assert means_table(res).count('[') == 2
    assert per_seed_table(res, [0, 1]).count('\n') == 2 + 3 - 1
    assert 'sd seeds' in components_table(res)
    assert fmt(0.123456, 0.05) == '0.123' and fmt(59.2345, 2.3) == '59.2' and fmt(3.0, 40, sign=True) == '+3'
    assert 'training randomness (seeds) and test-set sampling' in method_statement('crossed', 0.95, 5)
    assert 'test-set sampling (images) only' in method_statement('crossed', 0.95, 1)
