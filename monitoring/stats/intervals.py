"""Intervals for a proportion, a difference of proportions, and an observed/expected ratio."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from monitoring.stats.core import (
    Z95,
    Estimate,
    alpha_from_z,
    as_count,
    estimate,
    undefined,
)


def _wilson_bounds(k: float, n: float, z: float) -> tuple[float, float]:
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(max(p * (1 - p) / n + z2 / (4 * n * n), 0.0))
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def wilson(k: int, n: int, z: float = Z95) -> Estimate:
    """Proportion k/n with the Wilson (1927) score interval.

    Same as ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
    n == 0 gives NaN.
    """
    k, n = as_count(k, "k"), as_count(n, "n")
    alpha_from_z(z)
    if k > n:
        raise ValueError(f"k ({k}) exceeds n ({n})")
    if n == 0:
        return undefined(0)
    low, high = _wilson_bounds(k, n, z)
    return estimate(k / n, low, high, n)


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> Estimate:
    """p1 - p2 with Newcombe's (1998) hybrid score interval, method 10.

    With Wilson limits (l1, u1) and (l2, u2): low = d - sqrt((p1-l1)² + (u2-p2)²),
    high = d + sqrt((u1-p1)² + (p2-l2)²). ``n`` of the result is n1 (the current or
    subgroup sample). Either n == 0 gives NaN.
    """
    k1, n1, k2, n2 = (
        as_count(v, name) for v, name in ((k1, "k1"), (n1, "n1"), (k2, "k2"), (n2, "n2"))
    )
    alpha_from_z(z)
    if k1 > n1 or k2 > n2:
        raise ValueError(f"a count exceeds its total: {k1}/{n1}, {k2}/{n2}")
    if n1 == 0 or n2 == 0:
        return undefined(n1)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = _wilson_bounds(k1, n1, z)
    l2, u2 = _wilson_bounds(k2, n2, z)
    d = p1 - p2
    low = d - math.hypot(p1 - l1, u2 - p2)
    high = d + math.hypot(u1 - p1, p2 - l2)
    return estimate(d, max(low, -1.0), min(high, 1.0), n1)


def garwood(observed: int, z: float = Z95) -> tuple[float, float]:
    """Exact (Garwood 1936) interval for a Poisson mean given one observed count."""
    o = as_count(observed, "observed")
    alpha = alpha_from_z(z)
    low = 0.0 if o == 0 else float(stats.chi2.ppf(alpha / 2, 2 * o) / 2)
    high = float(stats.chi2.ppf(1 - alpha / 2, 2 * o + 2) / 2)
    return low, high


def poisson_ratio(observed: int, expected: float, n: int | None = None, z: float = Z95) -> Estimate:
    """O/E with the exact Poisson (Garwood) interval on O, divided by E.

    ``p_value`` is the exact two-sided test of O/E = 1 (O ~ Poisson(E)):
    2 · min(P(X <= O), P(X >= O)), capped at 1. ``n`` (the cases behind O and E) defaults
    to O. E == 0 gives NaN.
    """
    o = as_count(observed, "observed")
    e = float(expected)
    if not math.isfinite(e) or e < 0:
        raise ValueError(f"expected must be a finite non-negative number, got {expected!r}")
    size = o if n is None else as_count(n, "n")
    if e == 0:
        return undefined(size)
    low, high = garwood(o, z)
    p = 2.0 * min(stats.poisson.cdf(o, e), stats.poisson.sf(o - 1, e))
    return estimate(o / e, low / e, high / e, size, float(np.clip(p, 0.0, 1.0)))
