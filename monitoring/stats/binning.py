"""Bin edges from reference data, per-bin counts and sums, and the score histogram.

Convention used everywhere: ``edges`` are strictly increasing, finite INTERIOR edges and
the bin of ``x`` is ``np.searchsorted(edges, x, side="right")``. There are ``len(edges) + 1``
bins: bin 0 holds ``x < edges[0]``, bin j holds ``edges[j-1] <= x < edges[j]`` and the last
bin holds ``x >= edges[-1]``. The two outer bins are open, so no value ever falls outside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitoring.stats.core import as_counts, as_finite

SCORE_BINS = 100
"""Equal-width score bins on [0, 1]: bin b holds b/100 <= p < (b+1)/100; p == 1 in bin 99."""

LOGIT_CLIP = 1e-6
"""Scores are clipped to [1e-6, 1 - 1e-6] before taking the logit (|logit| <= 13.8)."""

ROW_NEG, ROW_POS, ROW_UNLABELLED = 0, 1, 2


def check_edges(edges: object) -> np.ndarray:
    """Validate interior edges: 1-D, finite, strictly increasing."""
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1:
        raise ValueError(f"edges must be 1-D, got shape {e.shape}")
    if not np.all(np.isfinite(e)):
        raise ValueError("edges must be finite")
    if np.any(np.diff(e) <= 0):
        raise ValueError("edges must be strictly increasing")
    return e


def quantile_edges(values: object, n_bins: int = 20) -> np.ndarray:
    """Interior edges at the reference quantiles j/n_bins, j = 1..n_bins-1.

    Non-finite values are dropped, tied quantiles are merged (so heavy ties give fewer bins;
    a constant column gives the single edge at that constant) and an empty input gives no
    edges (one bin). Quantiles use numpy's default linear interpolation.
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0 or n_bins == 1:
        return np.empty(0)
    qs = np.quantile(v, np.arange(1, int(n_bins)) / int(n_bins))
    return np.unique(qs)


def bin_index(values: object, edges: object) -> np.ndarray:
    """Bin index of each value under the package convention (``side="right"``)."""
    return np.searchsorted(check_edges(edges), np.asarray(values, dtype=float), side="right")


def histogram(values: object, edges: object) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin int64 counts and float sums of ``values`` on ``edges``.

    Non-finite values (NaN, ±inf) are excluded: missing values are counted separately by
    the caller, and an infinite value has no finite sum.
    """
    e = check_edges(edges)
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    idx = np.searchsorted(e, v, side="right")
    k = e.size + 1
    counts = np.bincount(idx, minlength=k).astype(np.int64)
    sums = np.bincount(idx, weights=v, minlength=k).astype(float)
    return counts, sums


def score_bin(p: object) -> np.ndarray:
    """Equal-width bin of each score on [0, 1] (``floor(100 p)``, with p == 1 in the last bin)."""
    a = np.asarray(p, dtype=float)
    if not np.all(np.isfinite(a)) or np.any((a < 0) | (a > 1)):
        raise ValueError("scores must be finite probabilities in [0, 1]")
    return np.minimum(np.floor(a * SCORE_BINS).astype(np.int64), SCORE_BINS - 1)


def clipped_logit(p: object) -> np.ndarray:
    """logit(p) after clipping p to [LOGIT_CLIP, 1 - LOGIT_CLIP] (natural log)."""
    q = np.clip(np.asarray(p, dtype=float), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.log(q) - np.log1p(-q)


def _zeros() -> np.ndarray:
    return np.zeros((3, SCORE_BINS))


_FIELDS = ("count", "sum_p", "sum_p2", "sum_logit")


@dataclass(frozen=True, eq=False)
class ScoreHistogram:
    """Scores binned by outcome: rows 0 = label 0, 1 = label 1, 2 = no label yet.

    Each field has shape (3, SCORE_BINS): ``count`` (int64) and the per-cell sums of p, p²
    and clipped logit(p). Histograms of disjoint sets of cases add (``a + b``), which is how
    daily profiles merge into a window.
    """

    count: np.ndarray = field(default_factory=lambda: np.zeros((3, SCORE_BINS), np.int64))
    sum_p: np.ndarray = field(default_factory=_zeros)
    sum_p2: np.ndarray = field(default_factory=_zeros)
    sum_logit: np.ndarray = field(default_factory=_zeros)

    def __post_init__(self) -> None:
        shape = (3, SCORE_BINS)
        object.__setattr__(self, "count", as_counts(self.count, "count", ndim=2))
        if self.count.shape != shape:
            raise ValueError(f"count must have shape {shape}, got {self.count.shape}")
        for name in _FIELDS[1:]:
            object.__setattr__(self, name, as_finite(getattr(self, name), name, shape))
        if np.any(self.sum_p < 0) or np.any(self.sum_p2 < 0):
            raise ValueError("sum_p and sum_p2 must be non-negative")
        if np.any(self.sum_p > self.count * (1 + 1e-9)):
            raise ValueError("sum_p exceeds count in some cell (scores must be <= 1)")

    @classmethod
    def from_arrays(cls, scores: object, labels: object | None = None) -> ScoreHistogram:
        """Build from raw scores and labels (NaN = no label yet; label > 0.5 counts as 1)."""
        p = np.asarray(scores, dtype=float).ravel()
        b = score_bin(p)
        if labels is None:
            y = np.full(p.shape, np.nan)
        else:
            y = np.asarray(labels, dtype=float).ravel()
            if y.shape != p.shape:
                raise ValueError(f"scores and labels differ in length: {p.size} vs {y.size}")
        row = np.where(np.isnan(y), ROW_UNLABELLED, np.where(y > 0.5, ROW_POS, ROW_NEG))
        cell = row * SCORE_BINS + b
        size = 3 * SCORE_BINS

        def acc(w: np.ndarray | None) -> np.ndarray:
            return np.bincount(cell, weights=w, minlength=size).reshape(3, SCORE_BINS)

        return cls(
            count=acc(None).astype(np.int64),
            sum_p=acc(p),
            sum_p2=acc(p * p),
            sum_logit=acc(clipped_logit(p)),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreHistogram:
        """Inverse of :meth:`to_dict` (raises ValueError on a wrong shape or missing key)."""
        missing = [f for f in _FIELDS if f not in data]
        if missing:
            raise ValueError(f"score histogram is missing {missing}")
        if int(data.get("bins", SCORE_BINS)) != SCORE_BINS:
            raise ValueError(f"score histogram has {data['bins']} bins, expected {SCORE_BINS}")
        return cls(**{f: np.asarray(data[f], dtype=float) for f in _FIELDS})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"bins": 100, "count": [[...], [...], [...]], "sum_p": ..., ...}``."""
        out: dict[str, Any] = {"bins": SCORE_BINS}
        for f in _FIELDS:
            out[f] = getattr(self, f).tolist()
        return out

    def __add__(self, other: object) -> ScoreHistogram:
        if not isinstance(other, ScoreHistogram):
            return NotImplemented
        return ScoreHistogram(**{f: getattr(self, f) + getattr(other, f) for f in _FIELDS})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScoreHistogram):
            return NotImplemented
        return all(np.array_equal(getattr(self, f), getattr(other, f)) for f in _FIELDS)

    __hash__ = None  # type: ignore[assignment]

    @property
    def n(self) -> int:
        """All cases, labelled or not."""
        return int(self.count.sum())

    @property
    def n_labelled(self) -> int:
        return int(self.count[:2].sum())
