"""Confidence-based performance estimates and workflow metrics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.stats.binning import ScoreHistogram, histogram, score_bin
from monitoring.stats.cbpe import expected_auc, expected_event_rate
from monitoring.stats.core import Z95
from monitoring.stats.intervals import newcombe_difference
from monitoring.stats.workflow import (
    TIME_EDGES_SECONDS,
    quantile_from_histogram,
    rate,
    subgroup_difference,
    time_quantile,
)

FAST = settings(max_examples=50, deadline=None)
seeds = st.integers(0, 2**32 - 1)


# --- CBPE ------------------------------------------------------------------------------------


def test_expected_auc_hand_worked_three_cases():
    # p = 0.2, 0.5, 0.9 in three different bins. Ordered pairs (i positive, j negative), i ≠ j:
    #   numerator   Σ p_i (1 - p_j) [s_i > s_j] = 0.5·0.8 + 0.9·0.8 + 0.9·0.5 = 1.57
    #   denominator P·Q - Σ p(1 - p) = 1.6·1.4 - (0.16 + 0.25 + 0.09) = 1.74
    h = ScoreHistogram.from_arrays([0.2, 0.5, 0.9], [np.nan, 0.0, 1.0])  # labels ignored
    e = expected_auc(h)
    assert e.value == pytest.approx(1.57 / 1.74, abs=1e-12)
    assert e.n == 3
    # Enumerating the 2³ outcomes gives the two expectations separately.
    p = np.array([0.2, 0.5, 0.9])
    num = den = 0.0
    for ys in itertools.product([0, 1], repeat=3):
        prob = np.prod(np.where(np.array(ys) == 1, p, 1 - p))
        pairs = [(i, j) for i in range(3) for j in range(3) if ys[i] == 1 and ys[j] == 0]
        num += prob * sum(p[i] > p[j] for i, j in pairs)
        den += prob * len(pairs)
    assert e.value == pytest.approx(num / den, abs=1e-12)


def test_expected_auc_matches_monte_carlo():
    rng = np.random.default_rng(5)
    p = 1 / (1 + np.exp(-rng.normal(-1, 1.2, size=400)))
    h = ScoreHistogram.from_arrays(p)
    e = expected_auc(h)
    b = score_bin(p)
    ys = rng.random((4000, p.size)) < p  # 4000 simulated label sets
    num = np.empty(len(ys))
    den = np.empty(len(ys))
    for t, y in enumerate(ys):
        pos = np.bincount(b[y], minlength=100).astype(float)
        neg = np.bincount(b[~y], minlength=100).astype(float)
        num[t] = (pos * (np.cumsum(neg) - neg + 0.5 * neg)).sum()
        den[t] = pos.sum() * neg.sum()
    # ratio of the Monte-Carlo means: our estimand, up to simulation error (< 0.002 here)
    assert e.value == pytest.approx(num.mean() / den.mean(), abs=0.002)
    # the mean simulated AUC differs from the ratio by O(1/n) only
    assert e.value == pytest.approx((num / den).mean(), abs=0.005)
    # the interval is the spread of the AUC that will be observed
    simulated = num / den
    inside = ((simulated >= e.low) & (simulated <= e.high)).mean()
    assert 0.9 <= inside <= 0.99


@FAST
@given(seed=seeds, n=st.integers(2, 80), spread=st.floats(0.1, 3))
def test_expected_auc_matches_the_pairwise_formula(seed, n, spread):
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(-0.5, spread, size=n)))
    b = score_bin(p)
    psi = (b[:, None] > b[None, :]) + 0.5 * (b[:, None] == b[None, :])
    weight = p[:, None] * (1 - p[None, :])
    np.fill_diagonal(weight, 0.0)  # a case is never paired with itself
    e = expected_auc(ScoreHistogram.from_arrays(p))
    assert e.value == pytest.approx((weight * psi).sum() / weight.sum(), abs=1e-12)
    assert e.low <= e.value <= e.high


@FAST
@given(seed=seeds, n=st.integers(1, 500))
def test_expected_event_rate_matches_raw_sums(seed, n):
    rng = np.random.default_rng(seed)
    p = rng.random(n) ** 2
    y = np.where(rng.random(n) < 0.5, np.nan, (rng.random(n) < p).astype(float))
    e = expected_event_rate(ScoreHistogram.from_arrays(p, y))
    assert e.n == n
    assert e.value == pytest.approx(p.mean(), abs=1e-12)
    half = Z95 * math.sqrt((p * (1 - p)).sum()) / n
    assert e.high == pytest.approx(min(1.0, p.mean() + half), abs=1e-12)
    assert e.low == pytest.approx(max(0.0, p.mean() - half), abs=1e-12)


def test_cbpe_degenerate_and_malformed():
    assert math.isnan(expected_event_rate(ScoreHistogram()).value)
    assert math.isnan(expected_auc(ScoreHistogram()).value)
    assert math.isnan(expected_auc(ScoreHistogram.from_arrays([0.0, 0.0])).value)  # no positives
    assert math.isnan(expected_auc(ScoreHistogram.from_arrays([1.0])).value)
    with pytest.raises(ValueError):
        expected_event_rate(ScoreHistogram.from_arrays([0.5]), z=0.0)


# --- workflow rates and subgroups ------------------------------------------------------------


def test_rate_and_subgroup_difference_against_the_rest():
    assert rate(3, 12).value == 0.25
    e = subgroup_difference(30, 100, 80, 1000)
    # subgroup 30/100 vs the rest 50/900
    ref = newcombe_difference(30, 100, 50, 900)
    assert e == ref
    assert e.value == pytest.approx(0.3 - 50 / 900)
    assert e.n == 100
    assert math.isnan(subgroup_difference(5, 10, 5, 10).value)  # subgroup is everyone
    with pytest.raises(ValueError):
        subgroup_difference(30, 100, 20, 1000)  # more events in the subgroup than overall
    with pytest.raises(ValueError):
        subgroup_difference(10, 100, 960, 1000)  # rest would have more events than cases


@FAST
@given(
    n_sub=st.integers(1, 300), n_rest=st.integers(1, 300), f1=st.floats(0, 1), f2=st.floats(0, 1)
)
def test_subgroup_difference_equals_newcombe_on_the_complement(n_sub, n_rest, f1, f2):
    k_sub, k_rest = round(f1 * n_sub), round(f2 * n_rest)
    e = subgroup_difference(k_sub, n_sub, k_sub + k_rest, n_sub + n_rest)
    assert e == newcombe_difference(k_sub, n_sub, k_rest, n_rest)


# --- quantiles from histograms ---------------------------------------------------------------


def test_quantile_hand_case():
    edges = [10.0, 20.0, 30.0]
    counts = [0, 10, 10, 0]  # bins: <10 | [10,20) | [20,30) | >=30
    e = quantile_from_histogram(counts, edges, 0.5)
    assert e.value == pytest.approx(20.0)
    half = Z95 * math.sqrt(20 * 0.25)  # ranks 10 ∓ 4.383
    assert e.low == pytest.approx(10 + (10 - half) / 10 * 10)
    assert e.high == pytest.approx(20 + (10 + half - 10) / 10 * 10)
    assert quantile_from_histogram(counts, edges, 0.25).value == pytest.approx(15.0)
    assert quantile_from_histogram(counts, edges, 1.0).value == pytest.approx(30.0)
    # open outer bins report their finite edge unless bounded
    tail = [5, 0, 0, 5]
    assert quantile_from_histogram(tail, edges, 0.1).value == 10.0
    assert quantile_from_histogram(tail, edges, 0.1, lower=0.0).value == pytest.approx(2.0)
    assert quantile_from_histogram(tail, edges, 0.9).value == 30.0
    assert quantile_from_histogram(tail, edges, 0.9, upper=40.0).value == pytest.approx(38.0)


@FAST
@given(
    seed=seeds,
    n=st.integers(1, 2000),
    q=st.floats(0, 0.999),
    scale=st.floats(60, 5 * 86_400),
)
def test_time_quantile_lies_in_the_bin_of_the_raw_order_statistic(seed, n, q, scale):
    t = np.random.default_rng(seed).exponential(scale, size=n)
    counts, _ = histogram(t, TIME_EDGES_SECONDS)
    e = time_quantile(counts, q)
    x = np.sort(t)[int(math.floor(n * q))]  # order statistic number floor(nq) + 1
    lo = np.concatenate([[0.0], TIME_EDGES_SECONDS])
    hi = np.concatenate([TIME_EDGES_SECONDS, [np.inf]])
    j = np.searchsorted(TIME_EDGES_SECONDS, x, side="right")
    top = TIME_EDGES_SECONDS[-1] if j == lo.size - 1 else hi[j]
    assert lo[j] <= e.value <= top
    assert e.low <= e.value <= e.high
    assert e.n == n


def test_order_statistic_interval_covers_the_true_median():
    rng = np.random.default_rng(2)
    edges = np.linspace(-4, 4, 161)  # fine bins
    hits = 0
    for _ in range(300):
        counts, _ = histogram(rng.normal(size=150), edges)
        e = quantile_from_histogram(counts, edges, 0.5)
        hits += e.low <= 0.0 <= e.high
    assert 0.91 <= hits / 300 <= 0.985


def test_quantile_degenerate_and_malformed():
    assert math.isnan(quantile_from_histogram([0, 0], [1.0], 0.5).value)
    with pytest.raises(ValueError):
        quantile_from_histogram([1, 2, 3], [1.0], 0.5)  # needs len(edges) + 1 bins
    with pytest.raises(ValueError):
        quantile_from_histogram([1, 2], [1.0], 1.5)
    with pytest.raises(ValueError):
        quantile_from_histogram([1, 2], [1.0], 0.5, lower=2.0)
    assert TIME_EDGES_SECONDS[0] == 60.0 and TIME_EDGES_SECONDS[-1] == pytest.approx(2_592_000)
    assert np.all(np.diff(np.log(TIME_EDGES_SECONDS)) == pytest.approx(math.log(43_200) / 48))
