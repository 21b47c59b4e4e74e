"""Audit trail exports: filtered, streamed, each with a manifest and recorded in the trail.

Three formats share one filter and one manifest:

* **JSON Lines** (``jsonl``), the verifiable one. Line 1 is a header (format, filters, the
  exported range of ``seq``, the chain head at export time). Then one line per event of the
  range in ``seq`` order: the full hashed content plus ``hash`` for events inside the filter,
  and a hash-only link ``{"type": "link", "seq", "prev_hash", "hash"}`` for events outside it,
  so ``tools/verify_audit_export.py`` can walk the chain end to end without seeing other
  records. The last line is the manifest: rows, links, first/last event hash and the sha256 of
  every byte before the manifest line.
* **CSV**: the events inside the filter only (for spreadsheets), then one ``manifest`` row.
* **PDF** (``export_pdf``): for people; filters, a table of events, the manifest.

Filtering by model (the rule, also in docs/audit-exports.md). An event belongs to model ``M``
when its payload names it (``payload.model == M``; ``model.register`` names it as
``payload.slug``), or when it targets a record (``object_type`` + ``object_id``) that some
event naming ``M`` targets. Services name the model when a record is created (version,
deployment, release, review case, ...), so later events about that record (a version's
transition, a deployment's freeze, a release's signatures) belong to it too, without the
audit app importing the registry.

The range of an export is from the first to the last event inside the filter, so a filter
with no other restriction starts at ``seq`` 1 and the verifier also checks the genesis link.
Nothing is built in memory: rows come from ``.iterator()`` and leave as bytes at once.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.utils import timezone

from governance.audit import chain
from governance.audit.models import AuditEvent, ChainHead
from governance.audit.services import record

FORMAT_NAME = "vigil.audit-export"
FORMAT_VERSION = 1
EXPORT_PERMISSION = "audit.export_auditevent"
CHUNK_SIZE = 2000
#: Lines are gathered into blocks of about this many bytes before leaving, so a million
#: events are not a million tiny writes (or HTTP chunks).
BLOCK_BYTES = 64 * 1024
MODEL_OBJECT_TYPE = "registry.clinicalmodel"
MEDIA_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "pdf": "application/pdf",
}
CSV_COLUMNS = (
    "record",
    "seq",
    "occurred_at",
    "actor",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "summary",
    "payload",
    "prev_hash",
    "hash",
)
# A cell starting with one of these is a formula to a spreadsheet (a failed login's username is
# typed by anyone): CSV cells get a leading apostrophe. JSON Lines keeps the exact text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ExportFilters:
    """What to export. ``until`` is exclusive; empty strings and ``None`` mean "any"."""

    model: str = ""
    since: datetime | None = None
    until: datetime | None = None
    actor: str = ""
    action: str = ""

    def __post_init__(self) -> None:
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise ValidationError("Export time bounds must be timezone-aware.")
        if self.since and self.until and self.since >= self.until:
            raise ValidationError({"until": "The end of the time range must be after its start."})

    def as_dict(self) -> dict[str, str | None]:
        """JSON-ready, with times in the chain's canonical form."""
        return {
            "model": self.model or None,
            "since": chain.canonical_time(self.since) if self.since else None,
            "until": chain.canonical_time(self.until) if self.until else None,
            "actor": self.actor or None,
            "action": self.action or None,
        }

    def describe(self) -> str:
        parts = [f"{key}={value}" for key, value in self.as_dict().items() if value]
        return ", ".join(parts) or "all events"


def parse_bound(value: str, *, end: bool = False) -> datetime | None:
    """``YYYY-MM-DD`` (a whole UTC day: an ``end`` bound includes that day) or an ISO 8601
    time with an offset. Empty means no bound."""
    value = value.strip()
    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError(f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 time.") from exc
    if moment.tzinfo is None:
        raise ValidationError(f"{value!r} needs a UTC offset, e.g. {value}+00:00.")
    return moment


def model_q(slug: str) -> Q:
    """The events of model ``slug`` (the rule in the module docstring).

    The "record that an event naming the model targets" half is a correlated ``EXISTS`` on the
    (object_type, object_id) index, not a list of ids gathered first: a model with a million
    review cases must not become a million-item ``IN`` list in memory.
    """
    names_model = Q(payload__model=slug) | Q(object_type=MODEL_OBJECT_TYPE, payload__slug=slug)
    same_record_named = AuditEvent.objects.filter(
        names_model, object_type=OuterRef("object_type"), object_id=OuterRef("object_id")
    )
    return names_model | (~Q(object_type="") & Q(Exists(same_record_named)))


def filter_q(filters: ExportFilters) -> Q:
    match = Q()
    if filters.model:
        match &= model_q(filters.model)
    if filters.since:
        match &= Q(occurred_at__gte=filters.since)
    if filters.until:
        match &= Q(occurred_at__lt=filters.until)
    if filters.actor:
        by_actor = Q(actor_label=filters.actor)
        if filters.actor.isdigit():
            by_actor |= Q(actor_id=int(filters.actor))
        match &= by_actor
    if filters.action.endswith("*"):
        match &= Q(action__startswith=filters.action[:-1])
    elif filters.action:
        match &= Q(action=filters.action)
    return match


@dataclass(frozen=True)
class ExportPlan:
    """The filter resolved against the trail once, at the start: later appends (including this
    export's own event) fall outside the fixed range, so the file is a consistent snapshot."""

    filters: ExportFilters
    match: Q
    first_seq: int | None
    last_seq: int | None
    head_seq: int
    head_hash: str
    generated_at: datetime

    def in_range(self) -> QuerySet[AuditEvent]:
        """Every event of the range, each annotated with ``in_filter``."""
        if self.first_seq is None:
            return AuditEvent.objects.none()
        inside = ExpressionWrapper(self.match, output_field=BooleanField()) if self.match else None
        return (
            AuditEvent.objects.filter(seq__gte=self.first_seq, seq__lte=self.last_seq)
            .annotate(in_filter=inside if inside is not None else Value(True))
            .order_by("seq")
        )

    def matching(self) -> QuerySet[AuditEvent]:
        """Only the events inside the filter (CSV and PDF carry no links)."""
        if self.first_seq is None:
            return AuditEvent.objects.none()
        return AuditEvent.objects.filter(
            self.match, seq__gte=self.first_seq, seq__lte=self.last_seq
        ).order_by("seq")

    def header(self, fmt: str, actor_label: str) -> dict[str, Any]:
        return {
            "type": "header",
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "export_format": fmt,
            "generated_at": chain.canonical_time(self.generated_at),
            "generated_by": actor_label,
            "filters": self.filters.as_dict(),
            "range": {"first_seq": self.first_seq, "last_seq": self.last_seq},
            "chain_head": {"seq": self.head_seq, "hash": self.head_hash},
        }


def plan_export(filters: ExportFilters) -> ExportPlan:
    head = ChainHead.objects.filter(id=1).first()
    head_seq = head.seq if head else 0
    match = filter_q(filters)
    bounds = AuditEvent.objects.filter(match, seq__lte=head_seq).aggregate(
        first=Min("seq"), last=Max("seq")
    )
    return ExportPlan(
        filters=filters,
        match=match,
        first_seq=bounds["first"],
        last_seq=bounds["last"],
        head_seq=head_seq,
        head_hash=head.hash if head else chain.GENESIS_HASH,
        generated_at=timezone.now(),
    )


@dataclass
class Manifest:
    """Counted while the rows stream; complete once the last row has left."""

    filters: dict[str, str | None]
    export_format: str
    first_seq: int | None = None
    last_seq: int | None = None
    rows: int = 0
    links: int = 0
    first_event_hash: str | None = None
    last_event_hash: str | None = None
    sha256: str = ""
    file_sha256: str = ""
    completed: bool = False
    _body: Any = field(default_factory=hashlib.sha256, repr=False)
    _file: Any = field(default_factory=hashlib.sha256, repr=False)

    def count_event(self, event: AuditEvent) -> None:
        self.rows += 1
        self.first_event_hash = self.first_event_hash or event.hash
        self.last_event_hash = event.hash

    def body(self, data: bytes) -> bytes:
        """Bytes before the manifest: covered by ``sha256`` and ``file_sha256``."""
        self._body.update(data)
        self._file.update(data)
        return data

    def trailer(self, data: bytes) -> bytes:
        """The manifest itself: covered by ``file_sha256`` only."""
        self._file.update(data)
        return data

    def seal(self) -> None:
        self.sha256 = self._body.hexdigest()

    def finish(self) -> None:
        self.file_sha256 = self._file.hexdigest()
        self.completed = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "manifest",
            "export_format": self.export_format,
            "filters": self.filters,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "rows": self.rows,
            "links": self.links,
            "first_event_hash": self.first_event_hash,
            "last_event_hash": self.last_event_hash,
            "sha256": self.sha256,
        }


def _blocks(lines: Iterator[bytes]) -> Iterator[bytes]:
    buffer: list[bytes] = []
    size = 0
    for line in lines:
        buffer.append(line)
        size += len(line)
        if size >= BLOCK_BYTES:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def _line(content: dict[str, Any]) -> bytes:
    return chain.canonical_json(content) + b"\n"


def _jsonl_lines(plan: ExportPlan, manifest: Manifest, actor_label: str) -> Iterator[bytes]:
    yield manifest.body(_line(plan.header("jsonl", actor_label)))
    for event in plan.in_range().iterator(chunk_size=CHUNK_SIZE):
        if event.in_filter:
            manifest.count_event(event)
            line = {"type": "event", **event.content(), "hash": event.hash}
        else:
            manifest.links += 1
            line = {"type": "link", "seq": event.seq, "prev_hash": event.prev_hash,
                    "hash": event.hash}  # fmt: skip
        yield manifest.body(_line(line))
    manifest.seal()
    yield manifest.trailer(_line(manifest.as_dict()))


def _csv_cell(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_lines(plan: ExportPlan, manifest: Manifest) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def row(cells: list[Any]) -> bytes:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_csv_cell(cell) for cell in cells])
        return buffer.getvalue().encode("utf-8")

    yield manifest.body(row(list(CSV_COLUMNS)))
    for event in plan.matching().iterator(chunk_size=CHUNK_SIZE):
        manifest.count_event(event)
        content = event.content()
        content["payload"] = chain.canonical_json(event.payload).decode("utf-8")
        yield manifest.body(row(["event", *(content[c] for c in CSV_COLUMNS[1:-1]), event.hash]))
    manifest.seal()
    trailer = chain.canonical_json(manifest.as_dict()).decode("utf-8")
    yield manifest.trailer(row(["manifest", *[""] * 8, trailer, "", ""]))


def check_export_permission(actor: Any) -> None:
    """``None`` is the system (``manage.py export_audit`` run on the server)."""
    if actor is not None and not actor.has_perm(EXPORT_PERMISSION):
        raise PermissionDenied("Your role does not allow exporting the audit trail.")


def _actor_label(actor: Any) -> str:
    if actor is not None and actor.is_authenticated:
        return str(actor.get_username())
    return "system"


def record_export(*, actor: Any, manifest: Manifest) -> AuditEvent:
    """The export's own audit event, appended once the file's sha256 is known."""
    state = "Exported" if manifest.completed else "Aborted export of"
    return record(
        actor=actor,
        action="audit.export",
        summary=(
            f"{state} {manifest.rows} audit event{'s' if manifest.rows != 1 else ''} "
            f"as {manifest.export_format.upper()} ({_describe(manifest.filters)})"
        ),
        payload={
            "format": manifest.export_format,
            "filters": manifest.filters,
            "rows": manifest.rows,
            "links": manifest.links,
            "first_seq": manifest.first_seq,
            "last_seq": manifest.last_seq,
            "first_event_hash": manifest.first_event_hash,
            "last_event_hash": manifest.last_event_hash,
            "sha256": manifest.sha256,
            "file_sha256": manifest.file_sha256,
            "completed": manifest.completed,
        },
    )


def _describe(filters: dict[str, str | None]) -> str:
    return ", ".join(f"{k}={v}" for k, v in filters.items() if v) or "all events"


class AuditExport:
    """An export in progress: iterate it for the file's byte blocks (``StreamingHttpResponse``
    does); ``close()`` stops it early. ``event`` is the ``audit.export`` event once recorded."""

    def __init__(self, blocks: Iterator[bytes], actor: Any, manifest: Manifest) -> None:
        self.manifest = manifest
        self.event: AuditEvent | None = None
        self._actor = actor
        self._run = self._recorded(blocks)

    def __iter__(self) -> Iterator[bytes]:
        return self._run

    def close(self) -> None:
        self._run.close()

    def _recorded(self, blocks: Iterator[bytes]) -> Iterator[bytes]:
        try:
            yield from blocks
        except GeneratorExit:
            # The download was cut short: what left is recorded, flagged as not completed.
            self.event = record_export(actor=self._actor, manifest=self.manifest)
            raise
        self.manifest.finish()
        self.event = record_export(actor=self._actor, manifest=self.manifest)


def audit_export(*, actor: Any, filters: ExportFilters, fmt: str) -> AuditExport:
    """Check the permission now, then return the export, to be streamed by the caller.

    The ``audit.export`` event is appended when the stream is exhausted (the sha256 exists only
    then), or flagged as aborted if the consumer stops early (a closed download). A first pass
    to learn the sha256 would read the whole range twice for nothing: the range is fixed by
    ``seq`` and events never change, so one pass gives the same file.
    """
    check_export_permission(actor)
    if fmt not in MEDIA_TYPES:
        raise ValidationError({"format": f"Choose one of {', '.join(MEDIA_TYPES)}."})
    plan = plan_export(filters)
    manifest = Manifest(
        filters=filters.as_dict(),
        export_format=fmt,
        first_seq=plan.first_seq,
        last_seq=plan.last_seq,
    )
    return AuditExport(_stream(plan, manifest, fmt, _actor_label(actor)), actor, manifest)


def _stream(plan: ExportPlan, manifest: Manifest, fmt: str, actor_label: str) -> Iterator[bytes]:
    if fmt == "jsonl":
        return _blocks(_jsonl_lines(plan, manifest, actor_label))
    if fmt == "csv":
        return _blocks(_csv_lines(plan, manifest))
    from governance.audit.export_pdf import pdf_blocks  # reportlab only when a PDF is asked

    return pdf_blocks(plan, manifest, actor_label)
