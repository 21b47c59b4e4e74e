"""Risk-adjusted CUSUM, tabular CUSUM and EWMA against hand-worked and textbook values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.stats.binning import ScoreHistogram
from monitoring.stats.sequential import (
    cusum,
    cusum_path,
    daily_cusum_terms,
    ewma,
    patient_terms,
    risk_adjusted_cusum,
)

FAST = settings(max_examples=50, deadline=None)
seeds = st.integers(0, 2**32 - 1)

# Montgomery, Introduction to Statistical Quality Control, Table 9.1: x_1..x_20 ~ N(10, 1),
# x_21..x_30 ~ N(11, 1).
MONTGOMERY = [
    9.45, 7.99, 9.29, 11.66, 12.16, 10.18, 8.04, 11.46, 9.20, 10.34,
    9.03, 11.47, 10.51, 9.40, 10.08, 9.37, 10.62, 10.31, 8.52, 10.84,
    10.90, 9.33, 12.29, 11.50, 10.60, 11.08, 10.38, 11.62, 11.31, 10.52,
]  # fmt: skip


def loop_cusum(w, h):
    s, path, alarm = 0.0, [], None
    for t, x in enumerate(w):
        s = max(0.0, s + x)
        path.append(s)
        if alarm is None and s > h:
            alarm = t
    return np.array(path), alarm


def test_tabular_cusum_montgomery_example():
    r = cusum(MONTGOMERY, target=10.0, sd=1.0, k=0.5, h=5.0)
    # textbook: C+_1 = 0, C+_4 = 1.16, C+_5 = 2.82, C+_29 = 5.28 > H = 5: signal at period 29
    assert r.upper[0] == 0.0
    assert r.upper[3] == pytest.approx(1.16, abs=1e-9)
    assert r.upper[4] == pytest.approx(2.82, abs=1e-9)
    assert r.upper[28] == pytest.approx(5.28, abs=1e-9)
    assert r.first_alarm == 28
    # C-_1 = max(0, -(9.45 - 10) - 0.5) = 0.05; C-_2 = 0.05 + 2.01 - 0.5 = 1.56
    assert r.lower[:2] == pytest.approx([0.05, 1.56], abs=1e-9)


def test_ewma_montgomery_example():
    r = ewma(MONTGOMERY, target=10.0, sd=1.0, lam=0.1, L=2.7)
    # z_1 = 0.1·9.45 + 0.9·10 = 9.945, z_2 = 0.1·7.99 + 0.9·9.945 = 9.7495
    assert r.path[:2] == pytest.approx([9.945, 9.7495], abs=1e-12)
    # period-1 limits: 10 ± 2.7·sqrt(0.1/1.9·(1 - 0.9²)) = 10 ± 0.27
    assert r.ucl[0] == pytest.approx(10.27, abs=1e-12)
    assert r.lcl[0] == pytest.approx(9.73, abs=1e-12)
    # asymptotic limit 10 + 2.7·sqrt(0.1/1.9) = 10.6194
    assert r.ucl[-1] == pytest.approx(10 + 2.7 * math.sqrt(0.1 / 1.9), abs=1e-3)
    # z_28 = 10.5731 is inside, z_29 = 10.6468 outside: first alarm at period 29
    assert r.path[27] == pytest.approx(10.5731, abs=1e-4)
    assert r.path[28] == pytest.approx(10.6468, abs=1e-4)
    assert r.first_alarm == 28


@FAST
@given(seed=seeds, n=st.integers(0, 200), lam=st.floats(0.05, 1.0), L=st.floats(1, 4))
def test_ewma_matches_recursion_and_exact_limits(seed, n, lam, L):
    x = np.random.default_rng(seed).normal(0.3, 2.0, size=n)
    r = ewma(x, target=0.0, sd=2.0, lam=lam, L=L)
    z, expected = 0.0, []
    for v in x:
        z = lam * v + (1 - lam) * z
        expected.append(z)
    np.testing.assert_allclose(r.path, expected, atol=1e-12)
    t = np.arange(1, n + 1)
    half = L * 2.0 * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * t)))
    np.testing.assert_allclose(r.ucl, half, atol=1e-12)
    out = np.flatnonzero(np.abs(np.asarray(expected)) > half)
    assert r.first_alarm == (int(out[0]) if out.size else None)


@FAST
@given(seed=seeds, n=st.integers(0, 300), h=st.floats(0.5, 10))
def test_cusum_path_matches_a_plain_loop(seed, n, h):
    w = np.random.default_rng(seed).normal(0.05, 1.0, size=n)
    path, alarm = cusum_path(w, h)
    ref_path, ref_alarm = loop_cusum(w, h)
    np.testing.assert_allclose(path, ref_path, atol=1e-9)
    assert alarm == ref_alarm


def test_risk_adjusted_cusum_hand_worked():
    # R = 2, patients p = (0.1, 0.5, 0.2), outcomes y = (1, 0, 1):
    # W = ln2 - ln1.1 = 0.597837, -ln1.5 = -0.405465, ln2 - ln1.2 = 0.510826
    # S = 0.597837, 0.192372, 0.703198
    p = np.array([0.1, 0.5, 0.2])
    path, alarm = risk_adjusted_cusum([1, 0, 1], patient_terms(p, 2.0), odds_ratio=2.0, h=4.5)
    assert path == pytest.approx([0.597837, 0.192372, 0.703198], abs=1e-6)
    assert alarm is None
    # the lower chart (R = 0.5) accumulates when outcomes are fewer than expected
    low, _ = risk_adjusted_cusum([0, 0, 0], patient_terms(p, 0.5), odds_ratio=0.5, h=4.0)
    assert low == pytest.approx(np.cumsum(-np.log(1 - 0.5 * p)), abs=1e-12)


def test_steiner_chart_alarms_when_odds_double():
    rng = np.random.default_rng(4)
    p = rng.uniform(0.02, 0.3, size=3000)
    odds = p / (1 - p)
    y_in = rng.random(3000) < p
    y_out = rng.random(3000) < 2 * odds / (1 + 2 * odds)
    terms = patient_terms(p, 2.0)
    _, alarm_in = risk_adjusted_cusum(y_in[:300].astype(int), terms[:300], 2.0, 4.5)
    _, alarm_out = risk_adjusted_cusum(y_out.astype(int), terms, 2.0, 4.5)
    assert alarm_in is None
    assert alarm_out is not None and alarm_out < 500


@FAST
@given(
    seed=seeds,
    days=st.integers(1, 15),
    per_day=st.integers(1, 40),
    odds_ratio=st.sampled_from([0.5, 1.5, 2.0, 3.0]),
)
def test_daily_aggregates_equal_the_sum_of_patient_weights(seed, days, per_day, odds_ratio):
    rng = np.random.default_rng(seed)
    # p constant within score bins: bin centres only
    p = (rng.integers(0, 100, size=(days, per_day)) + 0.5) / 100
    y = (rng.random((days, per_day)) < p).astype(float)
    weights = []
    for d in range(days):
        o, a = daily_cusum_terms(ScoreHistogram.from_arrays(p[d], y[d]), odds_ratio)
        assert o == y[d].sum()
        w_patients = y[d] * math.log(odds_ratio) - patient_terms(p[d], odds_ratio)
        assert o * math.log(odds_ratio) - a == pytest.approx(w_patients.sum(), abs=1e-9)
        weights.append(o * math.log(odds_ratio) - a)
    obs = y.sum(axis=1).astype(int)
    terms = np.array(
        [
            daily_cusum_terms(ScoreHistogram.from_arrays(p[d], y[d]), odds_ratio)[1]
            for d in range(days)
        ]
    )
    daily, _ = risk_adjusted_cusum(obs, terms, odds_ratio, h=4.5)
    np.testing.assert_allclose(daily, loop_cusum(weights, 4.5)[0], atol=1e-9)
    # per patient the chart can reset to 0 mid-day, so it is never below the daily one
    per_patient, _ = risk_adjusted_cusum(
        y.ravel().astype(int), patient_terms(p.ravel(), odds_ratio), odds_ratio, h=4.5
    )
    day_ends = per_patient[per_day - 1 :: per_day]
    assert np.all(day_ends >= daily - 1e-9)


def test_daily_terms_ignore_unlabelled_cases():
    h = ScoreHistogram.from_arrays([0.105, 0.105, 0.505], [1.0, np.nan, 0.0])
    o, a = daily_cusum_terms(h, 2.0)
    assert o == 1
    assert a == pytest.approx(math.log(1.105) + math.log(1.505), abs=1e-12)


def test_empty_and_malformed():
    assert cusum_path([], 4.5)[0].size == 0 and cusum_path([], 4.5)[1] is None
    assert cusum([], 0.0, 1.0).first_alarm is None
    assert ewma([], 0.0, 1.0).path.size == 0
    assert daily_cusum_terms(ScoreHistogram(), 2.0) == (0, 0.0)
    for call in (
        lambda: cusum([1.0], 0.0, 0.0),
        lambda: cusum([np.nan], 0.0, 1.0),
        lambda: ewma([1.0], 0.0, 1.0, lam=0.0),
        lambda: cusum_path([1.0], h=0.0),
        lambda: risk_adjusted_cusum([1, 0], [0.1], 2.0),
        lambda: risk_adjusted_cusum([1], [0.1], 1.0),
        lambda: risk_adjusted_cusum([-1], [0.1], 2.0),
        lambda: patient_terms([1.5], 2.0),
    ):
        with pytest.raises(ValueError):
            call()
