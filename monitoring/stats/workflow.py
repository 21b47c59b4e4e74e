"""Workflow metrics: deferral / override / outcome rates, subgroup gaps, time-to-action."""

from __future__ import annotations

import math

import numpy as np

from monitoring.stats.binning import check_edges
from monitoring.stats.core import (
    Z95,
    Estimate,
    alpha_from_z,
    as_count,
    as_counts,
    estimate,
    undefined,
)
from monitoring.stats.intervals import newcombe_difference
from monitoring.stats.quality import rate

__all__ = [
    "TIME_EDGES_SECONDS",
    "quantile_from_histogram",
    "rate",
    "subgroup_difference",
    "time_quantile",
]

TIME_EDGES_SECONDS = np.geomspace(60.0, 30 * 86_400.0, 49)
"""Interior edges for time-to-action histograms: 49 log-spaced edges from 1 minute to
30 days (each bin about 25% wider than the previous); bin 0 is < 1 minute, the last bin
is >= 30 days."""


def subgroup_difference(k_sub: int, n_sub: int, k_all: int, n_all: int, z: float = Z95) -> Estimate:
    """Subgroup rate minus the rate in the REST of the population.

    value = k_sub/n_sub - (k_all - k_sub)/(n_all - n_sub), Newcombe method-10 interval;
    ``n`` is n_sub. The subgroup must be part of the population (counts nested); an empty
    subgroup or an empty rest gives NaN.
    """
    k_sub, n_sub = as_count(k_sub, "k_sub"), as_count(n_sub, "n_sub")
    k_all, n_all = as_count(k_all, "k_all"), as_count(n_all, "n_all")
    if n_sub > n_all or k_sub > k_all or (k_all - k_sub) > (n_all - n_sub):
        raise ValueError(f"subgroup {k_sub}/{n_sub} is not part of the population {k_all}/{n_all}")
    return newcombe_difference(k_sub, n_sub, k_all - k_sub, n_all - n_sub, z)


def _bin_bounds(
    edges: np.ndarray, lower: float | None, upper: float | None
) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    if lower is not None and not lower <= edges[0]:
        raise ValueError(f"lower ({lower}) must not exceed the first edge ({edges[0]})")
    if upper is not None and not upper >= edges[-1]:
        raise ValueError(f"upper ({upper}) must not be below the last edge ({edges[-1]})")
    lo = np.concatenate([[edges[0] if lower is None else lower], edges])
    hi = np.concatenate([edges, [edges[-1] if upper is None else upper]])
    return lo, hi, lower is None, upper is None


def _value_at_ranks(
    counts: np.ndarray, lo: np.ndarray, hi: np.ndarray, ranks: np.ndarray
) -> np.ndarray:
    """Map ranks r in [0, n] to values through the piecewise-linear histogram CDF."""
    cum = np.cumsum(counts)
    n = cum[-1]
    j = np.searchsorted(cum, ranks, side="right")  # first bin whose cumulative count > r
    last = int(np.flatnonzero(counts)[-1])
    top = j >= counts.size
    j = np.where(top, last, j)
    prev = cum[j] - counts[j]
    frac = np.where(top, 1.0, (ranks - prev) / np.maximum(counts[j], 1))
    frac = np.where(ranks >= n, 1.0, frac)
    return lo[j] + frac * (hi[j] - lo[j])


def quantile_from_histogram(
    counts: object,
    edges: object,
    q: float,
    z: float = Z95,
    lower: float | None = None,
    upper: float | None = None,
) -> Estimate:
    """The q-quantile of binned data, interpolating linearly within its bin.

    Bins follow the package convention (``len(edges) + 1`` bins, ``side="right"``). The rank
    r = n·q falls in the first bin j whose cumulative count exceeds r; value =
    lo_j + (r - before_j)/count_j · (hi_j - lo_j). The outer bins are bounded by ``lower`` /
    ``upper`` when given; otherwise a quantile falling in an open outer bin is reported at
    that bin's finite edge (a bound, not an estimate).

    Interval: binomial order-statistic ranks n·q ± z·sqrt(n·q·(1 - q)), clipped to [0, n],
    mapped back through the same interpolation. n == 0 gives NaN.
    """
    e = check_edges(edges)
    c = as_counts(counts, "counts")
    if c.size != e.size + 1:
        raise ValueError(f"counts must have len(edges) + 1 = {e.size + 1} bins, got {c.size}")
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    alpha_from_z(z)
    n = int(c.sum())
    if n == 0:
        return undefined(0)
    lo, hi, _, _ = _bin_bounds(e, lower, upper)
    half = z * math.sqrt(n * q * (1 - q))
    ranks = np.clip(np.array([n * q, n * q - half, n * q + half]), 0, n)
    value, low, high = _value_at_ranks(c, lo, hi, ranks)
    return estimate(value, low, high, n)


def time_quantile(counts: object, q: float, z: float = Z95) -> Estimate:
    """Quantile (seconds) of a time-to-action histogram on TIME_EDGES_SECONDS, with the first
    bin bounded below by 0."""
    return quantile_from_histogram(counts, TIME_EDGES_SECONDS, q, z, lower=0.0)
