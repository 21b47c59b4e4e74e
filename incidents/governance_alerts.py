"""Governance findings (``governance.signals.checked``) as governance-layer alerts.

One alert per (model, finding kind, key), deduplicated by fingerprint like every alert. Orange
and red findings join the model's governance incident (slice ``governance``), routed by the
RACI like any other layer; yellow ones stay on the watch list. A finding no longer found by a
run that covers its kind resolves its alert, with the reason on record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone

from governance.audit.services import record
from incidents import routing
from incidents.alerts import fingerprint
from incidents.models import Alert, AlertStatus
from registry.models import ClinicalModel, Deployment, ModelVersion

SLICE = "governance"
LAYER = "governance"
RESPONSE = (
    "Open the release or deployment named, establish how it reached patients, and either "
    "complete the signatures through a release (or roll back / freeze) or record why not; "
    "overdue reviews and actions go to their owners with a new date."
)


@dataclass(frozen=True)
class _Window:
    """What ``attach_to_incidents`` reads of a result: when the harm may have begun."""

    window_start: date
    details: dict[str, Any]


def _version_of(model: ClinicalModel) -> ModelVersion | None:
    live = Deployment.objects.filter(model=model, ended_at__isnull=True).order_by("-started_at")
    first = live.select_related("version").first()
    return first.version if first else model.versions.order_by("-created_at").first()


def _payload(finding: Any, model: ClinicalModel, version: ModelVersion) -> dict[str, Any]:
    from governance.findings import KINDS

    return {
        "model": model.slug,
        "version": version.version,
        "metric": finding.kind,
        "metric_label": KINDS[finding.kind],
        "layer": LAYER,
        "slice": SLICE,
        "slice_words": "governance",
        "band": finding.band,
        "summary": finding.summary,
        "details": finding.details,
        "confidence": "A governance check found this in the records; it is a fact, not an "
        "estimate.",
        "clinical_impact": "A change reached (or stays with) patients without the evidence, "
        "signatures or review the hospital's governance requires.",
        "recommended_response": RESPONSE,
        "n": 0,
    }


def on_checked(sender: Any, *, kinds: Iterable[str], findings: Sequence[Any], **_: Any) -> None:
    from incidents.services import attach_to_incidents

    now = timezone.now()
    seen: set[str] = set()
    with transaction.atomic():
        by_version: dict[int, list[tuple[Alert, _Window]]] = {}
        versions: dict[int, ModelVersion] = {}
        for finding in findings:
            model = ClinicalModel.objects.get(pk=finding.model_id)
            version = _version_of(model)
            if version is None:
                continue
            fp = fingerprint(model.pk, SLICE, f"{finding.kind}:{finding.key}")
            seen.add(fp)
            alert = (
                Alert.objects.select_for_update()
                .filter(fingerprint=fp, status=AlertStatus.OPEN)
                .first()
            )
            payload = _payload(finding, model, version)
            if alert is None:
                alert = Alert.objects.create(
                    model=model, version=version, site=None, slice_key=SLICE,
                    metric=f"{finding.kind}:{finding.key}"[:160], layer=LAYER, fingerprint=fp,
                    band=finding.band, worst_band=finding.band, reason="confident",
                    payload=payload, routed_role=routing.responsible(LAYER, model),
                    first_seen_at=now, last_seen_at=now,
                )  # fmt: skip
                record(
                    actor=None,
                    action="alert.raised",
                    summary=f"Governance alert: {finding.summary}"[:500],
                    target=alert,
                    payload={"model": model.slug, "kind": finding.kind, "band": finding.band,
                             "routed_to": alert.routed_role},
                )  # fmt: skip
            else:
                alert.band, alert.last_seen_at, alert.payload = finding.band, now, payload
                if routing.BAND_RANK[finding.band] > routing.BAND_RANK[alert.worst_band]:
                    alert.worst_band = finding.band
                alert.save()
            versions[version.pk] = version
            by_version.setdefault(version.pk, []).append(
                (alert, _Window(window_start=now.date(), details={}))
            )
        for version_id, pairs in by_version.items():
            attach_to_incidents(version=versions[version_id], alerts=pairs, window_end=now.date())
        _resolve_gone(kinds, seen, now)


def _resolve_gone(kinds: Iterable[str], seen: set[str], now: Any) -> None:
    prefixes = tuple(f"{k}:" for k in kinds)
    if not prefixes:
        return
    gone = Alert.objects.select_for_update().filter(
        layer=LAYER, slice_key=SLICE, status=AlertStatus.OPEN
    )
    for alert in gone:
        if alert.fingerprint in seen or not alert.metric.startswith(prefixes):
            continue
        alert.status, alert.resolved_at = AlertStatus.RESOLVED, now
        alert.green_since = now.date()
        alert.save()
        record(
            actor=None,
            action="alert.resolved",
            summary=f"Governance check no longer finds: {alert.payload.get('summary', '')}"[:500],
            target=alert,
            payload={"kind": alert.metric.partition(":")[0], "model": alert.payload.get("model")},
        )
