"""AUC from per-bin counts against scikit-learn and a brute-force DeLong on raw pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from monitoring.stats.binning import ScoreHistogram, score_bin
from monitoring.stats.discrimination import auc_from_histograms, auc_from_score_histogram

FAST = settings(max_examples=50, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def brute_force_delong(neg_scores, pos_scores):
    """AUC and DeLong variance from the pairwise comparison matrix (ties count ½)."""
    psi = (pos_scores[:, None] > neg_scores[None, :]) + 0.5 * (
        pos_scores[:, None] == neg_scores[None, :]
    )
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    var = v10.var(ddof=1) / len(pos_scores) + v01.var(ddof=1) / len(neg_scores)
    return auc, var


def test_hand_case():
    # negatives in bins (0, 1, 1), positives in bins (1, 2):
    # pairs: pos@1 vs neg@0 → 1, vs neg@1 ×2 → ½ each; pos@2 → 1, 1, 1  ⇒ (1 + 1 + 3)/6
    e = auc_from_histograms([1, 2, 0], [0, 1, 1])
    assert e.value == pytest.approx(5 / 6)
    assert e.n == 5
    auc, var = brute_force_delong(np.array([0, 1, 1]), np.array([1, 2]))
    assert e.value == pytest.approx(auc)
    se = math.sqrt(var)
    assert e.low == pytest.approx(max(0, auc - 1.959963984540054 * se))
    assert e.high == pytest.approx(min(1, auc + 1.959963984540054 * se))


@FAST
@given(seed=seeds, k=st.integers(1, 15), n0=st.integers(2, 60), n1=st.integers(2, 60))
def test_delong_on_bins_matches_brute_force_on_tied_scores(seed, k, n0, n1):
    rng = np.random.default_rng(seed)
    neg_bins = rng.integers(0, k, size=n0)
    pos_bins = np.minimum(rng.integers(0, k, size=n1) + rng.integers(0, 2, size=n1), k - 1)
    e = auc_from_histograms(np.bincount(neg_bins, minlength=k), np.bincount(pos_bins, minlength=k))
    auc, var = brute_force_delong(neg_bins, pos_bins)
    assert e.value == pytest.approx(auc, abs=1e-12)
    assert e.low == pytest.approx(max(0.0, auc - 1.959963984540054 * math.sqrt(var)), abs=1e-9)
    assert e.high == pytest.approx(min(1.0, auc + 1.959963984540054 * math.sqrt(var)), abs=1e-9)


@FAST
@given(
    seed=seeds,
    n=st.integers(10, 800),
    prevalence=st.floats(0.05, 0.95),
    separation=st.floats(0, 3),
    coarse=st.booleans(),
)
def test_binned_auc_is_within_half_the_same_bin_pair_share_of_sklearn(
    seed, n, prevalence, separation, coarse
):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    logit = rng.normal(separation * y - 1, 1)
    p = 1 / (1 + np.exp(-logit))
    if coarse:
        p = np.round(p, 2)  # ties across and within bins
    h = ScoreHistogram.from_arrays(p, y.astype(float))
    e = auc_from_score_histogram(h)
    exact = roc_auc_score(y, p)
    neg, pos = h.count[0], h.count[1]
    bound = 0.5 * float((neg * pos).sum()) / (neg.sum() * pos.sum())
    assert abs(e.value - exact) <= bound + 1e-12
    assert e.n == n
    if min(neg.sum(), pos.sum()) >= 2:  # DeLong needs two of each class
        assert e.low <= e.value <= e.high


def test_exact_when_each_bin_holds_one_score():
    rng = np.random.default_rng(3)
    p = rng.choice(np.arange(100) / 100 + 0.005, size=300)  # one score value per bin
    y = (rng.random(300) < p).astype(int)
    h = ScoreHistogram.from_arrays(p, y)
    assert auc_from_score_histogram(h).value == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert np.array_equal(np.unique(score_bin(p)).size, np.unique(p).size)


def test_p_value_tests_auc_one_half():
    strong = auc_from_histograms([50, 30, 10, 0], [0, 10, 30, 50])
    assert strong.value > 0.8 and strong.p_value < 1e-6
    null = auc_from_histograms([25, 25, 25, 25], [25, 25, 25, 25])
    assert null.value == 0.5 and null.p_value == pytest.approx(1.0)


def test_degenerate_and_malformed():
    for neg, pos in (([0, 0], [3, 1]), ([2, 2], [0, 0]), ([0], [0])):
        e = auc_from_histograms(neg, pos)
        assert math.isnan(e.value) and math.isnan(e.low)
    one_each = auc_from_histograms([1, 0], [0, 1])
    assert one_each.value == 1.0 and math.isnan(one_each.low)  # no DeLong interval with n=1
    assert math.isnan(auc_from_score_histogram(ScoreHistogram()).value)
    with pytest.raises(ValueError):
        auc_from_histograms([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        auc_from_histograms([1, -2], [1, 2])
