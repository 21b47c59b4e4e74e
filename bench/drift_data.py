"""Deterministic reference and current data for the drift-engine comparison (issue 4, "Speed").

    data = drift_data.make(rows=1_000_000)      # seed 4 unless told otherwise

Each sample has ``rows`` rows and 20 features: 15 numeric (``num_00`` … ``num_14``) and 5
categorical (``cat_00`` … ``cat_04``), plus a model score in [0, 1] and a 0/1 label (the
statistics engine profiles the score too, as the real pipeline does). The reference and the
current sample are drawn independently with ``numpy.random.default_rng``; the current sample
differs from the reference in exactly five features, ``DRIFTED``:

========  ============================================================================
num_00    mean shift of +0.25 reference SD (normal, 80 ± 12)
num_01    scale change: SD × 1.25 about the same mean (normal, 0 ± 1)
num_02    mixture: lognormal, with 20% of rows replaced by a normal bump centred 1.5 SD
          above the mean (bump SD 0.5 SD)
cat_00    category proportions 40/30/20/10% → 32/30/20/18%
cat_01    8 points of share moved from the commonest of six wards to the rarest: 25/25/20/15/10/5%
          → 17/25/20/15/10/13%
========  ============================================================================

The other 15 features (12 numeric of various shapes, two of them integer-valued with heavy
ties, and 3 categorical) come from the same distribution in both samples.

Columns are numpy arrays: float64 for numeric features, fixed-width unicode (``<U…``) for
categorical ones (``frame()`` turns a sample into a pandas DataFrame with object strings, the
shape a CSV read gives; pandas is imported only there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ROWS = 1_000_000
SEED = 4
NUMERIC = [f"num_{i:02d}" for i in range(15)]
CATEGORICAL = [f"cat_{i:02d}" for i in range(5)]
FEATURES = NUMERIC + CATEGORICAL
DRIFTED = ("num_00", "num_01", "num_02", "cat_00", "cat_01")

#: Categories and reference proportions of each categorical feature; current proportions of the
#: drifted ones.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "cat_00": ("A", "B", "C", "D"),
    "cat_01": ("ward_1", "ward_2", "ward_3", "ward_4", "ward_5", "ward_6"),
    "cat_02": ("F", "M"),
    "cat_03": ("elective", "emergency", "transfer"),
    "cat_04": tuple(f"code_{i}" for i in range(8)),
}
REF_SHARES: dict[str, tuple[float, ...]] = {
    "cat_00": (0.40, 0.30, 0.20, 0.10),
    "cat_01": (0.25, 0.25, 0.20, 0.15, 0.10, 0.05),
    "cat_02": (0.52, 0.48),
    "cat_03": (0.35, 0.55, 0.10),
    "cat_04": (0.30, 0.20, 0.15, 0.10, 0.10, 0.07, 0.05, 0.03),
}
CUR_SHARES: dict[str, tuple[float, ...]] = {
    "cat_00": (0.32, 0.30, 0.20, 0.18),
    "cat_01": (0.17, 0.25, 0.20, 0.15, 0.10, 0.13),
}


@dataclass
class Sample:
    columns: dict[str, np.ndarray]
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def _numeric(name: str, rng: np.random.Generator, n: int, current: bool) -> np.ndarray:
    """One numeric column; ``current`` applies the drift of a drifted feature."""
    if name == "num_00":  # e.g. heart rate-like, normal 80 ± 12; drift: +0.25 SD
        return rng.normal(80.0 + (0.25 * 12.0 if current else 0.0), 12.0, n)
    if name == "num_01":  # standardised lab value; drift: SD × 1.25
        return rng.normal(0.0, 1.25 if current else 1.0, n)
    if name == "num_02":  # lactate-like lognormal; drift: 20% from a mode 1.5 SD higher
        x = rng.lognormal(0.3, 0.4, n)
        if current:
            sd = float(np.sqrt((np.exp(0.4**2) - 1) * np.exp(2 * 0.3 + 0.4**2)))
            second = rng.random(n) < 0.20
            x[second] = rng.normal(np.exp(0.3 + 0.4**2 / 2) + 1.5 * sd, 0.5 * sd, second.sum())
        return x
    i = int(name[-2:])
    kind = i % 4
    if name == "num_03":  # age in whole years, heavy ties
        return np.clip(np.round(rng.normal(62.0, 17.0, n)), 18, 100)
    if name == "num_04":  # respiratory rate, integer, very heavy ties
        return np.round(rng.gamma(16.0, 1.1, n))
    if kind == 0:
        return rng.normal(10.0 * i, 1.0 + i / 3, n)
    if kind == 1:
        return rng.gamma(2.0 + i / 5, 1.5, n)
    if kind == 2:
        return rng.lognormal(0.1 * i, 0.6, n)
    return rng.standard_t(5, n) * 2.0 + i  # heavy tails


def _sample(rng: np.random.Generator, n: int, current: bool) -> Sample:
    columns: dict[str, np.ndarray] = {}
    for name in NUMERIC:
        columns[name] = _numeric(name, rng, n, current)
    for name in CATEGORICAL:
        shares = CUR_SHARES.get(name, REF_SHARES[name]) if current else REF_SHARES[name]
        cats = np.asarray(CATEGORIES[name])
        columns[name] = cats[rng.choice(len(cats), size=n, p=np.asarray(shares))]
    scores = rng.beta(1.5, 6.0, n)
    labels = (rng.random(n) < scores).astype(float)
    return Sample(columns, scores, labels)


def make(rows: int = ROWS, seed: int = SEED) -> tuple[Sample, Sample]:
    """(reference, current), each ``rows`` rows; identical for the same (rows, seed)."""
    ref = _sample(np.random.default_rng([seed, 0]), rows, current=False)
    cur = _sample(np.random.default_rng([seed, 1]), rows, current=True)
    return ref, cur


def spec() -> list[dict[str, Any]]:
    """The feature spec in the shape ``monitoring.profile_data.bins_from_reference`` reads."""
    out: list[dict[str, Any]] = [{"name": n, "dtype": "numeric"} for n in NUMERIC]
    out += [
        {"name": n, "dtype": "categorical", "categories": list(CATEGORIES[n])} for n in CATEGORICAL
    ]
    return out


def frame(sample: Sample) -> Any:
    """A pandas DataFrame of the 20 features (categorical columns as object strings)."""
    import pandas as pd

    return pd.DataFrame(
        {
            name: (col if name in NUMERIC else col.astype(object))
            for name, col in sample.columns.items()
        }
    )


def rows_of(sample: Sample) -> list[dict[str, Any]]:
    """The features as a list of dicts of plain Python values: the shape stored events have
    (``Batch.features``)."""
    names = list(sample.columns)
    lists = [sample.columns[n].tolist() for n in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*lists, strict=True)]
