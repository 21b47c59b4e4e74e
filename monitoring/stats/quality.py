"""Data-quality rates: missing, out-of-range and unknown-category shares."""

from __future__ import annotations

from monitoring.stats.core import Z95, Estimate
from monitoring.stats.intervals import newcombe_difference, wilson


def rate(k: int, n: int, z: float = Z95) -> Estimate:
    """k/n with the Wilson score interval (n == 0 gives NaN)."""
    return wilson(k, n, z)


def rate_vs_reference(k_cur: int, n_cur: int, k_ref: int, n_ref: int, z: float = Z95) -> Estimate:
    """Current rate minus reference rate, k_cur/n_cur - k_ref/n_ref.

    Interval: Newcombe's hybrid score method 10. ``n`` is n_cur. Either total 0 gives NaN.
    """
    return newcombe_difference(k_cur, n_cur, k_ref, n_ref, z)
