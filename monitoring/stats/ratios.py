"""Ratio of two proportions with Katz's log interval (workflow rates against a baseline)."""

from __future__ import annotations

import math

from monitoring.stats.core import Z95, Estimate, as_count, estimate, undefined


def rate_ratio(k1: int, n1: int, k0: int, n0: int, z: float = Z95) -> Estimate:
    """(k1/n1) / (k0/n0) with Katz et al. (1978) log-scale interval,
    exp(log RR ± z·sqrt(1/k1 − 1/n1 + 1/k0 − 1/n0)).

    A zero count gets the usual 0.5 continuity correction in the interval (and in the value when
    the baseline count is zero, so the ratio stays finite); ``n`` is the current sample ``n1``.
    Undefined (NaN) when either sample is empty.
    """
    k1, n1, k0, n0 = (
        as_count(v, name) for v, name in ((k1, "k1"), (n1, "n1"), (k0, "k0"), (n0, "n0"))
    )
    if k1 > n1 or k0 > n0:
        raise ValueError("a count exceeds its sample size")
    if n1 == 0 or n0 == 0:
        return undefined(n1)
    a, b = float(k1), float(k0)
    if a == 0 or b == 0:
        a, b = a + 0.5, b + 0.5
        n1_, n0_ = n1 + 0.5, n0 + 0.5
    else:
        n1_, n0_ = float(n1), float(n0)
    ratio = (a / n1_) / (b / n0_)
    se = math.sqrt(max(1 / a - 1 / n1_ + 1 / b - 1 / n0_, 0.0))
    value = (k1 / n1) / (k0 / n0) if k0 > 0 else ratio
    return estimate(value, ratio * math.exp(-z * se), ratio * math.exp(z * se), n1)
