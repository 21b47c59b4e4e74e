"""Sequential charts: risk-adjusted Bernoulli CUSUM (per day, from aggregates), tabular
CUSUM and EWMA.

Conventions: a path is a float array with one entry per step (day); ``first_alarm`` is the
0-based index of the first step whose statistic is strictly beyond its limit, or None.
Paths are not reset after an alarm.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from monitoring.stats.binning import ROW_NEG, ROW_POS, ScoreHistogram
from monitoring.stats.core import as_counts, as_finite, same_shape


class CusumResult(NamedTuple):
    upper: np.ndarray
    lower: np.ndarray
    first_alarm: int | None


class EwmaResult(NamedTuple):
    path: np.ndarray
    lcl: np.ndarray
    ucl: np.ndarray
    first_alarm: int | None


def _series(x: object, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return as_finite(a, name)


def _positive(v: float, name: str) -> float:
    v = float(v)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return v


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _lindley(w: np.ndarray) -> np.ndarray:
    """S_t = max(0, S_{t-1} + w_t), S_0 = 0, as S_t = C_t - min(0, C_1..C_t), C = cumsum(w)."""
    c = np.cumsum(w)
    return c - np.minimum(np.minimum.accumulate(c), 0.0)


def cusum_path(weights: object, h: float) -> tuple[np.ndarray, int | None]:
    """Upper CUSUM of per-step weights: S_t = max(0, S_{t-1} + W_t); alarm when S_t > h."""
    w = _series(weights, "weights")
    h = _positive(h, "h")
    path = _lindley(w)
    return path, _first(path > h)


def _check_odds_ratio(odds_ratio: float) -> float:
    r = _positive(odds_ratio, "odds_ratio")
    if r == 1.0:
        raise ValueError(
            "odds_ratio must differ from 1 (R > 1 detects an increase, R < 1 a decrease)"
        )
    return r


def patient_terms(p: object, odds_ratio: float = 2.0) -> np.ndarray:
    """Per-case risk terms log(1 - p + R·p) for a per-patient sequence."""
    r = _check_odds_ratio(odds_ratio)
    a = _series(p, "p")
    if np.any((a < 0) | (a > 1)):
        raise ValueError("p must be probabilities in [0, 1]")
    return np.log1p((r - 1.0) * a)


def daily_cusum_terms(h: ScoreHistogram, odds_ratio: float = 2.0) -> tuple[int, float]:
    """One day's (O, A) for ``risk_adjusted_cusum`` from that day's score histogram.

    O = labelled positives; A = Σ_cells n_c·log(1 - p̄_c + R·p̄_c) over the (score bin, label)
    cells of labelled cases, p̄_c the cell's mean score. The day's weight is O·ln R - A.
    Exact when scores are constant within a cell; otherwise the error per case is at most
    ½ (R - 1)² w² / min(1, R)² for bin width w (5·10⁻⁵ for R = 2, w = 0.01).
    """
    r = _check_odds_ratio(odds_ratio)
    c = h.count[[ROW_NEG, ROW_POS]].astype(float)
    mean_p = np.divide(h.sum_p[[ROW_NEG, ROW_POS]], c, out=np.zeros(c.shape), where=c > 0)
    a = float((c * np.log1p((r - 1.0) * mean_p)).sum())
    return int(h.count[ROW_POS].sum()), a


def risk_adjusted_cusum(
    observed_pos: object, expected_terms: object, odds_ratio: float = 2.0, h: float = 4.5
) -> tuple[np.ndarray, int | None]:
    """Steiner, Cook, Farewell & Treasure (2000) risk-adjusted Bernoulli CUSUM.

    Log-likelihood-ratio weight of step t for odds multiplied by R = ``odds_ratio``:
    W_t = Σ_i [y_i ln R - ln(1 - p_i + R p_i)] = O_t·ln R - A_t, where ``observed_pos[t]``
    = O_t and ``expected_terms[t]`` = A_t (from ``daily_cusum_terms`` per day, or
    ``patient_terms`` per patient, computed with the SAME odds ratio). S_t = max(0,
    S_{t-1} + W_t); alarm when S_t > h. R > 1 detects an increase in the odds of the
    outcome, R < 1 (e.g. 0.5) a decrease — the lower chart, plotted here as a non-negative
    path (Steiner et al. plot it negated). Defaults follow the paper's example
    (R = 2, h = 4.5).
    """
    r = _check_odds_ratio(odds_ratio)
    o = as_counts(np.asarray(observed_pos, dtype=float), "observed_pos")
    a = _series(expected_terms, "expected_terms")
    same_shape(o, a, "observed_pos", "expected_terms")
    return cusum_path(o * math.log(r) - a, h)


def cusum(x: object, target: float, sd: float, k: float = 0.5, h: float = 5.0) -> CusumResult:
    """Two-sided tabular CUSUM on standardised values z_t = (x_t - target)/sd.

    C⁺_t = max(0, C⁺_{t-1} + z_t - k), C⁻_t = max(0, C⁻_{t-1} - z_t - k), both from 0, in
    units of sd; alarm when either exceeds h (Montgomery, Introduction to Statistical
    Quality Control, §9.1, with K = k·sd and H = h·sd).
    """
    z = (_series(x, "x") - float(target)) / _positive(sd, "sd")
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k!r}")
    h = _positive(h, "h")
    upper, lower = _lindley(z - k), _lindley(-z - k)
    return CusumResult(upper, lower, _first((upper > h) | (lower > h)))


def ewma(x: object, target: float, sd: float, lam: float = 0.2, L: float = 3.0) -> EwmaResult:
    """EWMA chart: z_t = λ x_t + (1 - λ) z_{t-1}, z_0 = target, with the exact
    time-varying limits target ± L·sd·sqrt(λ/(2 - λ)·(1 - (1 - λ)^(2t))), t = 1, 2, …;
    alarm when z_t is strictly outside them (Montgomery §9.2)."""
    xs = _series(x, "x")
    sd = _positive(sd, "sd")
    if not 0 < lam <= 1:
        raise ValueError(f"lam must be in (0, 1], got {lam!r}")
    L = _positive(L, "L")
    t = np.arange(1, xs.size + 1)
    decay = (1.0 - lam) ** t
    # z_t = (1-λ)^t target + λ Σ_{s<=t} (1-λ)^(t-s) x_s, evaluated by a stable recursion.
    path = np.empty(xs.size)
    zt = float(target)
    for i, v in enumerate(xs):
        zt = lam * v + (1.0 - lam) * zt
        path[i] = zt
    half = L * sd * np.sqrt(lam / (2.0 - lam) * (1.0 - decay**2))
    lcl, ucl = float(target) - half, float(target) + half
    return EwmaResult(path, lcl, ucl, _first((path > ucl) | (path < lcl)))
