"""Uploading a version's reference data set (CSV or Parquet) and building its ReferenceProfile.

The file has one column per feature of the version's spec, ``score`` (0–1), ``label`` (0 or 1;
blank where unknown), one column per cohort column, and optionally ``site`` (a site code, for
per-site baselines). Every mismatch with the spec is reported — the whole list, with row
numbers — and nothing is stored unless the file is clean: a reference profile is the yardstick
of every later alert and must not be half-built.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.db import transaction

from accounts.permissions import require_perms
from governance.audit.services import record
from monitoring import profile_data
from monitoring.importing import ImportProblem, is_missing, open_source, parse_value
from monitoring.metrics import performance
from monitoring.models import ReferenceProfile
from monitoring.stats.binning import ScoreHistogram
from monitoring.validation import is_number
from registry.models import ModelVersion

MIN_ROWS = 200
MIN_PER_CLASS = 20
MAX_ROWS = 5_000_000
#: At most this many example rows are named per kind of problem.
EXAMPLES = 5
RESERVED = ("score", "label", "site")


class ReferenceProblem(Exception):
    """The file cannot become a reference profile; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:3]))
        self.problems = problems


def cohort_values(
    cells: Any, cohorts: dict[str, list[str]], tally: _Tally, number: int
) -> dict[str, str]:
    """A row's cohort columns as text; an undeclared value is a problem of row ``number``."""
    found: dict[str, str] = {}
    for column, declared in cohorts.items():
        raw = cells.get(column)
        if is_missing(raw):
            continue
        text = str(raw).strip()
        if declared and text not in declared:
            tally.add(f"{column}: {text[:40]!r} is not a declared cohort value", number)
        found[column] = text
    return found


@dataclass
class _Tally:
    """Problems of one kind: a count and the first few row numbers."""

    kinds: dict[str, list[int]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, row: int) -> None:
        self.counts[kind] += 1
        rows = self.kinds.setdefault(kind, [])
        if len(rows) < EXAMPLES:
            rows.append(row)

    def messages(self) -> list[str]:
        out = []
        for kind, n in self.counts.most_common():
            rows = ", ".join(str(r) for r in self.kinds[kind])
            more = f" (first at rows {rows})" if n > 1 else f" (row {rows})"
            out.append(f"{kind}: {n} row{'s' if n > 1 else ''}{more}")
        return out


def _spec_of(version: ModelVersion) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    features = [
        {
            "name": f.name,
            "dtype": f.dtype,
            "min_value": f.min_value,
            "max_value": f.max_value,
            "categories": list(f.categories or []),
        }
        for f in version.features.order_by("name")
    ]
    cohorts = {c.name: list(c.values or []) for c in version.cohorts.order_by("name")}
    return features, cohorts


def _header_problems(
    header: Iterable[str], features: list[dict[str, Any]], cohorts: dict[str, list[str]]
) -> list[str]:
    header = list(header)
    problems = []
    repeated = sorted(n for n, k in Counter(header).items() if k > 1)
    if repeated:
        problems.append(f"columns named more than once: {', '.join(repeated)}")
    names = {f["name"] for f in features}
    for column in ("score", "label"):
        if column not in header:
            problems.append(f"the file has no {column!r} column")
    missing = sorted(names - set(header))
    if missing:
        problems.append(f"feature(s) of the spec missing from the file: {', '.join(missing)}")
    absent = sorted(set(cohorts) - set(header))
    if absent:
        problems.append(f"cohort column(s) missing from the file: {', '.join(absent)}")
    unknown = [c for c in header if c not in names and c not in cohorts and c not in RESERVED]
    if unknown:
        problems.append(
            f"column(s) not in the version's spec: {', '.join(unknown)} "
            "(a renamed or extra input must be registered in a new version first)"
        )
    return problems


def read_reference(
    path: Path, version: ModelVersion, fmt: str | None = None
) -> tuple[profile_data.Batch, int]:
    """The file as a Batch, or ``ReferenceProblem`` listing every mismatch with the spec."""
    features, cohorts = _spec_of(version)
    try:
        source = open_source(path, fmt)
    except ImportProblem as exc:
        raise ReferenceProblem([str(exc)]) from exc
    try:
        problems = _header_problems(source.header, features, cohorts)
        if problems:
            raise ReferenceProblem(problems)
        return _read_rows(source, features, cohorts)
    finally:
        source.close()


def _read_rows(
    source: Any, features: list[dict[str, Any]], cohorts: dict[str, list[str]]
) -> tuple[profile_data.Batch, int]:
    tally = _Tally()
    rows_f: list[dict[str, Any]] = []
    scores: list[float] = []
    labels: list[float] = []
    cohort_rows: list[dict[str, Any]] = []
    sites: list[str] = []
    has_site = "site" in source.header
    count = 0
    for row in source.rows():
        count += 1
        if count > MAX_ROWS:
            raise ReferenceProblem([f"the file has more than {MAX_ROWS:,} rows; sample it"])
        n = row.number
        if row.problem:
            tally.add(f"malformed row ({row.problem})", n)
            continue
        cells = row.cells
        values: dict[str, Any] = {}
        for f in features:
            raw = cells.get(f["name"])
            if is_missing(raw):
                values[f["name"]] = None
                continue
            value = parse_value(raw, f["dtype"])
            if f["dtype"] == "numeric" and not is_number(value):
                tally.add(f"{f['name']}: not a number", n)
            elif f["dtype"] == "boolean" and not isinstance(value, bool):
                tally.add(f"{f['name']}: not true/false", n)
            elif f["dtype"] == "categorical" and value not in f["categories"]:
                tally.add(f"{f['name']}: {str(value)[:40]!r} is not a declared category", n)
            values[f["name"]] = value
        score = parse_value(cells.get("score"), "numeric")
        if not is_number(score) or not 0 <= score <= 1:
            tally.add("score: missing or not a number in [0, 1]", n)
            score = math.nan
        label_raw = cells.get("label")
        label = math.nan
        if not is_missing(label_raw):
            parsed = parse_value(label_raw, "numeric")
            if parsed in (0, 1) and not isinstance(parsed, bool):
                label = float(parsed)
            elif isinstance(parsed, bool):
                label = float(parsed)
            else:
                tally.add("label: not 0, 1 or blank", n)
        cohort = cohort_values(cells, cohorts, tally, n)
        rows_f.append(values)
        scores.append(score)
        labels.append(label)
        cohort_rows.append(cohort)
        if has_site:
            sites.append(str(cells.get("site") or "").strip())
    problems = tally.messages()
    labelled = [y for y in labels if not math.isnan(y)]
    if count < MIN_ROWS:
        problems.append(f"the file has {count} rows; a reference needs at least {MIN_ROWS}")
    positives = sum(1 for y in labelled if y == 1)
    if min(positives, len(labelled) - positives) < MIN_PER_CLASS:
        problems.append(
            f"the labels hold {positives} positive and {len(labelled) - positives} negative "
            f"cases; a reference needs at least {MIN_PER_CLASS} of each for its baseline "
            "discrimination and calibration"
        )
    if problems:
        raise ReferenceProblem(problems)
    batch = profile_data.Batch(
        features=rows_f,
        scores=np.asarray(scores, dtype=float),
        labels=np.asarray(labels, dtype=float),
        cohorts=cohort_rows,
        sites=[s for s in sites if s] if has_site and all(sites) else None,
    )
    return batch, len(labelled)


def build_profile(
    batch: profile_data.Batch, version: ModelVersion
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(bins, reference profiles per slice, baseline metrics per slice) of a clean batch."""
    features, cohorts = _spec_of(version)
    # Numeric columns are read once, as floats, for both the bin edges and the spread.
    columns: dict[str, Any] = {
        f["name"]: profile_data.numeric_array([row.get(f["name"]) for row in batch.features])
        for f in features
        if f["dtype"] == "numeric"
    }
    fbins = profile_data.bins_from_reference(features, columns)
    bins: dict[str, Any] = {}
    for fb in fbins:
        entry = fb.as_dict()
        if fb.dtype == "numeric":
            values = columns[fb.name]
            values = values[np.isfinite(values)]
            entry["std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            entry["mean"] = float(values.mean()) if len(values) else None
        bins[fb.name] = entry
    slices = profile_data.slices_of(batch, cohorts)
    reference = profile_data.profile_of(batch, fbins, slices)
    baseline = {}
    for key, data in reference.items():
        h = ScoreHistogram.from_dict(data["score"])
        measured = performance(h, h)
        rate = int(h.count[1].sum()) / h.n_labelled if h.n_labelled else None
        baseline[key] = {
            "n": data["n"],
            "labelled": h.n_labelled,
            "outcome_rate": rate,
            **{
                m.metric: m.estimate.as_dict()
                for m in measured
                if m.metric in ("auc", "calibration_oe", "calibration_slope", "brier", "ece")
            },
        }
    return bins, reference, baseline


def reference_upload(
    *,
    actor: Any,
    version: ModelVersion,
    path: Path,
    file_name: str,
    fmt: str | None = None,
    note: str = "",
) -> ReferenceProfile:
    """Check the file against the version's spec and store its profile as the next number."""
    require_perms(actor, "monitoring.add_referenceprofile")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    batch, labelled = read_reference(path, version, fmt)
    bins, reference, baseline = build_profile(batch, version)
    with transaction.atomic():
        last = (
            ReferenceProfile.objects.select_for_update()
            .filter(version=version)
            .order_by("-number")
            .first()
        )
        profile = ReferenceProfile.objects.create(
            version=version,
            number=(last.number + 1) if last else 1,
            file_name=file_name[:255],
            file_sha256=digest.hexdigest(),
            row_count=len(batch),
            labelled_count=labelled,
            bins=bins,
            reference=reference,
            baseline=baseline,
            note=note[:300],
            uploaded_by=actor,
        )
        record(
            actor=actor,
            action="monitoring.reference_uploaded",
            summary=f"Reference profile #{profile.number} of {version} from {file_name} "
            f"({len(batch)} rows, {labelled} labelled)",
            target=profile,
            payload={
                "model": version.model.slug,
                "version": str(version),
                "file_sha256": profile.file_sha256,
                "rows": len(batch),
                "labelled": labelled,
                "slices": len(reference),
            },
        )
    return profile


def upload_from_django_file(
    *, actor: Any, version: ModelVersion, uploaded: Any, note: str = ""
) -> ReferenceProfile:
    """``reference_upload`` for an uploaded file (page or API): spooled to a temporary file,
    so a large upload never sits in memory whole."""
    name = Path(getattr(uploaded, "name", "reference.csv")).name
    suffix = Path(name).suffix.lower()
    fmt = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix)
    if fmt is None:
        raise ReferenceProblem([f"{name}: upload a .csv or .parquet file"])
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        for chunk in uploaded.chunks():
            tmp.write(chunk)
        tmp.flush()
        return reference_upload(
            actor=actor, version=version, path=Path(tmp.name), file_name=name, fmt=fmt, note=note
        )
