"""The result type every statistic returns, plus input checks shared by the package.

Every function in ``monitoring.stats`` takes aggregates (counts, per-bin sums, small arrays)
and returns an :class:`Estimate`. Empty or degenerate input gives NaN (never an exception);
malformed input (negative counts, mismatched shapes, probabilities outside [0, 1]) raises
``ValueError`` with a message naming the argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

Z95 = 1.959963984540054
"""Two-sided 95% standard-normal quantile, ``scipy.stats.norm.ppf(0.975)``."""

NAN = float("nan")


def _json_float(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval, the sample size behind it, and an optional p-value.

    ``low``/``high`` bound a two-sided interval (95% unless a different ``z`` was passed).
    ``n`` is the number of cases the estimate rests on (for two-sample statistics: the
    current sample). NaN value/low/high mean "undefined for this input".
    """

    value: float
    low: float
    high: float
    n: int
    p_value: float | None = None

    @property
    def defined(self) -> bool:
        return math.isfinite(self.value)

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-safe dict: NaN and ±inf become ``None``."""
        return {
            "value": _json_float(self.value),
            "low": _json_float(self.low),
            "high": _json_float(self.high),
            "n": int(self.n),
            "p_value": _json_float(self.p_value),
        }


def undefined(n: int = 0, p_value: float | None = None) -> Estimate:
    """The NaN estimate returned for empty or degenerate input."""
    return Estimate(NAN, NAN, NAN, int(n), p_value)


def estimate(
    value: float, low: float, high: float, n: int, p_value: float | None = None
) -> Estimate:
    """Build an Estimate from numpy scalars (cast to plain Python numbers)."""
    p = None if p_value is None else float(p_value)
    return Estimate(float(value), float(low), float(high), int(n), p)


def alpha_from_z(z: float) -> float:
    """Two-sided error rate of the normal quantile ``z`` (z = 1.96 → 0.05)."""
    if not (z > 0 and math.isfinite(z)):
        raise ValueError(f"z must be a positive finite number, got {z!r}")
    return float(2.0 * stats.norm.sf(z))


def as_counts(x: object, name: str, ndim: int = 1) -> np.ndarray:
    """Validate a count array: finite, non-negative, whole numbers; returned as int64."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "iu":  # fast path for profile arrays
        if x.ndim != ndim:
            raise ValueError(f"{name} must be a {ndim}-D array of counts, got shape {x.shape}")
        if x.size and x.min() < 0:
            raise ValueError(f"{name} contains negative counts")
        return x.astype(np.int64, copy=False)
    a = np.asarray(x, dtype=float)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array of counts, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values")
    if np.any(a < 0):
        raise ValueError(f"{name} contains negative counts")
    if np.any(a != np.round(a)):
        raise ValueError(f"{name} contains non-integer counts")
    return a.astype(np.int64)


def as_count(x: object, name: str) -> int:
    """Validate a single count (a non-negative whole number)."""
    return int(as_counts(np.asarray(x, dtype=float).reshape(1), name)[0])


def as_finite(x: object, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate a finite float array, optionally of an exact shape."""
    a = np.asarray(x, dtype=float)
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values")
    return a


def same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} differ in shape: {a.shape} vs {b.shape}")
