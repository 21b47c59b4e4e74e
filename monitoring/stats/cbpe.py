"""Performance expected before labels arrive: confidence-based performance estimation.

Like NannyML's CBPE, these take the model's scores at face value: if the model is
calibrated, a case with score p is positive with probability p, independently of the
others. They use ALL rows of the histogram (labelled or not) and ignore the labels. When
calibration fails (see ``calibration``) these estimates are biased.
"""

from __future__ import annotations

import math

import numpy as np

from monitoring.stats.binning import ScoreHistogram
from monitoring.stats.core import Z95, Estimate, alpha_from_z, estimate, undefined

AUC_DRAWS = 200
AUC_SEED = 20_240_919


def expected_event_rate(h: ScoreHistogram, z: float = Z95) -> Estimate:
    """Expected event rate Σp/n over all cases.

    Interval: the realised rate's spread under independent Bernoulli(p_i) outcomes,
    var = Σ p(1 - p) / n² = (Σp - Σp²) / n², normal, clipped to [0, 1].
    """
    alpha_from_z(z)
    n = h.n
    if n == 0:
        return undefined(0)
    s1, s2 = float(h.sum_p.sum()), float(h.sum_p2.sum())
    value = s1 / n
    half = z * math.sqrt(max(s1 - s2, 0.0)) / n
    return estimate(value, max(0.0, value - half), min(1.0, value + half), n)


def _auc_rows(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Binned Mann–Whitney AUC for rows of (positive, negative) counts per bin."""
    n1, n0 = pos.sum(axis=-1), neg.sum(axis=-1)
    below = np.cumsum(neg, axis=-1) - neg
    num = (pos * (below + 0.5 * neg)).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n1 > 0) & (n0 > 0), num / (n1 * n0), np.nan)


def expected_auc(h: ScoreHistogram) -> Estimate:
    """Expected Mann–Whitney AUC when case i is positive with probability p_i.

    Ratio of expectations over ordered pairs of distinct cases (i positive, j negative):
        E[Σ_{i≠j} y_i (1 - y_j) ψ_ij] / E[Σ_{i≠j} y_i (1 - y_j)]
        = Σ_{i≠j} p_i (1 - p_j) ψ_ij / (P·Q - Σ p_i (1 - p_i)),
    ψ_ij = 1 if i's score bin is above j's, ½ in the same bin, P = Σp, Q = Σ(1 - p).
    Exact from per-bin n, Σp, Σp²: the same-bin part is ½ (P_b Q_b - P_b + Σ_b p²).

    Interval: deterministic parametric bootstrap of the AUC that will be observed — per bin,
    positives ~ Binomial(n_b, mean p_b), fixed seed, AUC_DRAWS draws, 2.5/97.5% percentiles
    (widened to contain the estimate). NaN when Σp or Σ(1 - p) is 0.
    """
    n_b = h.count.sum(axis=0).astype(float)
    p_b = h.sum_p.sum(axis=0)
    p2_b = h.sum_p2.sum(axis=0)
    q_b = n_b - p_b
    n = int(n_b.sum())
    big_p, big_q = float(p_b.sum()), float(q_b.sum())
    self_pairs = big_p - float(p2_b.sum())  # Σ p_i (1 - p_i)
    den = big_p * big_q - self_pairs
    if n == 0 or den <= 1e-12:
        return undefined(n)
    q_below = np.cumsum(q_b) - q_b
    num = float((p_b * q_below).sum() + 0.5 * (p_b * q_b - p_b + p2_b).sum())
    value = num / den
    mean_p = np.divide(p_b, n_b, out=np.zeros(n_b.shape), where=n_b > 0)
    rng = np.random.default_rng(AUC_SEED)
    counts = h.count.sum(axis=0)
    pos = rng.binomial(np.broadcast_to(counts, (AUC_DRAWS, counts.size)), np.clip(mean_p, 0, 1))
    draws = _auc_rows(pos, counts - pos)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return estimate(value, math.nan, math.nan, n)
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return estimate(value, min(lo, value), max(hi, value), n)
