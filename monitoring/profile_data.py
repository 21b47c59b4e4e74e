"""Profiles as data: binning a batch of events into aggregates per slice, and merging them.

Pure (numpy and ``monitoring.stats``; no Django), so the reference upload, the daily build and
the tests share one definition. A profile is a JSON-safe dict::

    {"n": events,
     "features": {name: {"missing", "wrong_type", "out_of_range", "unknown",
                         "counts": [...], "sums": [...] (numeric only)}},
     "unexpected": events with an input outside the spec,
     "last_seen": {name: ISO time of the newest non-missing value},
     "score": ScoreHistogram.to_dict() (rows: label 0, label 1, no label yet),
     "actions": {"act", "defer", "shadow"},
     "acted": events acted on, "overridden": acted events a clinician overrode,
     "decided": reviewed deferred cases, "tta_counts": time-to-action histogram}

Profiles add: ``merge`` of the days of a window is the window's profile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import numpy as np

from monitoring.stats.binning import ScoreHistogram, quantile_edges
from monitoring.stats.workflow import TIME_EDGES_SECONDS

#: Fine quantile bins per numeric feature: KS and Wasserstein use them as they are; PSI and
#: Jensen–Shannon use them merged into ``COARSE_GROUPS`` groups (see monitoring.evaluation).
NUMERIC_BINS = 50
#: The most distinct values of an undeclared cohort column that become slices.
MAX_COHORT_VALUES = 50

MISSING, WRONG_TYPE, UNKNOWN = -1, -2, -3
#: Added to a code to make every code a bin index (see ``_profile_slice``).
SHIFT = 3


@dataclass(frozen=True)
class FeatureBins:
    name: str
    dtype: str  # numeric | categorical | boolean
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 1 if self.dtype == "numeric" else len(self.categories)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": self.dtype}
        if self.dtype == "numeric":
            out.update(edges=list(self.edges), min=self.min_value, max=self.max_value)
        else:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> FeatureBins:
        return cls(
            name=name,
            dtype=data["dtype"],
            edges=tuple(data.get("edges", ())),
            categories=tuple(data.get("categories", ())),
            min_value=data.get("min"),
            max_value=data.get("max"),
        )


def bins_from_reference(
    spec: Sequence[Mapping[str, Any]], columns: Mapping[str, Sequence[Any]]
) -> list[FeatureBins]:
    """Each feature's bins from the reference data: quantile edges for numeric features, the
    declared vocabulary for categorical ones, false/true for booleans."""
    out = []
    for feature in spec:
        name, dtype = feature["name"], feature["dtype"]
        if dtype == "numeric":
            values = numeric_array(columns.get(name, ()))
            edges = quantile_edges(_sample(values[np.isfinite(values)]), n_bins=NUMERIC_BINS)
            out.append(
                FeatureBins(
                    name,
                    dtype,
                    edges=tuple(float(e) for e in edges),
                    min_value=feature.get("min_value"),
                    max_value=feature.get("max_value"),
                )
            )
        elif dtype == "boolean":
            out.append(FeatureBins(name, dtype, categories=("false", "true")))
        else:
            out.append(FeatureBins(name, dtype, categories=tuple(feature["categories"])))
    return out


#: Quantile edges of a large reference come from a fixed random sample of this many values:
#: 2% bins need nothing like a million values (50,000 put each edge within about 0.1% of its
#: quantile), and sorting them all dominated an upload.
EDGE_SAMPLE = 50_000


def _sample(values: np.ndarray) -> np.ndarray:
    if len(values) <= EDGE_SAMPLE:
        return values
    return np.random.default_rng(0).choice(values, EDGE_SAMPLE, replace=False)


def numeric_array(values: Iterable[Any], *, check_booleans: bool = True) -> np.ndarray:
    """Floats, NaN where a value is missing or not a finite number. Text and booleans are not
    numbers; ``check_booleans=False`` skips that check for callers that know which rows can hold
    them (the gate records them as ``wrong_type`` problems, see ``_Columns``) and fix those."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        out = values.astype(float, copy=True)
        out[~np.isfinite(out)] = math.nan
        return out
    raw = values if isinstance(values, list) else list(values)
    # The common case, in C: only numbers and None (→ NaN). numpy would also read "1.5" and
    # True as numbers; neither is one here, so any other type takes the slow path.
    if not check_booleans or set(map(type, raw)) <= _PLAIN_NUMBER_TYPES:
        try:
            out = np.array(raw, dtype=float)
        except (TypeError, ValueError):
            out = np.array([_as_float(v) for v in raw], dtype=float)
    else:
        out = np.array([_as_float(v) for v in raw], dtype=float)
    out[~np.isfinite(out)] = math.nan
    return out


_PLAIN_NUMBER_TYPES = frozenset({int, float, type(None)})


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    return math.nan


@dataclass
class Batch:
    """A batch of events, column-wise. ``features`` are the stored dicts; ``labels`` NaN where
    no outcome is known; the workflow columns are optional (a reference file has none)."""

    features: Sequence[Mapping[str, Any]]
    scores: np.ndarray
    labels: np.ndarray
    cohorts: Sequence[Mapping[str, Any]]
    sites: Sequence[str] | None = None
    occurred_epoch: np.ndarray | None = None  # seconds since 1970 (UTC)
    actions: Sequence[str] | None = None
    unexpected: np.ndarray | None = None
    #: rows the gate found a wrong-typed input in (None: unknown, check every row)
    wrong_type: np.ndarray | None = None
    #: the features column-wise instead of ``features`` (float arrays for numeric features,
    #: arrays or lists for the others), for data already in memory
    columns: Mapping[str, Any] | None = None
    overridden: np.ndarray | None = None
    tta_seconds: np.ndarray | None = None  # NaN where not a decided review

    def __len__(self) -> int:
        return len(self.scores)


class _Columns:
    """Per-feature codes computed once per batch, then counted per slice by index."""

    def __init__(self, bins: Sequence[FeatureBins], batch: Batch) -> None:
        self.bins = bins
        self.codes: dict[str, np.ndarray] = {}
        self.values: dict[str, np.ndarray] = {}
        self.out_of_range: dict[str, np.ndarray] = {}
        feats = batch.features
        suspect = None if batch.wrong_type is None else np.flatnonzero(batch.wrong_type)
        for fb in bins:
            name = fb.name
            if batch.columns is not None:
                raw = batch.columns[name]  # column-wise input (a data set already in memory)
            else:
                raw = list(map(dict.get, feats, repeat(name)))
            if fb.dtype == "numeric":
                self.codes[name], self.values[name], self.out_of_range[name] = _numeric_codes(
                    fb, raw, suspect
                )
            else:
                self.codes[name] = _category_codes(fb, raw)
        actions = batch.actions if batch.actions is not None else []
        self.action_codes = np.fromiter(
            (ACTION_INDEX.get(a, len(ACTIONS)) for a in actions), np.int64, len(actions)
        )


def _text_codes(fb: FeatureBins, raw: np.ndarray) -> np.ndarray:
    """Codes of a text array (no missing values possible): each category by a vectorised
    comparison, the rest unknown."""
    codes = np.full(len(raw), UNKNOWN, dtype=np.int64)
    for i, category in enumerate(fb.categories):
        codes[raw == category] = i
    return codes


def _numeric_codes(
    fb: FeatureBins, raw: list[Any], suspect: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = numeric_array(raw, check_booleans=suspect is None)
    if suspect is not None and len(suspect):
        # Only rows with a wrong-typed input can hold a boolean that passed as 0/1.
        values[suspect] = [_as_float(raw[i]) for i in suspect]
    codes = np.searchsorted(np.asarray(fb.edges, dtype=float), values, side="right")
    codes = codes.astype(np.int64)
    bad = np.isnan(values)
    if bad.any():
        # NaN is a missing value (None / absent) or one of the wrong type.
        missing = np.fromiter((raw[i] is None for i in np.flatnonzero(bad)), bool)
        where = np.flatnonzero(bad)
        codes[where[missing]] = MISSING
        codes[where[~missing]] = WRONG_TYPE
    finite = ~bad
    oor = np.zeros(len(values), dtype=bool)
    if fb.min_value is not None:
        oor |= finite & (values < fb.min_value)
    if fb.max_value is not None:
        oor |= finite & (values > fb.max_value)
    return codes, np.where(finite, values, 0.0), oor


def _category_codes(fb: FeatureBins, raw: Any) -> np.ndarray:
    if isinstance(raw, np.ndarray) and raw.dtype.kind == "U":
        return _text_codes(fb, raw)
    arr = np.empty(len(raw), dtype=object)
    arr[:] = raw
    codes = np.full(len(raw), UNKNOWN, dtype=np.int64)
    if fb.dtype == "boolean":
        # ``==`` would match 1 and 0 too: booleans by identity.
        is_true = np.fromiter((v is True for v in raw), bool, len(raw))
        is_false = np.fromiter((v is False for v in raw), bool, len(raw))
        codes[:] = WRONG_TYPE
        codes[is_false] = 0
        codes[is_true] = 1
    else:
        for i, category in enumerate(fb.categories):
            codes[arr == category] = i
        rest = np.flatnonzero(codes == UNKNOWN)
        if len(rest):
            not_text = np.fromiter((not isinstance(raw[i], str) for i in rest), bool, len(rest))
            codes[rest[not_text]] = WRONG_TYPE
    codes[np.equal(arr, None)] = MISSING
    return codes


def profile_of(
    batch: Batch, bins: Sequence[FeatureBins], slices: Mapping[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """The profile of each slice of ``batch``; ``slices`` maps a slice key to row indices."""
    columns = _Columns(bins, batch)
    times = batch.occurred_epoch if batch.occurred_epoch is not None else np.array([])
    out = {}
    for key, idx in slices.items():
        out[key] = _profile_slice(batch, columns, idx, times)
    return out


def _profile_slice(
    batch: Batch, columns: _Columns, idx: np.ndarray, times: np.ndarray
) -> dict[str, Any]:
    features: dict[str, Any] = {}
    last_seen: dict[str, str] = {}
    # The slice of every row (the "all" slice, a whole chunk) needs no copies.
    whole = len(idx) == len(batch) and (len(idx) == 0 or (idx[0] == 0 and idx[-1] == len(idx) - 1))
    pick = (lambda a: a) if whole else (lambda a: a[idx])
    for fb in columns.bins:
        codes = pick(columns.codes[fb.name])
        # One pass counts the special codes (−3 unknown, −2 wrong type, −1 missing) and every
        # bin: shifted by 3, they are all bins of one histogram.
        shifted = codes + SHIFT
        tally = np.bincount(shifted, minlength=fb.n_bins + SHIFT)
        entry: dict[str, Any] = {
            "missing": int(tally[MISSING + SHIFT]),
            "wrong_type": int(tally[WRONG_TYPE + SHIFT]),
            "unknown": int(tally[UNKNOWN + SHIFT]),
            "counts": tally[SHIFT:].tolist(),
        }
        if fb.dtype == "numeric":
            # Invalid rows carry the value 0, so they add nothing to the bins' sums.
            sums = np.bincount(
                shifted, weights=pick(columns.values[fb.name]), minlength=fb.n_bins + SHIFT
            )
            entry["sums"] = sums[SHIFT:].tolist()
            entry["out_of_range"] = int(np.count_nonzero(pick(columns.out_of_range[fb.name])))
        else:
            entry["out_of_range"] = 0
        features[fb.name] = entry
        if len(times) and tally[SHIFT:].any():
            newest = float(pick(times)[codes >= 0].max())
            last_seen[fb.name] = datetime.fromtimestamp(newest, tz=UTC).isoformat()
    histogram = ScoreHistogram.from_arrays(batch.scores[idx], batch.labels[idx])
    profile: dict[str, Any] = {
        "n": int(len(idx)),
        "features": features,
        "last_seen": last_seen,
        "score": histogram.to_dict(),
        "unexpected": int(batch.unexpected[idx].sum()) if batch.unexpected is not None else 0,
    }
    if batch.actions is not None:
        codes = columns.action_codes[idx]
        counts = np.bincount(codes, minlength=len(ACTIONS) + 1)
        acted = codes == ACTION_INDEX["act"]
        profile["actions"] = {a: int(counts[i]) for i, a in enumerate(ACTIONS)}
        profile["acted"] = int(counts[ACTION_INDEX["act"]])
        overridden = batch.overridden[idx] if batch.overridden is not None else acted & False
        profile["overridden"] = int(np.count_nonzero(overridden & acted))
        tta = batch.tta_seconds[idx] if batch.tta_seconds is not None else np.array([])
        tta = tta[np.isfinite(tta)]
        profile["decided"] = int(len(tta))
        profile["tta_counts"] = np.bincount(
            np.searchsorted(TIME_EDGES, tta, side="right"), minlength=len(TIME_EDGES) + 1
        ).tolist()
    return profile


ACTIONS = ("act", "defer", "shadow")
ACTION_INDEX = {a: i for i, a in enumerate(ACTIONS)}
TIME_EDGES = np.asarray(TIME_EDGES_SECONDS, dtype=float)


def empty_profile(bins: Sequence[FeatureBins]) -> dict[str, Any]:
    batch = Batch(
        features=[],
        scores=np.array([]),
        labels=np.array([]),
        cohorts=[],
        actions=[],
        unexpected=np.zeros(0, dtype=bool),
        overridden=np.zeros(0, dtype=bool),
        tta_seconds=np.array([]),
    )
    return profile_of(batch, bins, {"all": np.arange(0)})["all"]


def merge(profiles: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The sum of ``profiles`` (days of a window, or chunks of a day); ``None`` when there are
    none. Lists add element by element (numpy), counts add, ``last_seen`` keeps the newest.
    Partial profiles (only the workflow counts, or only the score) merge the same way."""
    acc: dict[str, Any] | None = None
    for profile in profiles:
        if acc is None:
            acc = {"n": 0, "unexpected": 0, "features": {}, "last_seen": {}}
        acc["n"] += profile.get("n", 0)
        acc["unexpected"] += profile.get("unexpected", 0)
        for name, entry in profile.get("features", {}).items():
            _add_into(acc["features"].setdefault(name, {}), entry)
        for name, when in profile.get("last_seen", {}).items():
            if when > acc["last_seen"].get(name, ""):
                acc["last_seen"][name] = when
        if "score" in profile:
            _add_into(acc.setdefault("score", {}), profile["score"], keep=("bins",))
        if "actions" in profile:
            _add_into(acc.setdefault("actions", dict.fromkeys(ACTIONS, 0)), profile["actions"])
            _add_into(acc, {k: profile.get(k, 0) for k in ("acted", "overridden", "decided")})
            if "tta_counts" in profile:
                _add_into(acc, {"tta_counts": profile["tta_counts"]})
    return None if acc is None else _plain(acc)


def _add_into(into: dict[str, Any], entry: Mapping[str, Any], keep: tuple[str, ...] = ()) -> None:
    for key, value in entry.items():
        if key in keep:
            into[key] = value
        elif isinstance(value, list):
            mine = into.get(key)
            if mine is None:
                into[key] = np.array(value)
            elif mine.shape != np.shape(value):
                raise ValueError("profiles built on different bins cannot be merged")
            else:
                into[key] = mine + np.asarray(value)
        else:
            into[key] = into.get(key, 0) + value


def _plain(value: Any) -> Any:
    """numpy accumulators back to JSON-ready lists and numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def slices_of(batch: Batch, cohort_columns: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray]:
    """Row indices of each slice: ``all``, ``site=CODE`` and ``<column>=<value>``.

    A declared column's slices are its declared values (others are counted in ``all`` only);
    an open column (no declared values) gets at most ``MAX_COHORT_VALUES`` of its values.
    """
    n = len(batch)
    slices: dict[str, np.ndarray] = {}
    if batch.sites is not None and n:
        sites = np.asarray(batch.sites, dtype=object)
        for code in sorted(set(batch.sites)):
            slices[f"site={code}"] = np.flatnonzero(sites == code)
    for column, declared in cohort_columns.items():
        raw = [c.get(column) for c in batch.cohorts]
        values = np.empty(n, dtype=object)
        values[:] = [None if v is None else str(v) for v in raw]
        present = [v for v in dict.fromkeys(values.tolist()) if v is not None]
        if declared:
            allowed = set(declared)
            present = [v for v in present if v in allowed]
        else:
            present = present[:MAX_COHORT_VALUES]
        for value in present:
            rows = np.flatnonzero(values == value)
            if len(rows):
                slices[f"{column}={value}"] = rows
    out = {"all": np.arange(n)}
    out.update(dict(sorted(slices.items())))
    return out
