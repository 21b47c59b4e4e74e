"""Estimate, bin edges, histograms and the score histogram."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.stats.binning import (
    SCORE_BINS,
    ScoreHistogram,
    bin_index,
    clipped_logit,
    histogram,
    quantile_edges,
    score_bin,
)
from monitoring.stats.core import Z95, Estimate, as_counts

FAST = settings(max_examples=50, deadline=None)


def test_z95_is_the_normal_quantile():
    from scipy import stats

    assert Z95 == pytest.approx(stats.norm.ppf(0.975), abs=1e-15)


def test_estimate_as_dict_is_json_safe():
    e = Estimate(float("nan"), float("nan"), float("inf"), 0, None)
    d = e.as_dict()
    assert d == {"value": None, "low": None, "high": None, "n": 0, "p_value": None}
    assert json.loads(json.dumps(d)) == d
    assert Estimate(0.25, 0.1, 0.4, 12, 0.03).as_dict() == {
        "value": 0.25,
        "low": 0.1,
        "high": 0.4,
        "n": 12,
        "p_value": 0.03,
    }


@pytest.mark.parametrize("bad", [[1, -1], [1.5, 2], [np.nan, 1], [[1, 2]]])
def test_as_counts_rejects_malformed(bad):
    with pytest.raises(ValueError):
        as_counts(bad, "counts")


def test_quantile_edges_hand_case():
    edges = quantile_edges(np.arange(1.0, 11.0), n_bins=2)  # median of 1..10
    assert edges.tolist() == [5.5]
    edges = quantile_edges([1.0, 2.0, 3.0, 4.0, np.nan, 5.0], n_bins=4)
    assert edges.tolist() == [2.0, 3.0, 4.0]


def test_quantile_edges_constant_and_empty_columns():
    assert quantile_edges(np.full(50, 7.0)).tolist() == [7.0]
    assert quantile_edges([np.nan, np.nan]).size == 0
    counts, _ = histogram(np.full(50, 7.0), quantile_edges(np.full(50, 7.0)))
    assert counts.tolist() == [0, 50]
    with pytest.raises(ValueError):
        quantile_edges([1.0, 2.0], n_bins=0)


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    n_bins=st.integers(1, 40),
    ties=st.booleans(),
)
def test_quantile_edges_are_strictly_increasing_and_balanced(seed, n, n_bins, ties):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=n)
    if ties:
        v = np.round(v, 1)
    edges = quantile_edges(v, n_bins)
    assert np.all(np.isfinite(edges))
    assert np.all(np.diff(edges) > 0)
    assert edges.size <= n_bins - 1
    if not ties and n >= 10 * n_bins:
        counts, _ = histogram(v, edges)
        # Each bin holds about n / n_bins values (quantile interpolation moves at most one).
        assert np.all(np.abs(counts - n / n_bins) <= 2)


def test_histogram_hand_case_and_convention():
    edges = np.array([0.0, 1.0, 2.0])
    v = [-5.0, 0.0, 0.5, 1.0, 2.0, 9.0, np.nan, np.inf]
    counts, sums = histogram(v, edges)
    # x < 0 | 0 <= x < 1 | 1 <= x < 2 | x >= 2 ; NaN and inf excluded
    assert counts.tolist() == [1, 2, 1, 2]
    assert counts.dtype == np.int64
    assert sums.tolist() == [-5.0, 0.5, 1.0, 11.0]
    assert bin_index([-5.0, 0.0, 2.0], edges).tolist() == [0, 1, 3]


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), k=st.integers(1, 30))
def test_histogram_matches_numpy_histogram(seed, n, k):
    rng = np.random.default_rng(seed)
    v = np.round(rng.normal(size=n), 2)  # rounded: values land exactly on edges too
    edges = np.unique(np.round(rng.normal(size=k), 2))
    counts, sums = histogram(v, edges)
    outer = np.concatenate([[-np.inf], edges, [np.inf]])
    ref_counts, _ = np.histogram(v, bins=outer)
    ref_sums, _ = np.histogram(v, bins=outer, weights=v)
    assert counts.tolist() == ref_counts.tolist()
    np.testing.assert_allclose(sums, ref_sums, atol=1e-9)


@pytest.mark.parametrize("bad", [[1.0, 1.0], [2.0, 1.0], [np.nan], [[0.0, 1.0]]])
def test_histogram_rejects_bad_edges(bad):
    with pytest.raises(ValueError):
        histogram([0.5], bad)


def test_score_bin_edges():
    assert score_bin([0.0, 0.005, 0.01, 0.5, 0.999, 1.0]).tolist() == [0, 0, 1, 50, 99, 99]
    with pytest.raises(ValueError):
        score_bin([1.2])
    with pytest.raises(ValueError):
        score_bin([np.nan])


@FAST
@given(p=st.lists(st.floats(0, 1), min_size=1, max_size=50))
def test_score_bin_is_equal_width(p):
    b = score_bin(p)
    arr = np.asarray(p)
    assert np.all((b >= 0) & (b < SCORE_BINS))
    # the bin's interval contains p (p == 1 in the closed last bin)
    assert np.all(arr >= b / SCORE_BINS - 1e-12)
    assert np.all((arr < (b + 1) / SCORE_BINS + 1e-12) | (arr == 1.0))


def test_score_histogram_from_arrays_hand_case():
    h = ScoreHistogram.from_arrays([0.105, 0.107, 0.9, 0.5], [0, 1, np.nan, 0.7])
    assert h.count[0, 10] == 1 and h.count[1, 10] == 1
    assert h.count[2, 90] == 1 and h.count[1, 50] == 1
    assert h.n == 4 and h.n_labelled == 3
    assert h.sum_p[1, 10] == pytest.approx(0.107)
    assert h.sum_p2[2, 90] == pytest.approx(0.81)
    assert h.sum_logit[1, 50] == pytest.approx(0.0, abs=1e-12)
    assert h.sum_logit[0, 10] == pytest.approx(math.log(0.105 / 0.895))
    # clipping at 1e-6 keeps p = 0 and p = 1 finite
    assert clipped_logit([0.0, 1.0]).tolist() == pytest.approx([-13.8155095, 13.8155095])


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    n1=st.integers(0, 60),
    n2=st.integers(0, 60),
)
def test_score_histograms_add_like_concatenated_data_and_round_trip(seed, n1, n2):
    rng = np.random.default_rng(seed)
    p = rng.random(n1 + n2)
    y = rng.choice([0.0, 1.0, np.nan], size=n1 + n2)
    a = ScoreHistogram.from_arrays(p[:n1], y[:n1])
    b = ScoreHistogram.from_arrays(p[n1:], y[n1:])
    whole = ScoreHistogram.from_arrays(p, y)
    merged = a + b
    assert np.array_equal(merged.count, whole.count)
    for f in ("sum_p", "sum_p2", "sum_logit"):
        np.testing.assert_allclose(getattr(merged, f), getattr(whole, f), atol=1e-9)
    again = ScoreHistogram.from_dict(json.loads(json.dumps(merged.to_dict())))
    assert again == merged


def test_score_histogram_rejects_malformed():
    with pytest.raises(ValueError):
        ScoreHistogram.from_arrays([0.1, 0.2], [1.0])
    with pytest.raises(ValueError):
        ScoreHistogram.from_arrays([1.5], [1.0])
    with pytest.raises(ValueError):
        ScoreHistogram(count=np.zeros((3, 10)))
    with pytest.raises(ValueError):
        ScoreHistogram.from_dict({"count": np.zeros((3, SCORE_BINS)).tolist()})
    bad = ScoreHistogram().to_dict()
    bad["count"][0][0] = -1
    with pytest.raises(ValueError):
        ScoreHistogram.from_dict(bad)
