"""Importing a batch model's predictions from a CSV or Parquet file, through the gate.

The file is read in chunks (``CHUNK_ROWS``) and each chunk goes through ``gate_predictions``
exactly as the bulk API's items do, so memory stays flat however long the file is. Each row is
shape-checked with the API's rules (``PredictionInSerializer`` is the authority; a fast path
accepts only rows it would accept, see ``_fast_prediction``), then judged and stored by the gate.

Columns:

* ``occurred_at``, ``case_key``, ``score`` (required), ``event_id``, ``confidence``,
  ``version``, ``top_factors`` (a JSON list) (optional);
* every feature named in the feature spec of a version deployed at the site, and every cohort
  column those versions declare;
* anything else is an unexpected feature, stored as a data problem like the API does.

An empty cell is a missing value: the row is sent without that key. Numbers parse as numbers,
``true``/``false`` (any case) as booleans; a categorical feature stays text.

Without an ``event_id`` (column absent, or the cell empty) the row's id is a UUID5 of the model,
the site, the row's ``case_key`` and ``occurred_at`` (as a UTC instant): re-running the same file
stores nothing twice, and two rows with the same case key and time are one prediction.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from django.db import reset_queries
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from monitoring import gate
from monitoring.api.serializers import MAX_FEATURES, PredictionInSerializer

CHUNK_ROWS = 5_000
FORMATS = ("csv", "parquet")
REQUIRED_COLUMNS = ("occurred_at", "case_key", "score")
RESERVED_COLUMNS = frozenset(
    {"event_id", "occurred_at", "case_key", "score", "confidence", "version", "top_factors"}
)
#: The columns that make a row's derived event id (with the model slug and site code).
ROW_KEY = ("case_key", "occurred_at")
#: Fixed forever: changing it would make re-imports of old files store everything again.
EVENT_NAMESPACE = uuid.UUID("0b7c3f0e-6d0a-4c55-9a2e-2f4d8f3b6a10")

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class ImportProblem(Exception):
    """A problem with the whole import (file, header, model, site, service): nothing is read."""


@dataclass(frozen=True)
class Layout:
    """What each column of the file means, from the header and the deployed versions."""

    columns: tuple[str, ...]
    features: Mapping[str, str]  # feature column -> dtype (numeric | categorical | boolean)
    cohorts: frozenset[str]
    unexpected: tuple[str, ...]


@dataclass
class Tally:
    """The import's summary. ``act + deferred + shadow`` rows were stored by this run."""

    rows: int = 0
    act: int = 0
    deferred: int = 0
    shadow: int = 0
    replayed: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # deferral reason codes
    rejections: Counter[str] = field(default_factory=Counter)  # rejection codes

    @property
    def stored(self) -> int:
        return self.act + self.deferred + self.shadow

    def add_answer(self, answer: gate.Answer) -> None:
        if answer.replayed:
            self.replayed += 1
            return
        if answer.action == "act":
            self.act += 1
        elif answer.action == "defer":
            self.deferred += 1
            self.reasons.update(reason["code"] for reason in answer.reasons)
        else:
            self.shadow += 1


@dataclass(frozen=True)
class Progress:
    rows: int
    total_rows: int | None  # known for Parquet
    bytes_read: int
    total_bytes: int
    elapsed: float


@dataclass
class Row:
    number: int  # 1-based data row number (the header is not counted)
    cells: Mapping[str, Any]  # column -> value as read (text for CSV)
    original: Sequence[Any]  # the row as it was in the file, for the rejected-rows file
    problem: str = ""  # a row the reader could not split into the header's columns


# --- Reading ---------------------------------------------------------------------------------


class Source:
    """A file's header and rows (see ``open_source``)."""

    format: str
    header: tuple[str, ...]
    total_rows: int | None = None
    total_bytes: int = 0

    def rows(self) -> Iterator[Row]:
        raise NotImplementedError

    def bytes_read(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _CsvSource(Source):
    format = "csv"

    def __init__(self, path: Path) -> None:
        self._raw = path.open("rb")
        self.total_bytes = path.stat().st_size
        self._text = io.TextIOWrapper(self._raw, encoding="utf-8-sig", newline="")
        self._reader = csv.reader(self._text)
        try:
            first = next(self._reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            self.close()
            raise ImportProblem(f"{path.name}: not a readable UTF-8 CSV file ({exc})") from exc
        if not first:
            self.close()
            raise ImportProblem(f"{path.name}: the file is empty (no header row)")
        self.header = tuple(name.strip() for name in first)

    def rows(self) -> Iterator[Row]:
        width = len(self.header)
        number = 0
        while True:
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                # The reader cannot go on after broken bytes or quoting: a file-level problem.
                raise ImportProblem(f"row {number + 1}: unreadable CSV ({exc})") from exc
            number += 1
            if not cells:
                continue  # blank line
            problem = ""
            if len(cells) != width:
                problem = f"{len(cells)} cells for {width} columns"
                if len(cells) > width:
                    problem += f"; the extra cells: {', '.join(cells[width:])}"
                cells = (cells + [""] * width)[:width]  # the error columns stay in place
            yield Row(number, dict(zip(self.header, cells, strict=True)), cells, problem)

    def bytes_read(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._text.close()


class _ParquetSource(Source):
    format = "parquet"

    def __init__(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            self._file = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise ImportProblem(f"{path.name}: not a readable Parquet file ({exc})") from exc
        schema = self._file.schema_arrow
        self.header = tuple(schema.names)
        self.total_rows = self._file.metadata.num_rows
        self.total_bytes = path.stat().st_size
        self._read = 0
        if "occurred_at" in self.header:
            kind = schema.field("occurred_at").type
            if pa.types.is_timestamp(kind) and kind.tz is None:
                self._file.close()
                raise ImportProblem(
                    "occurred_at is a timestamp without a time zone: write it as UTC "
                    "(a clinical record must not guess which clock it was)"
                )

    def rows(self) -> Iterator[Row]:
        import pyarrow as pa

        number = 0
        batches = self._file.iter_batches(batch_size=CHUNK_ROWS)
        while True:
            try:
                batch = next(batches, None)
            except (OSError, pa.ArrowException) as exc:
                raise ImportProblem(f"after row {number}: unreadable Parquet ({exc})") from exc
            if batch is None:
                return
            for cells in batch.to_pylist():
                number += 1
                yield Row(number, cells, [cells[name] for name in self.header])
            self._read = round(self.total_bytes * number / max(self.total_rows or 1, 1))

    def bytes_read(self) -> int:
        return self._read

    def close(self) -> None:
        self._file.close()


def open_source(path: Path, fmt: str | None) -> Source:
    fmt = fmt or {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(
        path.suffix.lower(), ""
    )
    if fmt not in FORMATS:
        raise ImportProblem(f"{path.name}: say --format csv or --format parquet")
    if not path.is_file():
        raise ImportProblem(f"{path}: no such file")
    try:
        return _CsvSource(path) if fmt == "csv" else _ParquetSource(path)
    except OSError as exc:
        raise ImportProblem(f"{path}: {exc.strerror or exc}") from exc


def layout_for(
    header: Sequence[str], *, features: Mapping[str, str], cohorts: frozenset[str]
) -> Layout:
    """Classify the header's columns; raise ``ImportProblem`` if it cannot be imported."""
    repeated = sorted(name for name, n in Counter(header).items() if n > 1 and name)
    if repeated:
        raise ImportProblem(f"columns named more than once: {', '.join(repeated)}")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ImportProblem(f"the header lacks required column(s): {', '.join(missing)}")
    known = RESERVED_COLUMNS | set(features) | cohorts
    return Layout(
        columns=tuple(header),
        features={name: dtype for name, dtype in features.items() if name in header},
        cohorts=frozenset(name for name in cohorts if name in header),
        unexpected=tuple(name for name in header if name and name not in known),
    )


# --- One row to one prediction ---------------------------------------------------------------


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and math.isnan(value)


def _number(text: str) -> int | float | None:
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        value = float(text)
        return value if math.isfinite(value) else None
    return None


def parse_value(value: Any, dtype: str | None) -> Any:
    """A cell as a feature value: native values pass through; text follows the feature's type
    (``None`` for an unexpected column: number, then true/false, then text)."""
    if isinstance(value, date):  # Parquet dates and times travel as ISO text, as in JSON
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    if dtype == "categorical":
        return text
    if dtype in ("boolean", None) and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if dtype in ("numeric", None):
        number = _number(text)
        if number is not None:
            return number
    return text


def derived_event_id(*, model: str, site: str, case_key: str, occurred_at: str) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, "\x1f".join((model, site, case_key, occurred_at)))


def _key_time(value: Any) -> str:
    """``occurred_at`` as the row key uses it: the UTC instant when it parses, else as given."""
    try:
        moment = value if isinstance(value, datetime) else parse_datetime(str(value).strip())
    except ValueError:  # well formed but impossible (month 13): the row is refused anyway
        moment = None
    if moment is None or moment.tzinfo is None:
        return str(value).strip()
    return moment.astimezone(timezone.get_current_timezone()).isoformat()


def raw_prediction(row: Row, layout: Layout, *, model: str, site: str) -> dict[str, Any]:
    """The row in the API's request shape (what ``PredictionInSerializer`` takes)."""
    cells = row.cells
    raw: dict[str, Any] = {"model": model, "site": site}
    for name in ("occurred_at", "case_key", "score", "confidence", "version"):
        if name in cells and not is_missing(cells[name]):
            value = cells[name]
            raw[name] = value.strip() if isinstance(value, str) else value
    event_id = cells.get("event_id")
    if is_missing(event_id):
        raw["event_id"] = str(
            derived_event_id(
                model=model,
                site=site,
                case_key=str(raw.get("case_key", "")),
                occurred_at=_key_time(raw.get("occurred_at", "")),
            )
        )
    else:
        raw["event_id"] = event_id.strip() if isinstance(event_id, str) else event_id
    top_factors = cells.get("top_factors")
    if not is_missing(top_factors):
        raw["top_factors"] = _json_or_text(top_factors)
    features: dict[str, Any] = {}
    for name, dtype in layout.features.items():
        if not is_missing(cells.get(name)):
            features[name] = parse_value(cells[name], dtype)
    for name in layout.unexpected:
        if not is_missing(cells.get(name)):
            features[name] = parse_value(cells[name], None)
    raw["features"] = features
    raw["cohort"] = {
        name: cells[name].strip() if isinstance(cells[name], str) else cells[name]
        for name in layout.cohorts
        if not is_missing(cells.get(name))
    }
    return raw


def _json_or_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # the serializer says what is wrong with it


def _finite_unit(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, str) and len(value) > 1000:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def _clean_text(value: Any, max_length: int) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or value != value.strip() or not value:
        return None
    if len(value) > max_length or "\x00" in value:
        return None
    if any("\ud800" <= char <= "\udfff" for char in value):
        return None
    return value


def _fast_prediction(raw: Mapping[str, Any]) -> gate.PredictionIn | None:
    """The prediction ``PredictionInSerializer`` would make of ``raw``, for the rows that are
    plainly valid; ``None`` means "ask the serializer" (which also words the errors). It must
    never accept what the serializer refuses: ``tests/monitoring/test_import.py`` checks."""
    try:
        event_id = uuid.UUID(hex=raw["event_id"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    moment = raw.get("occurred_at")
    if isinstance(moment, str):
        try:
            moment = parse_datetime(moment)
        except ValueError:
            return None
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        return None
    case_key = _clean_text(raw.get("case_key"), 200)
    score = _finite_unit(raw.get("score"))
    confidence = raw.get("confidence")
    if confidence is not None:
        confidence = _finite_unit(confidence)
        if confidence is None:
            return None
    version = raw.get("version")
    if version is not None:
        version = _clean_text(version, 40)
        if version is None:
            return None
    features, cohort = raw["features"], raw["cohort"]
    if case_key is None or score is None or len(features) > MAX_FEATURES:
        return None
    top_factors = raw.get("top_factors", [])
    if not isinstance(top_factors, list) or len(top_factors) > 50:
        return None
    if not all(map(_plain_factor, top_factors)):
        return None
    if not all(map(_plain_feature, features.values())):
        return None
    if not all(isinstance(v, str) and _clean_text(v, 100) for v in cohort.values()):
        return None
    return gate.PredictionIn(
        event_id=event_id,
        model=raw["model"],
        site=raw["site"],
        occurred_at=moment.astimezone(timezone.get_current_timezone()),
        case_key=case_key,
        features=features,
        score=score,
        confidence=confidence,
        top_factors=top_factors,
        cohort=cohort,
        version=version,
    )


def _plain_feature(value: Any) -> bool:
    if isinstance(value, bool | int | str):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _plain_factor(value: Any) -> bool:
    """A top factor the fast path vouches for: a scalar, or an object of scalars."""
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and (v is None or _plain_feature(v)) for k, v in value.items()
        )
    return _plain_feature(value)  # a null factor is refused by the API: the serializer words it


def shape_check(raw: Mapping[str, Any]) -> tuple[gate.PredictionIn | None, str]:
    """The prediction, or why the API would refuse this row (as ``field: message`` text)."""
    fast = _fast_prediction(raw)
    if fast is not None:
        return fast, ""
    serializer = PredictionInSerializer(data=dict(raw))
    if serializer.is_valid():
        return serializer.to_prediction(), ""
    return None, flatten_errors(serializer.errors)


def flatten_errors(errors: Any, prefix: str = "") -> str:
    if isinstance(errors, Mapping):
        return "; ".join(
            flatten_errors(value, f"{prefix}{key}." if prefix or key else "")
            for key, value in errors.items()
        )
    if isinstance(errors, list | tuple):
        texts = [flatten_errors(e, prefix) if isinstance(e, Mapping) else str(e) for e in errors]
        label = prefix.rstrip(".")
        return (f"{label}: " if label else "") + " ".join(texts)
    return f"{prefix.rstrip('.')}: {errors}" if prefix else str(errors)


# --- The import ------------------------------------------------------------------------------


class RejectedRows:
    """The rejected-rows file: the original row plus ``error_code`` and ``error``."""

    def __init__(self, stream: IO[str], header: Sequence[str]) -> None:
        self._writer = csv.writer(stream)
        self._writer.writerow([*header, "error_code", "error"])

    def add(self, row: Row, code: str, error: str) -> None:
        self._writer.writerow([*(_as_text(v) for v in row.original), code, error])


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@dataclass
class Importer:
    """Streams rows through the gate for ``account`` at (``model``, ``site``)."""

    account: Any
    model: str
    site: str
    layout: Layout
    rejected: RejectedRows
    tally: Tally = field(default_factory=Tally)
    _rejects: list[tuple[Row, str, str]] = field(default_factory=list)

    def run(
        self,
        source: Source,
        *,
        chunk_rows: int = CHUNK_ROWS,
        progress: Callable[[Progress], None] | None = None,
    ) -> Tally:
        started = time.monotonic()
        chunk: list[Row] = []
        for row in source.rows():
            chunk.append(row)
            if len(chunk) >= chunk_rows:
                self.import_chunk(chunk)
                chunk = []
                if progress:
                    progress(self._progress(source, started))
        if chunk:
            self.import_chunk(chunk)
        if progress:
            progress(self._progress(source, started))
        return self.tally

    def _progress(self, source: Source, started: float) -> Progress:
        return Progress(
            rows=self.tally.rows,
            total_rows=source.total_rows,
            bytes_read=source.bytes_read(),
            total_bytes=source.total_bytes,
            elapsed=time.monotonic() - started,
        )

    def import_chunk(self, rows: Sequence[Row]) -> None:
        self.tally.rows += len(rows)
        ready: list[tuple[Row, gate.PredictionIn]] = []
        for row in rows:
            if row.problem:
                self._reject(row, "malformed_row", row.problem)
                continue
            raw = raw_prediction(row, self.layout, model=self.model, site=self.site)
            prediction, error = shape_check(raw)
            if prediction is None:
                self._reject(row, "invalid", error)
            else:
                ready.append((row, prediction))
        # A repeated event id in one gate call is an error there; sent in a later call it is a
        # replay (or a 409 if the body differs), so repeats wait for the next pass. This keeps
        # the result the same wherever the chunk boundaries fall.
        while ready:
            seen: set[uuid.UUID] = set()
            now, later = [], []
            for pair in ready:
                (later if pair[1].event_id in seen else now).append(pair)
                seen.add(pair[1].event_id)
            self._gate(now)
            ready = later
        self._rejects.sort(key=lambda reject: reject[0].number)  # in the file's order
        for rejected_row, code, error in self._rejects:
            self.rejected.add(rejected_row, code, error)
        self._rejects.clear()
        reset_queries()  # with DEBUG on, Django keeps every query's SQL: keep memory flat

    def _gate(self, pairs: Sequence[tuple[Row, gate.PredictionIn]]) -> None:
        outcomes = gate.gate_predictions(account=self.account, items=[p for _, p in pairs])
        for (row, _), outcome in zip(pairs, outcomes, strict=True):
            if outcome.error is not None:
                self._reject(row, outcome.error.code, flatten_errors(outcome.error.errors))
            else:
                assert outcome.answer is not None
                self.tally.add_answer(outcome.answer)

    def _reject(self, row: Row, code: str, error: str) -> None:
        self.tally.rejected += 1
        self.tally.rejections[code] += 1
        self._rejects.append((row, code, error))


# --- What the command resolves first ---------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The service account, model and site of an import, and the columns they give meaning."""

    account: Any
    model: Any
    site: Any
    features: Mapping[str, str]
    cohorts: frozenset[str]


def target_for(*, model: str, site: str, service: str) -> Target:
    """Resolve the command's names; ``ImportProblem`` says what is wrong with them."""
    from accounts.models import ServiceAccount
    from registry.models import ClinicalModel, CohortColumn, Deployment, FeatureSpec, Site

    found_model = ClinicalModel.objects.filter(slug=model).first()
    if found_model is None:
        raise ImportProblem(f"no model {model!r} is registered")
    found_site = Site.objects.filter(code=site).first()
    if found_site is None:
        raise ImportProblem(f"no site {site!r}")
    account = ServiceAccount.objects.select_related("user").filter(name=service).first()
    if account is None:
        raise ImportProblem(f"no service account {service!r}")
    if not account.user.is_active or not account.may_act_for(model):
        raise ImportProblem(
            f"service account {service} may not log predictions for {model} "
            "(revoked, or its token is scoped to other models)"
        )
    versions = list(
        Deployment.objects.filter(model=found_model, site=found_site)
        .order_by("started_at")
        .values_list("version_id", flat=True)
    )
    if not versions:
        raise ImportProblem(f"{model} has never been deployed at {site}: nothing could be stored")
    # The feature columns of every version deployed there (a file may span a version change);
    # where versions disagree on a type, the latest deployed one's wins.
    specs = FeatureSpec.objects.filter(version_id__in=versions).values_list(
        "version_id", "name", "dtype"
    )
    order = {version_id: index for index, version_id in enumerate(versions)}
    features = {name: dtype for _, name, dtype in sorted(specs, key=lambda s: order[s[0]])}
    cohorts = frozenset(
        CohortColumn.objects.filter(version_id__in=versions).values_list("name", flat=True)
    )
    return Target(account, found_model, found_site, features, cohorts)


def record_import(
    *, target: Target, path: Path, fmt: str, tally: Tally, via: str, stopped: str = ""
) -> None:
    """One audit event per import run: what was read and what became of it (counts only);
    ``stopped`` says why a run ended before the end of the file."""
    from governance.audit.services import record

    record(
        actor=target.account.user,
        action="predictions.import",
        target=target.model,
        summary=(
            f"Imported {path.name} for {target.model.slug} at {target.site.code}: "
            f"{tally.stored} stored, {tally.replayed} replayed, {tally.rejected} rejected"
            + (" (stopped early)" if stopped else "")
        ),
        payload={
            "via": via,
            "file": path.name,
            "format": fmt,
            "site": target.site.code,
            "rows": tally.rows,
            "act": tally.act,
            "deferred": tally.deferred,
            "shadow": tally.shadow,
            "replayed": tally.replayed,
            "rejected": tally.rejected,
            "deferral_reasons": dict(sorted(tally.reasons.items())),
            "rejections": dict(sorted(tally.rejections.items())),
            "stopped": stopped,
        },
    )
