"""Two-sample drift statistics on the reference's bins (so they work on merged profiles).

Every function compares the reference histogram with the current one on the SAME bins
(the reference profile's edges; see ``binning``) and returns an :class:`Estimate` whose
``n`` is the current count. Either sample empty gives NaN.

Intervals: a deterministic parametric bootstrap. Both histograms are redrawn
``BOOTSTRAP_DRAWS`` times from multinomials with their observed proportions and totals,
using fixed seeds, and the interval is the 2.5% and 97.5% percentiles of the statistic over
the draws. The interval describes the sampling variability of the estimate; it is not a
test of "no drift" (PSI, JS and W1 are biased upwards in small samples). Draws are cached
by (counts, role), so the five statistics on one feature share one set of draws and the
reference's draws are reused across windows. A rebuild gives identical numbers.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import special

from monitoring.stats.core import Estimate, as_counts, as_finite, estimate, same_shape, undefined

BOOTSTRAP_DRAWS = 200
BOOTSTRAP_SEED = 20_240_917
_LN2 = math.log(2.0)
_REF, _CUR = 0, 1


def _pair(ref_counts: object, cur_counts: object) -> tuple[np.ndarray, np.ndarray]:
    r = as_counts(ref_counts, "ref_counts")
    c = as_counts(cur_counts, "cur_counts")
    same_shape(r, c, "ref_counts", "cur_counts")
    if r.size == 0:
        raise ValueError("histograms must have at least one bin")
    return r, c


class _Sample:
    """Counts of one sample as rows (1 row: the observed histogram; B rows: bootstrap draws),
    with the derived quantities the statistics share, computed once and kept."""

    __slots__ = ("counts", "total", "shares", "_cdf", "_plogp", "_floored")

    def __init__(self, counts: np.ndarray) -> None:
        self.counts = counts
        self.total = counts.sum(axis=-1, keepdims=True).astype(float)
        self.shares = counts / self.total
        self._cdf: np.ndarray | None = None
        self._plogp: np.ndarray | None = None
        self._floored: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def cdf(self) -> np.ndarray:
        """Share of values below each interior edge, shape (rows, k - 1)."""
        if self._cdf is None:
            self._cdf = np.cumsum(self.shares, axis=-1)[..., :-1]
        return self._cdf

    @property
    def plogp(self) -> np.ndarray:
        """Σ p ln p per row (0 ln 0 = 0)."""
        if self._plogp is None:
            p = self.shares
            self._plogp = (p * np.log(np.where(p > 0, p, 1.0))).sum(axis=-1)
        return self._plogp

    def floored(self, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """Shares floored at eps and renormalised, and their natural log."""
        if eps not in self._floored:
            f = np.maximum(self.shares, eps)
            f = f / f.sum(axis=-1, keepdims=True)
            self._floored[eps] = (f, np.log(f))
        return self._floored[eps]


@lru_cache(maxsize=128)  # ~30 MB at most for 20–50 bins; a window's features fit in it
def _cached_draws(key: bytes, stream: int) -> _Sample:
    counts = np.frombuffer(key, dtype=np.int64)
    n = int(counts.sum())
    rng = np.random.default_rng([BOOTSTRAP_SEED, stream])
    draws = rng.multinomial(n, counts / n, size=BOOTSTRAP_DRAWS)
    draws.setflags(write=False)
    return _Sample(draws)


def bootstrap_draws(counts: np.ndarray, stream: int) -> np.ndarray:
    """(BOOTSTRAP_DRAWS, k) multinomial redraws of ``counts`` (deterministic, cached)."""
    return _cached_draws(np.ascontiguousarray(counts, dtype=np.int64).tobytes(), stream).counts


def _samples(r: np.ndarray, c: np.ndarray) -> tuple[_Sample, _Sample, _Sample, _Sample]:
    """Observed reference, observed current, and their bootstrap draws."""
    rb = _cached_draws(np.ascontiguousarray(r).tobytes(), _REF)
    cb = _cached_draws(np.ascontiguousarray(c).tobytes(), _CUR)
    return _Sample(r[None, :]), _Sample(c[None, :]), rb, cb


def _interval(draws: np.ndarray) -> tuple[float, float]:
    """2.5% and 97.5% percentiles (numpy's default linear interpolation), without the
    overhead of ``np.quantile``."""
    s = np.sort(np.asarray(draws, dtype=float).ravel())
    pos = (s.size - 1) * np.array([0.025, 0.975])
    lo_i = np.floor(pos).astype(int)
    hi_i = np.minimum(lo_i + 1, s.size - 1)
    v = s[lo_i] + (pos - lo_i) * (s[hi_i] - s[lo_i])
    return float(v[0]), float(v[1])


def _result(point: np.ndarray, draws: np.ndarray, n: int, p_value: float | None = None) -> Estimate:
    """Point estimate with the bootstrap percentile interval, widened if needed so that it
    always contains the point estimate."""
    value = float(np.asarray(point).reshape(-1)[0])
    lo, hi = _interval(draws)
    return estimate(value, min(lo, value), max(hi, value), n, p_value)


# --- vectorised statistics on _Sample rows ---------------------------------------------------


def _psi_rows(r: _Sample, c: _Sample, eps: float) -> np.ndarray:
    p, lp = r.floored(eps)
    q, lq = c.floored(eps)
    return ((q - p) * (lq - lp)).sum(axis=-1)


def _js_point(r: _Sample, c: _Sample) -> np.ndarray:
    """One row, by relative entropies (accurate near 0, where the entropy form loses digits)."""
    p, q = r.shares, c.shares
    m = 0.5 * (p + q)
    div = 0.5 * (special.rel_entr(p, m).sum(axis=-1) + special.rel_entr(q, m).sum(axis=-1))
    return np.sqrt(np.maximum(div / _LN2, 0.0))


def _js_rows(r: _Sample, c: _Sample) -> np.ndarray:
    # JSD = H(m) - (H(p) + H(q))/2 with m = (p + q)/2, in nats; converted to bits. Fast for
    # the bootstrap rows (the entropies of each sample's draws are cached).
    m = 0.5 * (r.shares + c.shares)
    m_logm = (m * np.log(np.where(m > 0, m, 1.0))).sum(axis=-1)
    div = 0.5 * (r.plogp + c.plogp) - m_logm
    return np.sqrt(np.maximum(div / _LN2, 0.0))


def _ks_rows(r: _Sample, c: _Sample) -> np.ndarray:
    if r.shares.shape[-1] == 1:
        return np.zeros(r.shares.shape[:-1])
    return np.abs(r.cdf - c.cdf).max(axis=-1)


def _w1_rows(r: _Sample, c: _Sample, ref_means: np.ndarray, cur_means: np.ndarray) -> np.ndarray:
    x = np.concatenate([ref_means, cur_means])
    order = np.argsort(x, kind="stable")
    w = np.concatenate([r.shares, -c.shares], axis=-1)[..., order]
    cdf_diff = np.cumsum(w, axis=-1)[..., :-1]
    return (np.abs(cdf_diff) * np.diff(x[order])).sum(axis=-1)


def _cramers_v_rows(r: _Sample, c: _Sample) -> np.ndarray:
    """Two-sample χ² on the 2×k table, as Cramér's V = sqrt(χ²/N).

    χ² = n_r n_c Σ_j (q_j - p_j)² / (n_r p_j + n_c q_j), N = n_r + n_c.
    """
    p, q = r.shares, c.shares
    den = r.total * p + c.total * q
    terms = np.divide((q - p) ** 2, den, out=np.zeros(den.shape), where=den > 0)
    chi2 = (r.total * c.total)[..., 0] * terms.sum(axis=-1)
    return np.sqrt(np.minimum(chi2 / (r.total + c.total)[..., 0], 1.0))


# --- public API ------------------------------------------------------------------------------


def psi(ref_counts: object, cur_counts: object, eps: float = 1e-4) -> Estimate:
    """Population stability index, natural log: Σ (q - p) · ln(q / p).

    p, q are the reference and current bin shares. Shares below ``eps`` (empty bins) are
    raised to ``eps`` and each vector is then renormalised to sum to 1, so an empty bin
    contributes a large but finite term.
    """
    if not (0 < eps < 1):
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    r, c = _pair(ref_counts, cur_counts)
    n = int(c.sum())
    if r.sum() == 0 or n == 0:
        return undefined(n)
    ro, co, rb, cb = _samples(r, c)
    return _result(_psi_rows(ro, co, eps), _psi_rows(rb, cb, eps), n)


def js_distance(ref_counts: object, cur_counts: object) -> Estimate:
    """Jensen–Shannon distance, base 2 (in [0, 1]).

    sqrt(½ KL(p‖m) + ½ KL(q‖m)) with m = (p + q)/2 and log base 2; equals
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``. No smoothing.
    """
    r, c = _pair(ref_counts, cur_counts)
    n = int(c.sum())
    if r.sum() == 0 or n == 0:
        return undefined(n)
    ro, co, rb, cb = _samples(r, c)
    return _result(_js_point(ro, co), _js_rows(rb, cb), n)


def ks_binned(ref_counts: object, cur_counts: object) -> Estimate:
    """Kolmogorov–Smirnov distance evaluated at the bin edges.

    D = max_j |F_ref(e_j) - F_cur(e_j)| over the interior edges, with F(e) = share of values
    below e. p_value: Smirnov's asymptotic two-sample formula, the Kolmogorov distribution
    at sqrt(n·m/(n+m))·D (``scipy.stats.kstwobign.sf``; conservative with binned ties).
    D is never above the exact KS of the raw data, and at most the largest bin share
    (of either sample) below it.
    """
    r, c = _pair(ref_counts, cur_counts)
    n = int(c.sum())
    m = int(r.sum())
    if m == 0 or n == 0:
        return undefined(n)
    ro, co, rb, cb = _samples(r, c)
    d = float(_ks_rows(ro, co)[0])
    p = float(np.clip(special.kolmogorov(math.sqrt(m * n / (m + n)) * d), 0.0, 1.0))
    return _result(d, _ks_rows(rb, cb), n, p)


def _bin_means(counts: np.ndarray, sums: object, name: str) -> np.ndarray:
    s = as_finite(sums, name, counts.shape)
    if np.any((counts == 0) & (s != 0)):
        raise ValueError(f"{name} is non-zero in a bin with no values")
    # Empty bins carry no mass in the data or in any bootstrap draw, so where their point
    # sits does not change W1; 0 keeps it finite.
    return np.divide(s, counts, out=np.zeros(counts.shape), where=counts > 0)


def wasserstein_binned(
    ref_counts: object,
    ref_sums: object,
    cur_counts: object,
    cur_sums: object,
    ref_std: float,
) -> Estimate:
    """Wasserstein-1 distance between the binned distributions, divided by ``ref_std``.

    Each bin's mass sits at that bin's mean value (sum / count, per sample), and
    W1 = ∫ |F_ref(x) - F_cur(x)| dx between the two discrete distributions. The value is
    normalised by the reference standard deviation (unit-free, like Evidently's "normed"
    Wasserstein). The raw W1 in the feature's units is ``value * ref_std`` (the same for the
    interval). ``ref_std`` == 0 gives NaN.
    """
    r, c = _pair(ref_counts, cur_counts)
    ref_means = _bin_means(r, ref_sums, "ref_sums")
    cur_means = _bin_means(c, cur_sums, "cur_sums")
    sd = float(ref_std)
    if math.isnan(sd) or sd < 0 or math.isinf(sd):
        raise ValueError(f"ref_std must be a finite non-negative number, got {ref_std!r}")
    n = int(c.sum())
    if r.sum() == 0 or n == 0 or sd == 0:
        return undefined(n)
    ro, co, rb, cb = _samples(r, c)
    point = _w1_rows(ro, co, ref_means, cur_means) / sd
    return _result(point, _w1_rows(rb, cb, ref_means, cur_means) / sd, n)


def chi_square(ref_counts: object, cur_counts: object) -> Estimate:
    """Two-sample chi-square test of homogeneity on the 2×k table (reference row, current row).

    Categories empty in both samples are dropped. Value: Cramér's V = sqrt(χ²/N) (N = both
    totals; min(rows, cols) - 1 = 1). p_value: χ² on k' - 1 degrees of freedom (k' = kept
    categories), no continuity correction — ``scipy.stats.chi2_contingency(table,
    correction=False)``. Not ``scipy.stats.chisquare``'s goodness-of-fit against fixed
    reference shares (see docs/statistics.md for the relation). A single kept category
    gives V = 0, p = 1.
    """
    r, c = _pair(ref_counts, cur_counts)
    n = int(c.sum())
    if r.sum() == 0 or n == 0:
        return undefined(n)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    ro, co, rb, cb = _samples(r, c)
    v = float(_cramers_v_rows(ro, co)[0])
    chi2 = v * v * float(r.sum() + n)
    dof = r.size - 1
    p = 1.0 if dof == 0 else float(special.chdtrc(dof, chi2))
    return _result(v, _cramers_v_rows(rb, cb), n, p)
