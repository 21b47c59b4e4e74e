"""Discrimination (AUC) from per-score-bin counts of negatives and positives."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from monitoring.stats.binning import ROW_NEG, ROW_POS, ScoreHistogram
from monitoring.stats.core import (
    Z95,
    Estimate,
    alpha_from_z,
    as_counts,
    estimate,
    same_shape,
    undefined,
)


def auc_from_histograms(neg_counts: object, pos_counts: object, z: float = Z95) -> Estimate:
    """Mann–Whitney AUC from counts per score bin (bins in increasing score order).

    AUC = P(score_pos > score_neg) + ½ P(same bin): pairs in the same bin count ½.
    Against the AUC of the raw scores the difference is at most ½ Σ_j pos_j neg_j /
    (n_pos n_neg), half the chance that a random positive–negative pair shares a bin.

    Interval: DeLong, DeLong & Clarke-Pearson (1988), computed on the bins: each positive's
    placement value is the share of negatives below it (+ ½ in its bin), each negative's the
    share of positives above it (+ ½); var = S10/n_pos + S01/n_neg with the placement
    sample variances; Wald interval clipped to [0, 1]. ``p_value``: z-test of AUC = 0.5
    with the DeLong standard error. Needs >= 2 of each class for an interval; no positives
    or no negatives gives NaN.
    """
    neg = as_counts(neg_counts, "neg_counts")
    pos = as_counts(pos_counts, "pos_counts")
    same_shape(neg, pos, "neg_counts", "pos_counts")
    alpha_from_z(z)
    n0, n1 = int(neg.sum()), int(pos.sum())
    if n0 == 0 or n1 == 0:
        return undefined(n0 + n1)
    neg_below = np.cumsum(neg) - neg
    pos_above = n1 - np.cumsum(pos)
    v10 = (neg_below + 0.5 * neg) / n0  # placement of a positive in bin j
    v01 = (pos_above + 0.5 * pos) / n1  # placement of a negative in bin j
    auc = float((pos * v10).sum() / n1)
    if n0 < 2 or n1 < 2:
        return estimate(auc, math.nan, math.nan, n0 + n1)
    s10 = float((pos * (v10 - auc) ** 2).sum() / (n1 - 1))
    s01 = float((neg * (v01 - auc) ** 2).sum() / (n0 - 1))
    se = math.sqrt(s10 / n1 + s01 / n0)
    low, high = max(0.0, auc - z * se), min(1.0, auc + z * se)
    p = None if se == 0 else float(2 * special.ndtr(-abs(auc - 0.5) / se))
    return estimate(auc, low, high, n0 + n1, p)


def auc_from_score_histogram(h: ScoreHistogram, z: float = Z95) -> Estimate:
    """AUC of the labelled rows of a score histogram (row 0 negatives, row 1 positives)."""
    return auc_from_histograms(h.count[ROW_NEG], h.count[ROW_POS], z)
