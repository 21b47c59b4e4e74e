"""Calibration from the labelled rows (0 and 1) of a :class:`ScoreHistogram`.

Logistic fits work on (score bin, label) cells: every case in a cell is given the cell's
mean clipped logit (sum_logit / count, natural log). The cell's outcome is known exactly,
so Σ y·logit(p) is exact; only the fitted probabilities σ(a + b·logit p) are evaluated at
the cell mean instead of per case. Cases with no label yet (row 2) are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import special

from monitoring.stats.binning import ROW_NEG, ROW_POS, SCORE_BINS, ScoreHistogram
from monitoring.stats.core import Z95, Estimate, alpha_from_z, estimate, undefined
from monitoring.stats.intervals import poisson_ratio

ECE_DRAWS = 200
ECE_SEED = 20_240_918


def _cells(h: ScoreHistogram) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Non-empty labelled cells: count, label, mean logit, mean p."""
    n = h.count[[ROW_NEG, ROW_POS]].astype(float).ravel()
    y = np.repeat([0.0, 1.0], SCORE_BINS)
    keep = n > 0
    n, y = n[keep], y[keep]
    logit = h.sum_logit[[ROW_NEG, ROW_POS]].ravel()[keep] / n
    p = h.sum_p[[ROW_NEG, ROW_POS]].ravel()[keep] / n
    return n, y, logit, p


def _loglik(eta: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    # y·log σ(η) + (1 - y)·log(1 - σ(η)) = y·η - log(1 + e^η)
    return float((w * (y * eta - np.logaddexp(0.0, eta))).sum())


def fit_logistic(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, offset: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Weighted logistic regression by Newton–Raphson with step halving.

    Returns (coefficients, covariance = inverse observed information), or None when the
    maximum-likelihood estimate does not exist or the design is singular.
    """
    off = np.zeros(y.shape) if offset is None else offset
    beta = np.zeros(x.shape[1])
    ll = _loglik(x @ beta + off, y, w)
    for _ in range(100):
        mu = special.expit(x @ beta + off)
        grad = x.T @ (w * (y - mu))
        info = (x * (w * mu * (1 - mu))[:, None]).T @ x
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            return None
        t = 1.0
        while True:
            cand = beta + t * step
            ll_new = _loglik(x @ cand + off, y, w)
            if ll_new >= ll - 1e-12 * abs(ll) or t < 1e-8:
                break
            t /= 2
        beta, ll = cand, ll_new
        if np.max(np.abs(t * step)) < 1e-10:
            break
    else:
        return None
    mu = special.expit(x @ beta + off)
    info = (x * (w * mu * (1 - mu))[:, None]).T @ x
    if not np.all(np.isfinite(beta)) or np.linalg.cond(info) > 1e12:
        return None
    return beta, np.linalg.inv(info)


def observed_expected(h: ScoreHistogram, z: float = Z95) -> Estimate:
    """O/E: observed positives over Σ p of the labelled cases; exact Poisson (Garwood)
    interval on O divided by E (see ``poisson_ratio``)."""
    o = int(h.count[ROW_POS].sum())
    e = float(h.sum_p[[ROW_NEG, ROW_POS]].sum())
    return poisson_ratio(o, e, n=h.n_labelled, z=z)


def calibration_in_the_large(h: ScoreHistogram, z: float = Z95) -> Estimate:
    """Intercept a of logit P(y = 1) = a + logit(p) (logit(p) as an offset, slope fixed at 1).

    Newton on the cell data, Wald interval a ± z/sqrt(I) from the observed information
    I = Σ n σ(1 - σ). ``p_value`` tests a = 0. 0 > a means the model over-predicts.
    Needs both outcomes among the labelled cases, else NaN.
    """
    alpha_from_z(z)
    n, y, logit, _ = _cells(h)
    total = int(n.sum())
    if total == 0 or y.min() == y.max():
        return undefined(total)
    fit = fit_logistic(np.ones((n.size, 1)), y, n, offset=logit)
    if fit is None:
        return undefined(total)
    (a,), cov = fit
    se = math.sqrt(cov[0, 0])
    p = float(2 * special.ndtr(-abs(a) / se))
    return estimate(a, a - z * se, a + z * se, total, p)


def calibration_slope(h: ScoreHistogram, z: float = Z95) -> Estimate:
    """Slope b of the logistic recalibration logit P(y = 1) = a + b·logit(p).

    Newton on the cell data, Wald interval from the inverse observed information.
    ``p_value`` tests b = 1. NaN when the MLE does not exist: one outcome only, all
    labelled scores in one cell, or the two outcomes separated by score.
    """
    alpha_from_z(z)
    n, y, logit, _ = _cells(h)
    total = int(n.sum())
    if total == 0 or y.min() == y.max():
        return undefined(total)
    # A finite slope needs overlap: some positive scores lower than some negative.
    if not logit[y == 1].min() < logit[y == 0].max():
        return undefined(total)
    fit = fit_logistic(np.column_stack([np.ones(n.size), logit]), y, n)
    if fit is None:
        return undefined(total)
    beta, cov = fit
    b, se = float(beta[1]), math.sqrt(cov[1, 1])
    p = float(2 * special.ndtr(-abs(b - 1) / se))
    return estimate(b, b - z * se, b + z * se, total, p)


def _grouper(n_bins: int) -> Callable[[np.ndarray], np.ndarray]:
    """Sum over the last axis in ``n_bins`` runs of consecutive score bins."""
    if int(n_bins) != n_bins or n_bins < 1 or SCORE_BINS % n_bins:
        raise ValueError(f"n_bins must divide {SCORE_BINS}, got {n_bins!r}")
    size = SCORE_BINS // int(n_bins)

    def group(a: np.ndarray) -> np.ndarray:
        return a.reshape(*a.shape[:-1], int(n_bins), size).sum(axis=-1)

    return group


def ece(h: ScoreHistogram, n_bins: int = 10) -> Estimate:
    """Expected calibration error over ``n_bins`` equal-width score groups (labelled cases).

    ECE = Σ_g (n_g/n)·|ȳ_g - p̄_g| = Σ_g |O_g - E_g| / n, with O_g the positives and E_g the
    sum of scores in group g (group g holds g/n_bins <= p < (g+1)/n_bins, p = 1 in the last).
    Interval: deterministic parametric bootstrap (fixed seed, ECE_DRAWS multinomial redraws
    of the (score bin, label) cell counts, each cell keeping its mean score), 2.5/97.5%
    percentiles, widened to contain the estimate.
    """
    group = _grouper(n_bins)
    counts = h.count[[ROW_NEG, ROW_POS]]  # (2, SCORE_BINS)
    n = int(counts.sum())
    if n == 0:
        return undefined(0)
    sums = h.sum_p[[ROW_NEG, ROW_POS]]
    mean_p = np.divide(sums, counts, out=np.zeros(sums.shape), where=counts > 0)

    def ece_rows(c: np.ndarray) -> np.ndarray:  # c: (..., 2, SCORE_BINS)
        observed = group(c[..., 1, :])
        expected = group((c * mean_p).sum(axis=-2))
        return np.abs(observed - expected).sum(axis=-1) / n

    # The point estimate uses the exact sums (not count × mean) so it matches the raw data.
    value = float(np.abs(group(counts[1]) - group(sums.sum(axis=0))).sum() / n)
    rng = np.random.default_rng(ECE_SEED)
    draws = rng.multinomial(n, (counts / n).ravel(), size=ECE_DRAWS).reshape(-1, 2, SCORE_BINS)
    lo, hi = np.quantile(ece_rows(draws), [0.025, 0.975])
    return estimate(value, min(lo, value), max(hi, value), n)


def brier(h: ScoreHistogram, z: float = Z95) -> Estimate:
    """Brier score Σ (p - y)² / n over labelled cases, exact from the sums:
    (Σ_{y=0} p² + Σ_{y=1} (1 - 2p + p²)) / n.

    Interval: normal, B ± z·sd/sqrt(n), sd² = mean((p - y)⁴) - B². mean((p - y)⁴) is taken
    per cell to second order in the within-cell spread: (m - y)⁴ + 6 (m - y)² s², with m, s²
    the cell's mean and variance of p (the neglected terms are at most w³ + w⁴/4 ≈ 10⁻⁶ per
    case for bins of width w = 0.01).
    Clipped to [0, 1].
    """
    alpha_from_z(z)
    c = h.count[[ROW_NEG, ROW_POS]].astype(float)
    n = int(c.sum())
    if n == 0:
        return undefined(0)
    s1 = h.sum_p[[ROW_NEG, ROW_POS]]
    s2 = h.sum_p2[[ROW_NEG, ROW_POS]]
    y = np.array([[0.0], [1.0]])
    total = s2[0].sum() + (c[1].sum() - 2 * s1[1].sum() + s2[1].sum())
    b = float(total / n)
    m = np.divide(s1, c, out=np.zeros(c.shape), where=c > 0)
    var_within = np.maximum(np.divide(s2, c, out=np.zeros(c.shape), where=c > 0) - m * m, 0.0)
    d = m - y
    fourth = float((c * (d**4 + 6 * d * d * var_within)).sum() / n)
    sd = math.sqrt(max(fourth - b * b, 0.0))
    half = z * sd / math.sqrt(n)
    return estimate(b, max(0.0, b - half), min(1.0, b + half), n)
