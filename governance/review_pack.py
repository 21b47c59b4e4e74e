"""The review pack: what a model's governance review looks at, assembled before the meeting.

Read-only queries across monitoring, incidents and governance, reduced to JSON aggregates:
counts, rates, bands, record numbers and reason codes. Never a case key, a feature value or a
reason's free text (a deferral reason's text quotes the patient's score), so a pack can be
shown to every role and exported with the audit trail.

Incidents are read through the app registry: governance never imports incidents (it tells
incidents what it found through ``governance.signals``), but its review reads their rows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypedDict

from django.apps import apps
from django.db.models import Count, Q
from django.db.models.functions import TruncWeek

from governance.models import ActionItem, Release, ReleaseStatus
from monitoring.models import (
    BAND_RANK,
    Action,
    MetricResult,
    Override,
    OverrideReason,
    PredictionEvent,
    ReviewCase,
    ReviewDecision,
    ReviewStatus,
)
from registry.models import ClinicalModel

PACK_VERSION = 1
#: The first meeting of a model looks back this far.
FIRST_PERIOD_DAYS = 30
#: Trend points kept per metric (whole deployment, shortest window), newest last.
TREND_POINTS = 12
TOP_REASONS = 5
FINISHED_RELEASES = (ReleaseStatus.DEPLOYED, ReleaseStatus.REJECTED, ReleaseStatus.WITHDRAWN)
#: Incident states that are over; read as strings so this module does not import incidents.
FINISHED_INCIDENT_STATES = ("resolved", "closed", "cancelled", "merged")
BANDS = ("red", "orange", "yellow", "green", "insufficient")

#: Fixed labels for the gate's deferral codes: a reason's own text quotes the case's values.
DEFERRAL_LABELS = {
    "frozen_deployment": "Deployment frozen (kill switch)",
    "missing_required_input": "Required input missing",
    "invalid_input": "Input out of range or invalid",
    "outside_population": "Outside the intended population",
    "safety_rule": "Safety rule",
    "confidence_missing": "Confidence not sent",
    "low_confidence": "Low model confidence",
    "near_threshold": "Score near the decision threshold",
}


class MetricSummary(TypedDict):
    layer: str
    metric: str
    latest_band: str
    latest_window_end: str
    worst_band: str
    worst_window_end: str
    worst_slice: str
    windows: dict[str, int]
    trend: list[dict[str, Any]]


class ReasonCount(TypedDict):
    code: str
    label: str
    count: int


def period_end_of(today: date) -> datetime:
    """The pack covers whole days up to and including ``today`` (UTC)."""
    return datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _worse(a: str, b: str) -> bool:
    return BAND_RANK.get(a, -1) > BAND_RANK.get(b, -1)  # type: ignore[call-overload]


def _per_band(counts: Counter[str]) -> dict[str, int]:
    """Worst band first, bands never seen left out."""
    return {band: counts[band] for band in BANDS if counts[band]}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# --- bands and trends -----------------------------------------------------------------------


def _metric_summary(layer: str, metric: str, rows: list[MetricResult]) -> MetricSummary:
    latest_end = max(r.window_end for r in rows)
    latest = [r for r in rows if r.window_end == latest_end]
    latest_band = max((r.band for r in latest), key=lambda b: BAND_RANK.get(b, -1))  # type: ignore[call-overload]
    worst = rows[0]
    for row in rows[1:]:
        if _worse(row.band, worst.band) or (
            row.band == worst.band and row.window_end > worst.window_end
        ):
            worst = row
    whole = [r for r in rows if r.slice_key == "all"]
    shortest = min((r.window_days for r in whole), default=None)
    series = sorted((r for r in whole if r.window_days == shortest), key=lambda r: r.window_end)
    return {
        "layer": layer,
        "metric": metric,
        "latest_band": latest_band,
        "latest_window_end": latest_end.isoformat(),
        "worst_band": worst.band,
        "worst_window_end": worst.window_end.isoformat(),
        "worst_slice": worst.slice_key,
        "windows": _per_band(Counter(r.band for r in rows)),
        "trend": [
            {"window_end": r.window_end.isoformat(), "value": r.value, "band": r.band}
            for r in series[-TREND_POINTS:]
        ],
    }


def bands_since(model: ClinicalModel, start: date, today: date) -> dict[str, Any]:
    """Per layer and metric: the latest band (worst slice of the latest window), the worst band
    in the period with where and when, windows per band, and the whole deployment's trend."""
    rows = MetricResult.objects.filter(
        model=model, window_end__gte=start, window_end__lte=today
    ).only("layer", "metric", "slice_key", "window_days", "window_end", "value", "band")
    grouped: dict[tuple[str, str], list[MetricResult]] = defaultdict(list)
    for row in rows:
        grouped[(row.layer, row.metric)].append(row)
    metrics = [
        _metric_summary(layer, metric, grouped[(layer, metric)]) for layer, metric in grouped
    ]
    metrics.sort(key=lambda m: (-BAND_RANK.get(m["worst_band"], -1), m["layer"], m["metric"]))  # type: ignore[call-overload]
    worst_per_metric = Counter(m["worst_band"] for m in metrics)
    return {
        "results": sum(len(v) for v in grouped.values()),
        "metrics_by_worst_band": {band: worst_per_metric.get(band, 0) for band in BANDS},
        "metrics": metrics,
    }


# --- incidents ------------------------------------------------------------------------------


def incidents_in(model: ClinicalModel, start: date, today: date) -> dict[str, Any]:
    """Incidents (not drills) opened in the period, or opened before it and still open at its
    start."""
    incident_model = apps.get_model("incidents", "Incident")
    begin, end = _start_of(start), period_end_of(today)
    still_open_at_start = (
        Q(resolved_at__isnull=True, cancelled_at__isnull=True, merged_at__isnull=True)
        | Q(resolved_at__gte=begin)
        | Q(cancelled_at__gte=begin)
        | Q(merged_at__gte=begin)
    )
    rows = (
        incident_model.objects.filter(model=model, is_drill=False, triggered_at__lt=end)
        .filter(Q(triggered_at__gte=begin) | still_open_at_start)
        .annotate(alert_count=Count("alerts"))
        .order_by("triggered_at")
    )
    items = [
        {
            "number": i.number,
            "title": i.title,
            "severity": i.severity,
            "band": i.band,
            "layer": i.layer,
            "status": i.status,
            "alerts": i.alert_count,
            "triggered_at": i.triggered_at.isoformat(),
            "resolved_at": i.resolved_at.isoformat() if i.resolved_at else None,
            "closed_at": i.closed_at.isoformat() if i.closed_at else None,
        }
        for i in rows
    ]
    return {
        "count": len(items),
        "opened_in_period": sum(1 for i in items if i["triggered_at"] >= begin.isoformat()),
        "open_now": sum(1 for i in items if i["status"] not in FINISHED_INCIDENT_STATES),
        "by_severity": dict(sorted(Counter(i["severity"] for i in items).items())),
        "items": items,
    }


# --- workflow: deferrals, overrides, the review queue -----------------------------------------


def _top(counts: Counter[str], labels: dict[str, str]) -> list[ReasonCount]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
    return [{"code": c, "label": labels.get(c, c.replace("_", " ")), "count": n} for c, n in ranked]


def _deferral_codes(reason_lists: Iterable[Any]) -> Counter[str]:
    """Each deferred case counts once per distinct reason code it carries."""
    counts: Counter[str] = Counter()
    for reasons in reason_lists:
        codes = {r.get("code") for r in reasons or () if isinstance(r, dict) and r.get("code")}
        counts.update(codes)
    return counts


def _split(label_key: str, label: str, n: int, deferred: int) -> dict[str, Any]:
    return {
        label_key: label,
        "predictions": n,
        "deferred": deferred,
        "deferral_rate": _rate(deferred, n),
    }


def _grouped(rows: Iterable[Any]) -> Counter[str]:
    """``(key, count)`` rows of a GROUP BY query as a counter."""
    return Counter({str(key): n for key, n in rows})


def workflow_in(model: ClinicalModel, start: date, today: date) -> dict[str, Any]:
    """Deferral rate overall, per week and per site with the top reasons; the override rate of
    acted predictions with its top reasons; what reviewers did with the deferred cases.
    Shadow predictions are left out: they were never shown to anyone."""
    begin, end = _start_of(start), period_end_of(today)
    events = PredictionEvent.objects.filter(
        model=model,
        occurred_at__gte=begin,
        occurred_at__lt=end,
        action__in=(Action.ACT, Action.DEFER),
    )
    deferred_q = Q(action=Action.DEFER)
    totals = events.aggregate(n=Count("pk"), deferred=Count("pk", filter=deferred_q))
    acted = totals["n"] - totals["deferred"]
    weekly = (
        events.annotate(week=TruncWeek("occurred_at"))
        .values("week")
        .annotate(n=Count("pk"), deferred=Count("pk", filter=deferred_q))
        .order_by("week")
    )
    per_site = (
        events.values("site__code")
        .annotate(n=Count("pk"), deferred=Count("pk", filter=deferred_q))
        .order_by("site__code")
    )
    reasons = _deferral_codes(events.filter(deferred_q).values_list("reasons", flat=True))
    overrides = Override.objects.filter(
        event__in=events.filter(action=Action.ACT), occurred_at__lt=end
    )
    overridden = overrides.order_by().values("event").distinct().count()
    override_codes = _grouped(
        overrides.order_by().values_list("reason_code").annotate(n=Count("pk"))
    )
    return {
        "predictions": totals["n"],
        "deferred": totals["deferred"],
        "deferral_rate": _rate(totals["deferred"], totals["n"]),
        "deferral_by_week": [
            _split("week_start", w["week"].date().isoformat(), w["n"], w["deferred"])
            for w in weekly
        ],
        "deferral_by_site": [
            _split("site", s["site__code"], s["n"], s["deferred"]) for s in per_site
        ],
        "top_deferral_reasons": _top(reasons, DEFERRAL_LABELS),
        "acted": acted,
        "overridden": overridden,
        "override_rate": _rate(overridden, acted),
        "top_override_reasons": _top(override_codes, dict(OverrideReason.choices)),
        "deferred_cases": _review_cases(model, begin, end),
    }


def _review_cases(model: ClinicalModel, begin: datetime, end: datetime) -> dict[str, Any]:
    cases = ReviewCase.objects.filter(model=model, opened_at__gte=begin, opened_at__lt=end)
    agg = cases.aggregate(
        opened=Count("pk"),
        still_open=Count("pk", filter=Q(status=ReviewStatus.OPEN)),
        agreed=Count("pk", filter=Q(decision=ReviewDecision.AGREE)),
        overridden=Count("pk", filter=Q(decision=ReviewDecision.OVERRIDE)),
    )
    codes = _grouped(
        cases.filter(decision=ReviewDecision.OVERRIDE)
        .order_by()
        .values_list("reason_code")
        .annotate(n=Count("pk"))
    )
    decided = agg["agreed"] + agg["overridden"]
    return {
        **agg,
        "reviewer_override_rate": _rate(agg["overridden"], decided),
        "top_reviewer_override_reasons": _top(codes, dict(OverrideReason.choices)),
    }


# --- governance: open releases and action items ----------------------------------------------


def open_releases(model: ClinicalModel) -> list[dict[str, Any]]:
    rows = Release.objects.filter(model=model).exclude(status__in=FINISHED_RELEASES)
    return [
        {
            "number": r.number,
            "id": r.pk,
            "kind": r.kind,
            "status": r.status,
            "title": r.title,
            "created_at": r.created_at.isoformat(),
        }
        for r in rows.order_by("created_at")
    ]


def open_actions(model: ClinicalModel, today: date) -> list[dict[str, Any]]:
    rows = ActionItem.objects.filter(model=model, status=ActionItem.Status.OPEN)
    return [
        {
            "id": a.pk,
            "text": a.text,
            "owner": a.owner.get_username(),
            "due": a.due.isoformat(),
            "overdue": a.due < today,
            "meeting": a.meeting_id,
        }
        for a in rows.select_related("owner").order_by("due", "pk")
    ]


# --- the pack -------------------------------------------------------------------------------


def assemble_pack(model: ClinicalModel, *, period_start: date, today: date) -> dict[str, Any]:
    """The whole pack for ``model`` from ``period_start`` to ``today`` (both inclusive)."""
    return {
        "pack_version": PACK_VERSION,
        "model": {"slug": model.slug, "name": model.name, "risk_tier": model.risk_tier},
        "period": {"start": period_start.isoformat(), "end": today.isoformat()},
        "bands": bands_since(model, period_start, today),
        "incidents": incidents_in(model, period_start, today),
        "workflow": workflow_in(model, period_start, today),
        "releases": open_releases(model),
        "actions": open_actions(model, today),
    }
