"""Calibration from score histograms against raw-data fits (scikit-learn, scipy) and hand cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from monitoring.stats.binning import ScoreHistogram, clipped_logit, score_bin
from monitoring.stats.calibration import (
    brier,
    calibration_in_the_large,
    calibration_slope,
    ece,
    observed_expected,
)
from monitoring.stats.core import Z95
from monitoring.stats.intervals import garwood

FAST = settings(max_examples=50, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def simulate(seed, n, mu, sigma, a0, b0, unlabelled=0.0):
    rng = np.random.default_rng(seed)
    logit = clipped_logit(special.expit(rng.normal(mu, sigma, size=n)))
    p = special.expit(logit)
    y = (rng.random(n) < special.expit(a0 + b0 * logit)).astype(float)
    labels = np.where(rng.random(n) < unlabelled, np.nan, y)
    return p, labels


def se_of(e):
    return (e.high - e.low) / (2 * Z95)


# --- hand-worked cases -----------------------------------------------------------------------


def test_hand_case_observed_expected_brier_ece():
    p = np.array([0.2, 0.3, 0.5])
    y = np.array([1.0, 0.0, 1.0])
    h = ScoreHistogram.from_arrays(np.append(p, 0.9), np.append(y, np.nan))  # unlabelled ignored
    oe = observed_expected(h)
    low, high = garwood(2)
    assert (oe.value, oe.n) == (2.0, 3)
    assert oe.low == pytest.approx(low) and oe.high == pytest.approx(high)
    # Brier: (0.8² + 0.3² + 0.5²)/3
    assert brier(h).value == pytest.approx((0.64 + 0.09 + 0.25) / 3, abs=1e-15)
    # ECE, 10 groups: |1 - 0.2| + |0 - 0.3| + |1 - 0.5| over 3
    assert ece(h).value == pytest.approx((0.8 + 0.3 + 0.5) / 3, abs=1e-15)
    h2 = ScoreHistogram.from_arrays([0.05, 0.15, 0.12, 0.95], [0, 1, 0, 1])
    assert ece(h2).value == pytest.approx((0.05 + 0.73 + 0.05) / 4, abs=1e-15)


def test_hand_case_calibration_in_the_large():
    # ten cases at p = 0.5 (logit 0), seven events: a = logit(0.7), SE = 1/sqrt(10·0.7·0.3)
    h = ScoreHistogram.from_arrays(np.full(10, 0.5), np.array([1.0] * 7 + [0.0] * 3))
    e = calibration_in_the_large(h)
    assert e.value == pytest.approx(math.log(0.7 / 0.3), abs=1e-10)
    se = 1 / math.sqrt(10 * 0.21)
    assert e.low == pytest.approx(e.value - Z95 * se, abs=1e-9)
    assert e.p_value == pytest.approx(2 * stats.norm.sf(e.value / se), abs=1e-9)


def test_hand_case_calibration_slope():
    # two score groups, saturated fit: a + b·logit(0.2) = logit(0.3), a + b·logit(0.6) = logit(0.5)
    p = np.array([0.2] * 10 + [0.6] * 10)
    y = np.array([1.0] * 3 + [0.0] * 7 + [1.0] * 5 + [0.0] * 5)
    e = calibration_slope(ScoreHistogram.from_arrays(p, y))
    b = (special.logit(0.5) - special.logit(0.3)) / (special.logit(0.6) - special.logit(0.2))
    assert e.value == pytest.approx(b, abs=1e-9)
    # Wald SE from the 2×2 information Σ n μ(1-μ) [1 L; L L²] at the fitted μ = (0.3, 0.5)
    L = np.array([special.logit(0.2), special.logit(0.6)])
    w = np.array([10 * 0.3 * 0.7, 10 * 0.5 * 0.5])
    info = np.array([[w.sum(), (w * L).sum()], [(w * L).sum(), (w * L * L).sum()]])
    se = math.sqrt(np.linalg.inv(info)[1, 1])
    assert e.high == pytest.approx(b + Z95 * se, abs=1e-8)


# --- against raw-data references -------------------------------------------------------------


@FAST
@given(
    seed=seeds,
    n=st.integers(200, 3000),
    mu=st.floats(-3, 2),
    sigma=st.floats(0.3, 2),
    a0=st.floats(-1, 1),
    b0=st.floats(0.5, 1.5),
)
def test_logistic_fits_agree_with_raw_data_fits(seed, n, mu, sigma, a0, b0):
    p, y = simulate(seed, n, mu, sigma, a0, b0, unlabelled=0.2)
    labelled = ~np.isnan(y)
    pl, yl = p[labelled], y[labelled]
    if yl.min() == yl.max():
        return
    h = ScoreHistogram.from_arrays(p, y)
    logit = clipped_logit(pl)
    # intercept with logit(p) as offset: root of the raw score equation (scipy brentq)
    a_raw = optimize.brentq(lambda a: (yl - special.expit(a + logit)).sum(), -40, 40, xtol=1e-13)
    cil = calibration_in_the_large(h)
    assert cil.n == labelled.sum()
    # empirical bound (docs/statistics.md): within 0.1 standard errors in this range
    assert abs(cil.value - a_raw) <= 0.1 * se_of(cil)
    slope = calibration_slope(h)
    if not math.isnan(slope.value):
        sk = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(
            logit[:, None], yl
        )
        assert abs(slope.value - sk.coef_[0][0]) <= 0.1 * se_of(slope)


def test_slope_error_grows_with_mass_in_the_extreme_score_bins():
    # Documented limitation: with logit(p) ~ N(-4, 4²) almost half the cases sit in bins 0
    # and 99, each spanning ~9 logit units; the mean-logit approximation is then off by up
    # to about one standard error.
    p, y = simulate(17, 5000, -4.0, 4.0, 0.2, 0.8)
    logit = clipped_logit(p)
    sk = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(
        logit[:, None], y
    )
    e = calibration_slope(ScoreHistogram.from_arrays(p, y))
    err = abs(e.value - sk.coef_[0][0]) / se_of(e)
    assert 0.3 < err < 1.5


@FAST
@given(seed=seeds, n=st.integers(1, 2000), mu=st.floats(-4, 4), sigma=st.floats(0.1, 3))
def test_brier_is_exact_and_its_interval_matches_raw_variance(seed, n, mu, sigma):
    p, y = simulate(seed, n, mu, sigma, 0.0, 1.0, unlabelled=0.1)
    labelled = ~np.isnan(y)
    h = ScoreHistogram.from_arrays(p, y)
    e = brier(h)
    if not labelled.any():
        assert math.isnan(e.value)
        return
    pl, yl = p[labelled], y[labelled]
    assert e.value == pytest.approx(brier_score_loss(yl, pl), abs=1e-12)
    terms = (pl - yl) ** 2
    half = Z95 * terms.std() / math.sqrt(terms.size)
    if e.value - half > 0 and e.value + half < 1:  # not clipped
        assert (e.high - e.low) / 2 == pytest.approx(half, rel=1e-3, abs=1e-6)


@FAST
@given(seed=seeds, n=st.integers(1, 1500), n_bins=st.sampled_from([1, 2, 5, 10, 20]))
def test_ece_matches_raw_computation(seed, n, n_bins):
    p, y = simulate(seed, n, -1.0, 1.5, 0.3, 1.2, unlabelled=0.1)
    labelled = ~np.isnan(y)
    h = ScoreHistogram.from_arrays(p, y)
    e = ece(h, n_bins)
    if not labelled.any():
        assert math.isnan(e.value)
        return
    pl, yl = p[labelled], y[labelled]
    group = score_bin(pl) * n_bins // 100
    raw = sum(abs(yl[group == g].sum() - pl[group == g].sum()) for g in range(n_bins)) / pl.size
    assert e.value == pytest.approx(raw, abs=1e-12)
    assert e.low <= e.value <= e.high
    assert e == ece(h, n_bins)  # deterministic bootstrap


@FAST
@given(seed=seeds, n=st.integers(1, 1500))
def test_observed_expected_matches_raw_sums(seed, n):
    p, y = simulate(seed, n, -1.5, 1.0, 0.0, 1.0, unlabelled=0.3)
    labelled = ~np.isnan(y)
    e = observed_expected(ScoreHistogram.from_arrays(p, y))
    if not labelled.any():
        assert math.isnan(e.value)
        return
    o, ex = y[labelled].sum(), p[labelled].sum()
    assert e.value == pytest.approx(o / ex, rel=1e-12)
    low, high = garwood(int(o))
    assert e.low == pytest.approx(low / ex, rel=1e-12)
    assert e.high == pytest.approx(high / ex, rel=1e-12)


# --- degenerate and malformed ----------------------------------------------------------------


def test_degenerate_inputs_give_nan():
    empty = ScoreHistogram()
    unlabelled = ScoreHistogram.from_arrays([0.1, 0.5], [np.nan, np.nan])
    one_outcome = ScoreHistogram.from_arrays([0.1, 0.5, 0.7], [1, 1, 1])
    separated = ScoreHistogram.from_arrays([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    one_cell = ScoreHistogram.from_arrays([0.5, 0.5, 0.5], [0, 1, 1])
    for h in (empty, unlabelled):
        for f in (observed_expected, calibration_in_the_large, calibration_slope, ece, brier):
            assert math.isnan(f(h).value)
    assert math.isnan(calibration_in_the_large(one_outcome).value)
    assert math.isnan(calibration_slope(one_outcome).value)
    assert math.isnan(calibration_slope(separated).value)
    assert not math.isnan(calibration_in_the_large(separated).value)
    assert math.isnan(calibration_slope(one_cell).value)
    assert calibration_in_the_large(one_cell).value == pytest.approx(math.log(2 / 1))


def test_malformed_inputs_raise():
    h = ScoreHistogram.from_arrays([0.1, 0.5], [0, 1])
    with pytest.raises(ValueError):
        ece(h, n_bins=3)  # must divide the 100 score bins
    with pytest.raises(ValueError):
        brier(h, z=-1)
