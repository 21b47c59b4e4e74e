"""Reading a release's validation set (CSV or Parquet) into arrays, or every reason it cannot be.

The file has the reference data's format (``monitoring.reference``): one column per feature of
the version's spec, ``score`` (0–1), ``label`` (0 or 1, never blank: a validation set is fully
labelled), one column per cohort column, optionally ``site`` (a site code) and, for backtests,
``occurred_at`` (an ISO date, or an ISO datetime; a datetime without a zone is read as UTC — a
backtest window needs the day, not the clock). Every problem is listed, with row numbers, and
nothing is returned unless the file is clean.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_date, parse_datetime

from monitoring.importing import ImportProblem, Source, is_missing, open_source, parse_value
from monitoring.reference import _header_problems, _spec_of, _Tally, cohort_values
from monitoring.validation import is_number
from registry.models import ModelVersion

MIN_ROWS = 50
#: Fewer positives or negatives than this and no AUC or calibration slope is worth reporting.
MIN_PER_CLASS = 10
MAX_ROWS = 2_000_000
TIME_COLUMN = "occurred_at"
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class ValidationSet:
    """A clean validation set: one entry per row, in file order."""

    filename: str
    sha256: str
    scores: np.ndarray  # float, in [0, 1]
    labels: np.ndarray  # float, 0.0 or 1.0
    cohorts: list[dict[str, str]]  # cohort column -> value (absent when the cell was blank)
    sites: list[str] | None  # None without a ``site`` column
    occurred: list[datetime] | None  # None without an ``occurred_at`` column

    def __len__(self) -> int:
        return int(self.scores.size)


def file_problem(messages: list[str]) -> ValidationError:
    return ValidationError({"file": messages})


def read_validation_set(*, version: ModelVersion, data: bytes, filename: str) -> ValidationSet:
    """The file as arrays, or ``ValidationError({"file": [every problem]})``."""
    name = Path(filename).name or "validation.csv"
    fmt = FORMATS.get(Path(name).suffix.lower())
    if fmt is None:
        raise file_problem([f"{name}: upload a .csv or .parquet file"])
    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix.lower()) as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            source = open_source(Path(tmp.name), fmt)
        except ImportProblem as exc:
            raise file_problem([str(exc).replace(Path(tmp.name).name, name)]) from exc
        try:
            return _read(source, version, name, hashlib.sha256(data).hexdigest())
        except ImportProblem as exc:
            raise file_problem([str(exc)]) from exc
        finally:
            source.close()


def _read(source: Source, version: ModelVersion, name: str, sha256: str) -> ValidationSet:
    features, cohorts = _spec_of(version)
    header = list(source.header)
    problems = _header_problems([c for c in header if c != TIME_COLUMN], features, cohorts)
    if header.count(TIME_COLUMN) > 1:
        problems.append(f"columns named more than once: {TIME_COLUMN}")
    if problems:
        raise file_problem(problems)
    tally = _Tally()
    scores: list[float] = []
    labels: list[float] = []
    cohort_rows: list[dict[str, str]] = []
    sites: list[str] = []
    occurred: list[datetime] = []
    count = 0
    for row in source.rows():
        count += 1
        if count > MAX_ROWS:
            raise file_problem([f"the file has more than {MAX_ROWS:,} rows; sample it"])
        if row.problem:
            tally.add(f"malformed row ({row.problem})", row.number)
            continue
        cells = row.cells
        _check_features(cells, features, tally, row.number)
        scores.append(_score(cells.get("score"), tally, row.number))
        labels.append(_label(cells.get("label"), tally, row.number))
        cohort_rows.append(cohort_values(cells, cohorts, tally, row.number))
        sites.append(str(cells.get("site") or "").strip())
        if TIME_COLUMN in header:
            occurred.append(_moment(cells.get(TIME_COLUMN), tally, row.number))
    problems = tally.messages() + _size_problems(count, labels)
    if problems:
        raise file_problem(problems)
    return ValidationSet(
        filename=name,
        sha256=sha256,
        scores=np.asarray(scores, dtype=float),
        labels=np.asarray(labels, dtype=float),
        cohorts=cohort_rows,
        sites=sites if "site" in header else None,
        occurred=occurred if TIME_COLUMN in header else None,
    )


def _check_features(cells: Any, features: list[dict[str, Any]], tally: _Tally, number: int) -> None:
    """The same value checks as the reference upload: a validation set is the same kind of
    file, so a value the reference would refuse is refused here too."""
    for f in features:
        raw = cells.get(f["name"])
        if is_missing(raw):
            continue
        value = parse_value(raw, f["dtype"])
        if f["dtype"] == "numeric" and not is_number(value):
            tally.add(f"{f['name']}: not a number", number)
        elif f["dtype"] == "boolean" and not isinstance(value, bool):
            tally.add(f"{f['name']}: not true/false", number)
        elif f["dtype"] == "categorical" and value not in f["categories"]:
            tally.add(f"{f['name']}: {str(value)[:40]!r} is not a declared category", number)


def _score(raw: Any, tally: _Tally, number: int) -> float:
    value = parse_value(raw, "numeric")
    if not is_number(value) or not 0 <= value <= 1:
        tally.add("score: missing or not a number in [0, 1]", number)
        return 0.0
    return float(value)


def _label(raw: Any, tally: _Tally, number: int) -> float:
    value = parse_value(raw, "numeric")
    if isinstance(value, bool) or value in (0, 1):
        return float(value)
    tally.add("label: missing or not 0 or 1", number)
    return 0.0


def _moment(raw: Any, tally: _Tally, number: int) -> datetime:
    """``occurred_at`` as an aware UTC datetime (a date is its midnight UTC)."""
    moment: datetime | None = None
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime(raw.year, raw.month, raw.day, tzinfo=UTC)
    elif isinstance(raw, str) and raw.strip():
        text = raw.strip()
        try:
            moment = parse_datetime(text)
            if moment is None and (day := parse_date(text)) is not None:
                moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        except ValueError:  # well formed but impossible (month 13)
            moment = None
    if moment is None:
        tally.add(f"{TIME_COLUMN}: missing or not an ISO date or datetime", number)
        return datetime.min.replace(tzinfo=UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _size_problems(count: int, labels: list[float]) -> list[str]:
    problems = []
    if count < MIN_ROWS:
        problems.append(f"the file has {count} rows; a validation set needs at least {MIN_ROWS}")
    positives = int(sum(labels))
    negatives = len(labels) - positives
    if count and min(positives, negatives) < MIN_PER_CLASS:
        problems.append(
            f"the labels hold {positives} positive and {negatives} negative cases; a "
            f"validation set needs at least {MIN_PER_CLASS} of each"
        )
    return problems
