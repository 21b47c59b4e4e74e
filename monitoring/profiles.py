"""Daily profiles: building a (version, day)'s aggregates from its events, idempotently.

``build_day`` reads the day's prediction events with their effective outcome, override and
review (four queries; JSON columns are read as text and decoded in one pass), bins them on the
version's reference profile per slice (``monitoring.profile_data``), and replaces the day's
rows in one short transaction with its audit event. Rebuilding from the same events gives rows
with the same ``content_hash``. A late outcome, override or review marks its event's day stale
(``mark_stale``); beat and ``evaluate_monitors`` rebuild stale days.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import orjson
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from accounts.permissions import require_perms
from governance.audit.services import record
from monitoring import profile_data
from monitoring.models import (
    DailyProfile,
    Outcome,
    Override,
    PredictionEvent,
    ReferenceProfile,
    ReviewCase,
    StaleDay,
)
from registry.models import ModelVersion, Site

log = logging.getLogger(__name__)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def reference_in_force(version_id: int) -> ReferenceProfile | None:
    return ReferenceProfile.objects.filter(version_id=version_id).order_by("-number").first()


def feature_bins(reference: ReferenceProfile) -> list[profile_data.FeatureBins]:
    return [profile_data.FeatureBins.from_dict(n, d) for n, d in reference.bins.items()]


def cohort_columns(version: ModelVersion) -> dict[str, list[str]]:
    return {c.name: list(c.values or []) for c in version.cohorts.all()}


# --- reading a day ------------------------------------------------------------------------------


def _decode(texts: list[str | None]) -> list[Any]:
    """Decode many JSON texts in one call (much faster than one ``json.loads`` per row)."""
    if not texts:
        return []
    return orjson.loads("[" + ",".join(t if t is not None else "null" for t in texts) + "]")


#: Events read and binned at a time: a day of any size is built in flat memory, since the
#: chunks' profiles add.
CHUNK = 50_000


def read_day(version_id: int, day: date, chunk: int | None = None) -> Iterator[profile_data.Batch]:
    """The day's events of a version, column-wise, in chunks of ``chunk`` events, with their
    effective outcome, override and review joined.

    On PostgreSQL outside a transaction (a Celery worker) the next chunk is read on a second
    connection in a thread while the caller bins the current one: the database serialises the
    events' JSON on its own core meanwhile. Inside a transaction the chunks are read in line,
    so the reads see the transaction's own rows."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        yield from _prefetched(lambda: _read_chunks(version_id, day, chunk))
    else:
        yield from _read_chunks(version_id, day, chunk)


_DONE = object()


def _prefetched(produce: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    """Run the ``produce`` generator in a thread, one item ahead of the consumer."""
    items: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in produce():
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            items.put(exc)
        finally:
            connections.close_all()  # this thread's own connections

    thread = threading.Thread(target=work, name="vigil-read-day", daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _read_chunks(version_id: int, day: date, chunk: int | None) -> Iterator[profile_data.Batch]:
    start, end = day_bounds(day)
    table = PredictionEvent._meta.db_table
    epoch = (
        "EXTRACT(EPOCH FROM occurred_at)"
        if connection.vendor == "postgresql"
        else "(julianday(occurred_at) - 2440587.5) * 86400.0"
    )
    sql = (
        f"SELECT id, site_id, CAST(features AS TEXT), score, CAST(cohort AS TEXT), action, "
        f"CAST(problems AS TEXT), {epoch} FROM {table} "
        f"WHERE version_id = %s AND occurred_at >= %s AND occurred_at < %s ORDER BY id"
    )
    site_codes = dict(Site.objects.values_list("pk", "code"))
    with connection.chunked_cursor() as cursor:
        # Adapted as the ORM adapts them, so this query and the joins below agree on which
        # events fall in the day (SQLite compares stored text).
        adapt = connection.ops.adapt_datetimefield_value
        cursor.execute(sql, [version_id, adapt(start), adapt(end)])
        while rows := cursor.fetchmany(chunk or CHUNK):
            yield _batch(rows, version_id, start, end, site_codes)


def _batch(
    rows: list[tuple[Any, ...]], version_id: int, start: datetime, end: datetime, sites: dict
) -> profile_data.Batch:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    position = {int(pk): i for i, pk in enumerate(ids)}
    labels = np.full(len(rows), np.nan)
    # The chunk is every event of the (version, day) with an id in [first, last].
    between = {
        "event__version_id": version_id,
        "event__occurred_at__gte": start,
        "event__occurred_at__lt": end,
        "event_id__gte": int(ids[0]),
        "event_id__lte": int(ids[-1]),
    }
    # The effective outcome is the one no later row corrects.
    for event_id, label in Outcome.objects.filter(**between, corrected_by__isnull=True).values_list(
        "event_id", "label"
    ):
        labels[position[event_id]] = label
    overridden = np.zeros(len(rows), dtype=bool)
    for event_id in Override.objects.filter(**between).values_list("event_id", flat=True):
        overridden[position[event_id]] = True
    tta = np.full(len(rows), np.nan)
    for event_id, opened, decided in ReviewCase.objects.filter(
        **between, decided_at__isnull=False
    ).values_list("event_id", "opened_at", "decided_at"):
        tta[position[event_id]] = max((decided - opened).total_seconds(), 0.0)
    return profile_data.Batch(
        features=_decode([r[2] for r in rows]),
        scores=np.fromiter((r[3] for r in rows), dtype=float, count=len(rows)),
        labels=labels,
        cohorts=[c or {} for c in _decode([r[4] for r in rows])],
        sites=[sites[r[1]] for r in rows],
        occurred_epoch=np.fromiter((float(r[7]) for r in rows), dtype=float, count=len(rows)),
        actions=[r[5] for r in rows],
        unexpected=np.array([bool(r[6]) and '"unexpected_feature"' in r[6] for r in rows]),
        wrong_type=np.array([bool(r[6]) and '"wrong_type"' in r[6] for r in rows], dtype=bool),
        overridden=overridden,
        tta_seconds=tta,
    )


def profile_day(version: ModelVersion, reference: ReferenceProfile, day: date) -> dict[str, Any]:
    """Every slice's profile of the (version, day): the sum of its chunks' profiles."""
    bins = feature_bins(reference)
    columns = cohort_columns(version)
    parts: dict[str, list[dict[str, Any]]] = {}
    for batch in read_day(version.pk, day):
        chunk = profile_data.profile_of(batch, bins, profile_data.slices_of(batch, columns))
        for key, data in chunk.items():
            parts.setdefault(key, []).append(data)
    if not parts:
        return {"all": profile_data.empty_profile(bins)}
    return {key: profile_data.merge(datas) for key, datas in sorted(parts.items())}


# --- building ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    version_id: int
    day: date
    events: int
    slices: int
    changed: bool
    skipped: str = ""


def content_hash(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def past_retention(day: date) -> bool:
    """The retention purge (``governance.retention``) may have deleted some or all of this
    day's events: its stored profiles are the only record left, so it is never rebuilt."""
    keep = timedelta(days=settings.VIGIL_RETENTION_DAYS["prediction_event"])
    return day <= (datetime.now(UTC) - keep).date()


def build_day(*, actor: Any, version: ModelVersion, day: date) -> Built:
    """Replace the (version, day)'s daily profiles with ones built from its events now."""
    require_perms(actor, "monitoring.run_evaluation")
    if past_retention(day):
        return Built(version.pk, day, 0, 0, False, skipped="past retention: profiles kept as built")
    reference = reference_in_force(version.pk)
    if reference is None:
        return Built(version.pk, day, 0, 0, False, skipped="no reference profile uploaded")
    # Anything marked stale after this moment (a late event, outcome or review arriving while
    # the day is read) may be missing from what is read: its mark must survive this build.
    started = timezone.now()
    profiles = profile_day(version, reference, day)
    events = profiles["all"]["n"]
    site_ids = {s.code: s.pk for s in Site.objects.all()}
    rows = [
        DailyProfile(
            version=version,
            reference=reference,
            day=day,
            slice_key=key,
            site_id=site_ids.get(key.partition("=")[2]) if key.startswith("site=") else None,
            n_events=data["n"],
            data=data,
            content_hash=content_hash(data),
        )
        for key, data in profiles.items()
    ]
    digest = content_hash(sorted((r.slice_key, r.content_hash) for r in rows))
    with transaction.atomic():
        before = list(
            DailyProfile.objects.filter(version=version, day=day).values_list(
                "slice_key", "content_hash"
            )
        )
        changed = content_hash(sorted(before)) != digest
        DailyProfile.objects.filter(version=version, day=day).delete()
        DailyProfile.objects.bulk_create(rows)
        StaleDay.objects.filter(version=version, day=day, marked_at__lte=started).delete()
        record(
            actor=actor,
            action="monitoring.profile_built",
            summary=f"Built the {day} profiles of {version}: {events} events, "
            f"{len(rows)} slices" + ("" if changed or not before else " (unchanged)"),
            target=version,
            payload={
                "day": day.isoformat(),
                "events": events,
                "slices": len(rows),
                "reference": reference.number,
                "digest": digest,
            },
        )
    return Built(version.pk, day, events, len(rows), changed)


def mark_stale(events: Iterable[tuple[int, datetime]], reason: str) -> int:
    """Mark the days of ``events`` ((version id, occurred_at) pairs) for a rebuild: something
    their profiles count has changed. A day being built right now, or not built yet, is marked
    too, and an existing mark is renewed: a build removes only the marks older than its start,
    so nothing that arrives during a build is lost. Returns how many days were newly marked."""
    days = {(version_id, moment.astimezone(UTC).date()) for version_id, moment in events}
    marked = 0
    now = timezone.now()
    for version_id, day in sorted(days):
        mark, created = StaleDay.objects.get_or_create(
            version_id=version_id, day=day, defaults={"reason": reason[:60], "marked_at": now}
        )
        if not created:
            StaleDay.objects.filter(pk=mark.pk).update(marked_at=now, reason=reason[:60])
        marked += created
    return marked


def days_to_build(version: ModelVersion, *, until: date, lookback_days: int) -> list[date]:
    """Days of ``version`` in the lookback that have events but no profile, or are stale."""
    first = until - timedelta(days=lookback_days - 1)
    built = set(
        DailyProfile.objects.filter(
            version=version, slice_key="all", day__range=(first, until)
        ).values_list("day", flat=True)
    )
    stale = set(
        StaleDay.objects.filter(version=version, day__range=(first, until)).values_list(
            "day", flat=True
        )
    )
    # One index seek per day (not a scan of the window's events).
    with_events = set()
    day = first
    while day <= until:
        start, end = day_bounds(day)
        if PredictionEvent.objects.filter(
            version=version, occurred_at__gte=start, occurred_at__lt=end
        ).exists():
            with_events.add(day)
        day += timedelta(days=1)
    # Today is always rebuilt: its events are still arriving.
    today = {until} if until in with_events and until >= datetime.now(UTC).date() else set()
    return sorted(d for d in (with_events - built) | stale | today if not past_retention(d))
