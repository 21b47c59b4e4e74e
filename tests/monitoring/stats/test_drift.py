"""Drift statistics: references (scipy) on fixed inputs, binned-vs-exact bounds on raw data,
determinism and speed of the bootstrap."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.stats.contingency import association

from monitoring.stats import drift
from monitoring.stats.binning import bin_index, histogram, quantile_edges
from monitoring.stats.drift import chi_square, js_distance, ks_binned, psi, wasserstein_binned

FAST = settings(max_examples=50, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def raw_samples(seed: int, n: int, m: int, shift: float, scale: float, ties: bool):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = rng.normal(shift, scale, size=m)
    if ties:
        x, y = np.round(x, 1), np.round(y, 1)
    return x, y


def binned(x, y, k):
    edges = quantile_edges(x, k)
    rc, rs = histogram(x, edges)
    cc, cs = histogram(y, edges)
    return edges, rc, rs, cc, cs


# --- PSI ------------------------------------------------------------------------------------


def test_psi_hand_case():
    e = psi([50, 50], [25, 75])
    # (0.25 - 0.5)·ln(0.5) + (0.75 - 0.5)·ln(1.5) = 0.25·ln 3
    assert e.value == pytest.approx(0.25 * math.log(3), abs=1e-12)
    assert e.n == 100
    assert e.low <= e.value <= e.high


def test_psi_floors_empty_bins_at_eps_and_renormalises():
    e = psi([100, 0], [50, 50], eps=1e-4)
    p = np.array([1.0, 1e-4]) / 1.0001
    q = np.array([0.5, 0.5])
    assert e.value == pytest.approx(float(((q - p) * np.log(q / p)).sum()), abs=1e-12)
    assert e.value == pytest.approx(
        0.4999 * math.log(0.5 / 0.9999) * -1 + 0.4999 * math.log(5000.5), abs=1e-4
    )


def test_psi_identical_distributions_is_zero():
    assert psi([10, 20, 30], [20, 40, 60]).value == 0.0


@FAST
@given(seed=seeds, k=st.integers(2, 30))
def test_psi_matches_formula_on_random_counts(seed, k):
    rng = np.random.default_rng(seed)
    r = rng.integers(1, 200, size=k)
    c = rng.integers(1, 200, size=k)
    p, q = r / r.sum(), c / c.sum()  # no empty bins: the floor does not act
    assert psi(r, c).value == pytest.approx(float(((q - p) * np.log(q / p)).sum()), abs=1e-12)


# --- Jensen–Shannon --------------------------------------------------------------------------


@FAST
@given(seed=seeds, k=st.integers(1, 40), zeros=st.booleans())
def test_js_distance_matches_scipy_base_2(seed, k, zeros):
    rng = np.random.default_rng(seed)
    r = rng.integers(0 if zeros else 1, 100, size=k)
    c = rng.integers(0 if zeros else 1, 100, size=k)
    r[0] += 1
    c[-1] += 1
    e = js_distance(r, c)
    assert e.value == pytest.approx(float(jensenshannon(r, c, base=2)), abs=1e-12)
    assert 0 <= e.low <= e.value <= e.high <= 1


def test_js_hand_case_disjoint_supports_is_one():
    assert js_distance([5, 0], [0, 7]).value == pytest.approx(1.0)


# --- Kolmogorov–Smirnov ----------------------------------------------------------------------


def test_ks_equals_scipy_when_each_bin_holds_one_value():
    # Values only on the integers 0..5, edges between them: binned KS is exact.
    rng = np.random.default_rng(7)
    x = rng.integers(0, 6, size=400).astype(float)
    y = rng.integers(1, 6, size=300).astype(float)
    edges = np.arange(0.5, 5.0, 1.0)
    rc, _ = histogram(x, edges)
    cc, _ = histogram(y, edges)
    e = ks_binned(rc, cc)
    ref = stats.ks_2samp(x, y, method="asymp")
    assert e.value == pytest.approx(ref.statistic, abs=1e-12)
    en = 400 * 300 / 700
    assert e.p_value == pytest.approx(stats.kstwobign.sf(math.sqrt(en) * ref.statistic), rel=1e-9)


@FAST
@given(
    seed=seeds,
    n=st.integers(20, 600),
    m=st.integers(20, 600),
    k=st.integers(2, 30),
    shift=st.floats(-1, 1),
    scale=st.floats(0.5, 2),
    ties=st.booleans(),
)
def test_ks_binned_is_within_one_bin_mass_of_exact(seed, n, m, k, shift, scale, ties):
    x, y = raw_samples(seed, n, m, shift, scale, ties)
    _, rc, _, cc, _ = binned(x, y, k)
    exact = stats.ks_2samp(x, y).statistic
    d = ks_binned(rc, cc).value
    bound = max((rc / n).max(), (cc / m).max())
    assert d <= exact + 1e-12
    assert exact - d <= bound + 1e-12


@settings(max_examples=15, deadline=None)  # one bin per distinct value: slow-ish draws
@given(seed=seeds, n=st.integers(200, 500), m=st.integers(200, 500))
def test_ks_p_value_is_close_to_scipy_asymptotic_on_fine_bins(seed, n, m):
    # With many distinct values per sample and fine bins, D matches and so do p-values.
    x, y = raw_samples(seed, n, m, 0.1, 1.0, ties=False)
    edges = np.unique(np.concatenate([x, y]))[:-1] + 1e-12  # one value per bin
    rc, _ = histogram(x, edges)
    cc, _ = histogram(y, edges)
    e = ks_binned(rc, cc)
    ref = stats.ks_2samp(x, y, method="asymp")
    assert e.value == pytest.approx(ref.statistic, abs=1e-12)
    # scipy uses the finite-n kstwo(round(en)); ours the limiting Kolmogorov law, which
    # differs by at most 0.28/sqrt(en) (documented) and is the larger (conservative) one.
    en = n * m / (n + m)
    assert e.p_value == pytest.approx(stats.kstwobign.sf(math.sqrt(en) * e.value), rel=1e-12)
    assert abs(e.p_value - ref.pvalue) <= 0.3 / math.sqrt(en)
    assert e.p_value >= ref.pvalue - 1e-9


# --- Wasserstein -----------------------------------------------------------------------------


def test_wasserstein_exact_when_each_bin_holds_one_value():
    x = np.array([0.0, 0.0, 1.0, 3.0])
    y = np.array([1.0, 3.0, 3.0, 3.0, 4.0])
    edges = np.array([0.5, 2.0, 3.5])
    rc, rs = histogram(x, edges)
    cc, cs = histogram(y, edges)
    e = wasserstein_binned(rc, rs, cc, cs, ref_std=2.0)
    assert e.value * 2.0 == pytest.approx(stats.wasserstein_distance(x, y), abs=1e-12)
    assert e.value == pytest.approx(stats.wasserstein_distance(x, y) / 2.0, abs=1e-12)


def within_bin_mad(v, edges):
    """Mean |v - mean of its bin| — the cost of moving each value to its bin mean."""
    idx = bin_index(v, edges)
    means = np.bincount(idx, weights=v, minlength=edges.size + 1) / np.maximum(
        np.bincount(idx, minlength=edges.size + 1), 1
    )
    return float(np.abs(v - means[idx]).mean())


def interval_bound(counts, sums, lo, hi):
    """Σ share_j · 2(m_j - a_j)(b_j - m_j)/(b_j - a_j): the largest mean |X - m_j| of any
    distribution on [a_j, b_j] with mean m_j."""
    n = counts.sum()
    m = np.divide(sums, counts, out=np.zeros(counts.shape), where=counts > 0)
    width = hi - lo
    mad = np.divide(2 * (m - lo) * (hi - m), width, out=np.zeros(width.shape), where=width > 0)
    return float((counts / n * np.maximum(mad, 0)).sum())


@FAST
@given(
    seed=seeds,
    n=st.integers(20, 600),
    m=st.integers(20, 600),
    k=st.integers(2, 30),
    shift=st.floats(-1.5, 1.5),
    scale=st.floats(0.3, 3),
    ties=st.booleans(),
)
def test_wasserstein_binned_error_is_bounded(seed, n, m, k, shift, scale, ties):
    x, y = raw_samples(seed, n, m, shift, scale, ties)
    edges, rc, rs, cc, cs = binned(x, y, k)
    exact = stats.wasserstein_distance(x, y)
    w1 = wasserstein_binned(rc, rs, cc, cs, ref_std=1.0).value  # ref_std 1: raw W1
    # Bound 1 (exact transport cost of moving each value to its bin mean).
    bound = within_bin_mad(x, edges) + within_bin_mad(y, edges)
    assert abs(exact - w1) <= bound + 1e-9
    # Bound 2 (documented; needs only the aggregates and the data range).
    lo = np.concatenate([[min(x.min(), y.min())], edges])
    hi = np.concatenate([edges, [max(x.max(), y.max())]])
    coarse = interval_bound(rc, rs, lo, hi) + interval_bound(cc, cs, lo, hi)
    assert bound <= coarse + 1e-9
    assert abs(exact - w1) <= coarse + 1e-9


def test_wasserstein_is_normalised_by_ref_std_and_undefined_for_zero_spread():
    rc, rs, cc, cs = [10, 10], [5.0, 15.0], [10, 10], [15.0, 25.0]
    raw = wasserstein_binned(rc, rs, cc, cs, 1.0)
    assert raw.value == pytest.approx(1.0)  # every bin mean moved up by 1
    half = wasserstein_binned(rc, rs, cc, cs, 2.0)
    assert half.value == pytest.approx(0.5)
    assert half.low == pytest.approx(raw.low / 2) and half.high == pytest.approx(raw.high / 2)
    assert math.isnan(wasserstein_binned(rc, rs, cc, cs, 0.0).value)
    with pytest.raises(ValueError):
        wasserstein_binned(rc, rs, cc, cs, -1.0)
    with pytest.raises(ValueError):
        wasserstein_binned([0, 10], [1.0, 5.0], cc, cs, 1.0)  # sum in an empty bin


# --- chi-square ------------------------------------------------------------------------------


@FAST
@given(seed=seeds, k=st.integers(2, 12), zeros=st.booleans())
def test_chi_square_matches_scipy_contingency(seed, k, zeros):
    rng = np.random.default_rng(seed)
    r = rng.integers(0 if zeros else 1, 80, size=k)
    c = rng.integers(0 if zeros else 1, 80, size=k)
    r[0] += 5
    c[1] += 5  # at least two non-empty categories
    if zeros and k > 2:
        r[-1] = c[-1] = 0  # a category empty in both samples is dropped
    table = np.vstack([r, c])
    kept = table[:, table.sum(axis=0) > 0]
    ref = stats.chi2_contingency(kept, correction=False)
    e = chi_square(r, c)
    assert e.value == pytest.approx(association(kept, method="cramer"), abs=1e-12)
    assert e.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    # Relation to scipy.stats.chisquare (goodness of fit against the reference shares):
    # per category, two-sample term = goodness-of-fit term · r_j / (r_j + c_j).
    keep = r > 0
    nr, nc = r.sum(), c.sum()
    gof_terms = (c * nr - r * nc)[keep] ** 2 / (nr * nc * r[keep])
    gof = stats.chisquare(c[keep], r[keep] * nc / nr, sum_check=False).statistic
    assert gof == pytest.approx(gof_terms.sum(), rel=1e-9)
    two_sample = (gof_terms * r[keep] / (r[keep] + c[keep])).sum()
    two_sample += (c[~keep] * nr).sum() / nc  # categories absent from the reference
    assert ref.statistic == pytest.approx(two_sample, rel=1e-9)


def test_chi_square_hand_case():
    # 2×2: ref (30, 70), cur (50, 50): χ² = 8.3333, V = sqrt(8.3333/200)
    e = chi_square([30, 70], [50, 50])
    assert e.value == pytest.approx(math.sqrt((25 / 3) / 200), abs=1e-12)
    assert e.p_value == pytest.approx(stats.chi2.sf(25 / 3, 1))
    single = chi_square([10, 0], [4, 0])
    assert (single.value, single.low, single.high, single.p_value) == (0.0, 0.0, 0.0, 1.0)


# --- shared behaviour ------------------------------------------------------------------------

ALL = [
    lambda r, c: psi(r, c),
    lambda r, c: js_distance(r, c),
    lambda r, c: ks_binned(r, c),
    lambda r, c: chi_square(r, c),
    lambda r, c: wasserstein_binned(
        r, np.arange(len(r)) * np.asarray(r), c, np.arange(len(c)) * np.asarray(c), 1.0
    ),
]


@pytest.mark.parametrize("stat", ALL)
def test_empty_samples_give_nan(stat):
    for r, c in (([0, 0, 0], [1, 2, 3]), ([1, 2, 3], [0, 0, 0])):
        e = stat(r, c)
        assert math.isnan(e.value) and math.isnan(e.low) and math.isnan(e.high)
        assert e.n == sum(c)


@pytest.mark.parametrize("stat", ALL)
@pytest.mark.parametrize("bad", [([1, 2], [1, 2, 3]), ([1, -2, 3], [1, 2, 3]), ([1, 2.5], [1, 2])])
def test_malformed_counts_raise(stat, bad):
    with pytest.raises(ValueError):
        stat(*bad)


@pytest.mark.parametrize("stat", ALL)
def test_bootstrap_is_deterministic_and_brackets_the_value(stat):
    r = np.array([120, 300, 410, 280, 90])
    c = np.array([30, 60, 90, 120, 40])
    first = stat(r, c)
    drift._cached_draws.cache_clear()
    second = stat(r, c)
    assert first == second
    assert first.low <= first.value <= first.high
    assert first.high > first.low
    assert first.n == c.sum()
    # ten times the data: a narrower interval
    wide, narrow = first, stat(r * 10, c * 10)
    assert narrow.high - narrow.low < wide.high - wide.low


def test_bootstrap_interval_tracks_sampling_spread_of_psi():
    # Under a real shift, the percentile interval should cover the PSI of the true shares
    # in most of 60 resampled windows (the interval is for the estimate, not a test).
    rng = np.random.default_rng(11)
    p = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
    q = np.array([0.05, 0.15, 0.3, 0.3, 0.2])
    truth = float(((q - p) * np.log(q / p)).sum())
    hits = 0
    for _ in range(60):
        e = psi(rng.multinomial(20000, p), rng.multinomial(5000, q))
        hits += e.low <= truth <= e.high
    assert hits >= 48


def test_twenty_features_run_in_milliseconds():
    rng = np.random.default_rng(0)
    feats = []
    for i in range(20):
        k = 20 if i % 2 else 50
        x, y = rng.normal(size=20000), rng.normal(0.1, 1.1, size=3000)
        edges = quantile_edges(x, k)
        feats.append((*histogram(x, edges), *histogram(y, edges), x.std()))

    def run():
        for rc, rs, cc, cs, sd in feats:
            psi(rc, cc), js_distance(rc, cc), ks_binned(rc, cc), chi_square(rc, cc)
            wasserstein_binned(rc, rs, cc, cs, sd)

    best = math.inf
    for _ in range(3):
        drift._cached_draws.cache_clear()
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    # ~35 ms on an idle core with nothing cached (docs/statistics.md). A coarse guard with
    # room for a busy shared CI machine: it catches gross regressions, such as Python loops
    # over the draws in every statistic (about ten times slower), not small ones.
    assert best < 0.5
