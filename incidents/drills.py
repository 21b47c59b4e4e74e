"""Tabletop drills and incident statistics.

A drill injects an alert on purpose and runs the real path (incident, routing, runbook,
timeline, audit) with ``is_drill`` set: its notifications are recorded but never delivered to
anyone, and drills never count in the statistics below.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, time
from statistics import median
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.permissions import require_perms
from governance.audit.services import record
from incidents import routing
from incidents.alerts import fingerprint
from incidents.models import Alert, AlertStatus, Incident
from incidents.services import attach_to_incidents
from monitoring.thresholds import METRICS
from registry.models import Deployment, ModelVersion


class _DrillResult:
    """What ``attach_to_incidents`` reads of a result, for an injected alert."""

    def __init__(self, deviation: float, window_start: Any) -> None:
        self.details = {"deviation": [deviation, deviation, deviation]}
        self.window_start = window_start


def start_drill(
    *, actor: Any, version: ModelVersion, slice_key: str, metric: str, band: str, scenario: str
) -> Incident:
    """Inject a drill alert (e.g. "red missing_rate:lactate at site=SOUTH") and open its
    incident through the real path. A drill never freezes a deployment."""
    require_perms(actor, "incidents.close_incident")
    name = metric.partition(":")[0]
    errors = {}
    if name not in METRICS:
        errors["metric"] = f"Unknown metric {metric!r}."
    if band not in ("orange", "red"):
        errors["band"] = "A drill rehearses an orange or red incident."
    if not scenario.strip():
        errors["scenario"] = "Describe the scenario the team rehearses."
    site = None
    if slice_key.startswith("site="):
        found = Deployment.objects.filter(version=version, site__code=slice_key[5:]).first()
        if found is None:
            errors["slice_key"] = f"{version} is not deployed at {slice_key[5:]}."
        site = found.site if found else None
    if errors:
        raise ValidationError(errors)
    spec = METRICS[name]
    today = timezone.now().date()
    with transaction.atomic():
        alert = Alert.objects.create(
            model=version.model, version=version, site=site, slice_key=slice_key,
            metric=metric, layer=spec.layer,
            fingerprint=fingerprint(version.model_id, f"drill|{slice_key}", metric),
            band=band, worst_band=band, reason="drill",
            routed_role=routing.responsible(spec.layer, version.model),
            is_drill=True, status=AlertStatus.OPEN,
            payload={
                "model": version.model.slug, "metric": metric, "metric_label": spec.label,
                "layer": spec.layer, "slice": slice_key, "slice_words": slice_key, "band": band,
                "summary": f"DRILL: {scenario.strip()}", "confidence": "A drill: injected on "
                "purpose, not measured.", "recommended_response":
                routing.RESPONSE.get(spec.layer, ""), "drill": True,
            },
        )  # fmt: skip
        record(actor=actor, action="incident.drill_started",
               summary=f"Drill started: {scenario.strip()}"[:300], target=alert,
               payload={"metric": metric, "slice": slice_key, "band": band})  # fmt: skip
        # The real grouping and routing; a drill's own fingerprint keeps it apart from real
        # alerts, and ``is_drill`` keeps its notifications from anyone's inbox.
        incidents = attach_to_incidents(
            version=version, alerts=[(alert, _DrillResult(1.0, today))], window_end=today
        )
    return incidents[0] if incidents else Incident.objects.get(alerts=alert)


def _hours(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return max((b - a).total_seconds(), 0.0) / 3600


def incident_stats(*, model_slug: str | None = None) -> list[dict[str, Any]]:
    """Per model and severity, the median and worst hours to detect (first harmful day →
    first alert), to acknowledge, to mitigate and to resolve. Drills do not count."""
    incidents = Incident.objects.filter(is_drill=False).select_related("model")
    if model_slug:
        incidents = incidents.filter(model__slug=model_slug)
    groups: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for inc in incidents:
        first_alert = inc.alerts.order_by("first_seen_at").values_list("first_seen_at", flat=True)
        alerted = first_alert.first() or inc.triggered_at
        harmful = (
            datetime.combine(inc.first_harmful_day, time.min, tzinfo=UTC)
            if inc.first_harmful_day
            else None
        )
        spans = {
            "detect": _hours(harmful, alerted),
            "acknowledge": _hours(inc.triggered_at, inc.acknowledged_at),
            "mitigate": _hours(inc.triggered_at, inc.mitigated_at),
            "resolve": _hours(inc.triggered_at, inc.resolved_at),
        }
        bucket = groups[(inc.model.slug, inc.severity)]
        bucket["count"].append(1)
        for name, value in spans.items():
            if value is not None:
                bucket[name].append(value)
    out = []
    for (slug, severity), bucket in sorted(groups.items()):
        row: dict[str, Any] = {
            "model": slug,
            "severity": severity,
            "incidents": len(bucket["count"]),
        }
        for name in ("detect", "acknowledge", "mitigate", "resolve"):
            values = bucket.get(name, [])
            row[name] = {
                "n": len(values),
                "median_hours": round(median(values), 2) if values else None,
                "max_hours": round(max(values), 2) if values else None,
            }
        out.append(row)
    return out
