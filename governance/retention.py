"""Retention: prediction events past their period are purged, unless a legal hold keeps them.

``purge_due`` deletes the events whose ``occurred_at`` is older than
``VIGIL_RETENTION_DAYS["prediction_event"]`` and that no active ``LegalHold`` covers, together
with their outcomes, overrides and review cases (facts about that event which cannot outlive
it), in chunks of one transaction each. Daily profiles, metric results, alerts, incidents and
the audit trail are aggregates or governance records: the purge never touches them, and
``monitoring.profiles`` never rebuilds a day past retention (a rebuild would find the events
gone and replace the aggregates with an empty profile).

Deletes are raw SQL (no per-row signals, no rows held in memory). Every other path that tries
to delete an event or its dependents through the ORM is refused by ``refuse_orm_delete`` once
``connect_delete_guard`` has been called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.db.models.signals import pre_delete
from django.utils import timezone

from accounts.permissions import require_perms
from governance.audit.models import AuditEvent
from governance.audit.services import record
from governance.models import LegalHold
from monitoring.models import Outcome, Override, PredictionEvent, ReviewCase
from registry.models import ClinicalModel, Site

MANAGE = "governance.manage_legal_hold"
PURGE_ACTION = "retention.purge"

#: The relations the purge deletes along with an event: (model label, field name).
DEPENDENTS = frozenset(
    {
        ("monitoring.Outcome", "event"),
        ("monitoring.Override", "event"),
        ("monitoring.ReviewCase", "event"),
        ("monitoring.Outcome", "corrects"),
    }
)


# --- legal holds ----------------------------------------------------------------------------


def _reason(text: str, field_name: str) -> str:
    text = (text or "").strip()
    if len(text) < 10:
        raise ValidationError(
            {field_name: "State the reason (at least 10 characters): it goes on the record."}
        )
    return text[:500]


@transaction.atomic
def hold_place(
    *, actor: Any, model: ClinicalModel | None, site: Site | None, reason: str
) -> LegalHold:
    """Keep the events of ``model`` (``None``: every model) at ``site`` (``None``: every site)
    past retention until the hold is released."""
    require_perms(actor, MANAGE)
    reason = _reason(reason, "reason")
    if LegalHold.objects.filter(model=model, site=site, released_at__isnull=True).exists():
        raise ValidationError({"model": "An active legal hold already covers this scope."})
    hold = LegalHold.objects.create(model=model, site=site, reason=reason, placed_by=actor)
    record(
        actor=actor,
        action="retention.hold_placed",
        target=hold,
        summary=f"Legal hold placed on {hold.scope}: {reason}",
        payload={
            "hold": hold.pk,
            "model": model.slug if model else None,
            "site": site.code if site else None,
        },
    )
    return hold


@transaction.atomic
def hold_release(*, actor: Any, hold: LegalHold, reason: str) -> LegalHold:
    """End a hold: from the next purge, its events are deleted if past retention."""
    require_perms(actor, MANAGE)
    reason = _reason(reason, "release_reason")
    hold = LegalHold.objects.select_for_update().get(pk=hold.pk)
    if not hold.is_active:
        raise ValidationError({"release_reason": "This legal hold is already released."})
    hold.released_by, hold.released_at, hold.release_reason = actor, timezone.now(), reason
    hold.save(update_fields=["released_by", "released_at", "release_reason"])
    record(
        actor=actor,
        action="retention.hold_released",
        target=hold,
        summary=f"Legal hold on {hold.scope} released: {reason}",
        payload={"hold": hold.pk},
    )
    return hold


def active_holds() -> list[LegalHold]:
    return list(LegalHold.objects.filter(released_at__isnull=True).select_related("model", "site"))


def _held(holds: list[LegalHold]) -> Q:
    """Events any of ``holds`` covers. (An empty ``Q()`` would vanish from an OR: a hold on
    everything is spelled as a condition every event meets.)"""
    covered = Q(pk__in=[])
    for hold in holds:
        scope = Q(pk__isnull=False)
        if hold.model_id is not None:
            scope &= Q(model_id=hold.model_id)
        if hold.site_id is not None:
            scope &= Q(site_id=hold.site_id)
        covered |= scope
    return covered


# --- the purge ------------------------------------------------------------------------------


def periods() -> dict[str, int]:
    return dict(settings.VIGIL_RETENTION_DAYS)


def cutoff_of(now: datetime | None = None) -> datetime:
    """Events that occurred before this moment are past retention."""
    keep = timedelta(days=settings.VIGIL_RETENTION_DAYS["prediction_event"])
    return (now or timezone.now()) - keep


@dataclass
class PurgeReport:
    """What one purge run deleted (or, in a dry run, would delete). Counts only."""

    cutoff: datetime
    dry_run: bool
    deleted: dict[str, int] = field(
        default_factory=lambda: {"prediction_event": 0, "outcome": 0, "override": 0,
                                 "review_case": 0}
    )  # fmt: skip
    held_events: int = 0
    holds: list[int] = field(default_factory=list)
    kept_referenced: int = 0
    chunks: int = 0

    def payload(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "retention_days": settings.VIGIL_RETENTION_DAYS["prediction_event"],
            "deleted": dict(self.deleted),
            "held_events": self.held_events,
            "holds": sorted(self.holds),
            "kept_referenced": self.kept_referenced,
            "chunks": self.chunks,
        }


def _unknown_references() -> Q:
    """Events some record outside ``DEPENDENTS`` refers to (an access log naming a review case,
    say). The purge keeps them rather than delete that record or fail on it."""
    kept = Q(pk__in=[])
    lookups = {
        PredictionEvent: "pk__in",
        Outcome: "outcomes__pk__in",
        Override: "overrides__pk__in",
        ReviewCase: "review__pk__in",
    }
    for model, lookup in lookups.items():
        for relation in model._meta.related_objects:
            if (relation.related_model._meta.label, relation.field.name) in DEPENDENTS:
                continue
            column = relation.field.attname
            referring = relation.related_model._base_manager.filter(
                **{f"{column}__isnull": False}  # NOT IN over a NULL would keep nothing
            ).values(column)
            kept |= Q(**{lookup: referring})
    return kept


def _expired(cutoff: datetime) -> models.QuerySet[PredictionEvent]:
    return PredictionEvent.objects.filter(occurred_at__lt=cutoff)


def _raw_delete(queryset: models.QuerySet[Any]) -> int:
    # One DELETE statement, no per-row signals or Python objects. The foreign keys are checked
    # by the database (deferred to commit), so the chunk is all-or-nothing.
    return queryset._raw_delete(queryset.db)


def _delete_chunk(ids: list[int]) -> dict[str, int]:
    history = ReviewCase.history.model._default_manager  # type: ignore[attr-defined]
    counts = {
        "outcome": _raw_delete(Outcome.objects.filter(event_id__in=ids)),
        "override": _raw_delete(Override.objects.filter(event_id__in=ids)),
        "review_case": _raw_delete(ReviewCase.objects.filter(event_id__in=ids)),
    }
    # The case's earlier versions hold the clinician's note and decision about this patient's
    # case: they go with it. The audit trail keeps that the review happened (ids only).
    _raw_delete(history.filter(event_id__in=ids))
    counts["prediction_event"] = _raw_delete(PredictionEvent.objects.filter(pk__in=ids))
    return counts


def _dry_counts(candidates: models.QuerySet[PredictionEvent]) -> dict[str, int]:
    return {
        "prediction_event": candidates.count(),
        "outcome": Outcome.objects.filter(event__in=candidates).count(),
        "override": Override.objects.filter(event__in=candidates).count(),
        "review_case": ReviewCase.objects.filter(event__in=candidates).count(),
    }


def purge_due(
    *, actor: Any = None, now: datetime | None = None, dry_run: bool = False, chunk: int = 0
) -> PurgeReport:
    """Delete the prediction events past retention that no active legal hold covers, with
    their dependents, ``chunk`` events per transaction; then append one audit event with the
    counts. Holds are re-read for every chunk, so a hold placed mid-run takes effect at the
    next chunk. A dry run counts and changes nothing (no audit event either)."""
    require_perms(actor, MANAGE)
    chunk = chunk or settings.VIGIL_RETENTION_PURGE_CHUNK
    report = PurgeReport(cutoff=cutoff_of(now), dry_run=dry_run)
    holds = active_holds()
    report.holds = [h.pk for h in holds]
    report.held_events = _expired(report.cutoff).filter(_held(holds)).count()
    unknown = _unknown_references()
    report.kept_referenced = _expired(report.cutoff).exclude(_held(holds)).filter(unknown).count()
    if dry_run:
        candidates = _expired(report.cutoff).exclude(_held(holds)).exclude(unknown)
        report.deleted = _dry_counts(candidates)
        return report
    while True:
        with transaction.atomic():
            holds = active_holds()
            report.holds = sorted(set(report.holds) | {h.pk for h in holds})
            candidates = _expired(report.cutoff).exclude(_held(holds)).exclude(unknown)
            ids = list(candidates.order_by("pk").values_list("pk", flat=True)[:chunk])
            if not ids:
                break
            for kind, n in _delete_chunk(ids).items():
                report.deleted[kind] += n
            report.chunks += 1
    _record(actor, report)
    return report


def _record(actor: Any, report: PurgeReport) -> None:
    d = report.deleted
    record(
        actor=actor,
        action=PURGE_ACTION,
        object_type="governance.retention",
        summary=(
            f"Retention purge: {d['prediction_event']} prediction events before "
            f"{report.cutoff:%Y-%m-%d} deleted with {d['outcome']} outcomes, {d['override']} "
            f"overrides and {d['review_case']} review cases; {report.held_events} kept under "
            f"{len(report.holds)} legal holds"
        ),
        payload=report.payload(),
    )


def last_purge() -> AuditEvent | None:
    """The audit event of the latest purge run (its payload is the report)."""
    return AuditEvent.objects.filter(action=PURGE_ACTION).order_by("-seq").first()


# --- deletion only through the purge --------------------------------------------------------


def refuse_orm_delete(sender: type[models.Model], instance: models.Model, **_: Any) -> None:
    raise TypeError(
        f"{sender.__name__} rows are deleted only by the retention purge "
        "(governance.retention.purge_due)"
    )


def connect_delete_guard() -> None:
    """Refuse ``delete()`` (instance or queryset) on events and their dependents. The purge's
    raw deletes send no signals, so they pass."""
    for model in (PredictionEvent, Outcome, Override, ReviewCase):
        pre_delete.connect(
            refuse_orm_delete, sender=model, dispatch_uid=f"retention.guard.{model.__name__}"
        )


def disconnect_delete_guard() -> None:
    for model in (PredictionEvent, Outcome, Override, ReviewCase):
        pre_delete.disconnect(sender=model, dispatch_uid=f"retention.guard.{model.__name__}")
