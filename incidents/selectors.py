"""Reads across the incident models, shared by the pages and the API: the queue, one
incident's working view (alerts, runbook with its checks, timeline), what a user may do next,
and the deployments the kill switch can reach."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from accounts.permissions import has_perms
from incidents import charts, services
from incidents.models import (
    Alert,
    Incident,
    IncidentStatus,
    Notification,
    Runbook,
    RunbookCheck,
)
from monitoring.models import MetricResult
from registry.models import Deployment

S = IncidentStatus
QUEUE_TABS = ("mine", "team", "all")

#: One POST action per transition: the action's name and the state it moves to.
ACTIONS: dict[str, str] = {
    "acknowledge": S.ACKNOWLEDGED,
    "investigate": S.INVESTIGATING,
    "mitigate": S.MITIGATED,
    "resolve": S.RESOLVED,
    "close": S.CLOSED,
    "cancel": S.CANCELLED,
    "merge": S.MERGED,
}
ACTION_LABELS = {
    "acknowledge": "Acknowledge",
    "investigate": "Start investigating",
    "mitigate": "Mark mitigated",
    "resolve": "Resolve",
    "close": "Close",
    "cancel": "Cancel (false positive)",
    "merge": "Merge into…",
}


def incidents_visible_to(*, user: Any) -> QuerySet[Incident]:
    """Incidents are aggregates: whoever may view incidents sees every one."""
    if not has_perms(user, ["incidents.view_incident"]):
        return Incident.objects.none()
    return Incident.objects.select_related("model", "site", "commander")


def _mine(user: Any) -> Q:
    """Incidents I hold a role in, or that the RACI routed to me by name."""
    return (
        Q(commander=user)
        | Q(scribe=user)
        | Q(clinical_lead=user)
        | Q(model_owner=user)
        | Q(routed_role=f"user:{user.get_username()}")
    )


def incident_queue(*, user: Any, tab: str = "mine", open_only: bool = True) -> QuerySet[Incident]:
    """Most severe first ("SEV1" sorts before "SEV2"), then oldest."""
    found = incidents_visible_to(user=user)
    if tab == "mine":
        found = found.filter(_mine(user))
    elif tab == "team":
        found = found.filter(routed_role__in=list(user.groups.values_list("name", flat=True)))
    if open_only:
        found = found.filter(status__in=services.OPEN_STATES)
    return found.order_by("severity", "triggered_at", "number")


def filter_incidents(found: QuerySet[Incident], *, user: Any, mine: bool) -> QuerySet[Incident]:
    return found.filter(_mine(user)) if mine else found


def alerts_visible_to(*, user: Any) -> QuerySet[Alert]:
    if not has_perms(user, ["incidents.view_alert"]):
        return Alert.objects.none()
    return Alert.objects.select_related("model", "version", "site", "incident")


@dataclass(frozen=True)
class Step:
    number: int  # 0-based, as the services and the API count
    title: str
    evidence: str
    check: RunbookCheck | None


def runbook_steps(incident: Incident) -> tuple[Any, list[Step]]:
    """The incident's runbook and each step with its check, if done."""
    book = services.runbook_for(incident)
    if book is None:
        return None, []
    checks = {c.step: c for c in incident.checks.select_related("checked_by")}
    steps = [
        Step(number=i, title=s["title"], evidence=s.get("evidence", ""), check=checks.get(i))
        for i, s in enumerate(book.steps)
    ]
    return book, steps


def can_do(user: Any, incident: Incident, action: str) -> bool:
    """Whether ``action`` is allowed now (the lifecycle) and the user's role may do it."""
    to = ACTIONS[action]
    perm = "incidents.close_incident" if to in (S.RESOLVED, S.CLOSED) else "incidents.work_incident"
    if not has_perms(user, [perm]):
        return False
    if to in (S.CANCELLED, S.MERGED):
        return incident.status in services.OPEN_STATES
    return services.NEXT.get(incident.status) == to


def allowed_actions(user: Any, incident: Incident) -> list[str]:
    return [a for a in ACTIONS if can_do(user, incident, a)]


def live_deployments(incident: Incident) -> QuerySet[Deployment]:
    """The live deployments the incident's kill switch reaches: its model at its site, or at
    every site when the incident is not a site's."""
    found = Deployment.objects.filter(model=incident.model, ended_at__isnull=True)
    if incident.site_id is not None:
        found = found.filter(site_id=incident.site_id)
    return found.select_related("site", "version").order_by("site__code")


def merge_targets(incident: Incident) -> QuerySet[Incident]:
    return Incident.objects.filter(status__in=services.OPEN_STATES).exclude(pk=incident.pk)


def is_overdue(incident: Incident, now: Any = None) -> bool:
    now = now or timezone.now()
    return incident.status == S.TRIGGERED and incident.ack_deadline <= now


# --- runbooks, notifications, statistics -----------------------------------------------------


def runbooks_visible_to(*, user: Any) -> QuerySet[Runbook]:
    if not has_perms(user, ["incidents.view_runbook"]):
        return Runbook.objects.none()
    return Runbook.objects.select_related("updated_by").order_by("layer", "metric")


@dataclass(frozen=True)
class RunbookVersion:
    at: Any
    by: str
    reason: str
    kind: str  # created | changed
    title: str
    steps: list[dict[str, str]]


def runbook_history(runbook: Runbook) -> list[RunbookVersion]:
    """Every saved version, newest first: who, when, why, and the steps as they were."""
    rows = runbook.history.select_related("history_user").order_by("-history_date", "-history_id")
    return [
        RunbookVersion(
            at=h.history_date,
            by=h.history_user.get_username() if h.history_user else "system",
            reason=h.history_change_reason or "",
            kind="created" if h.history_type == "+" else "changed",
            title=h.title,
            steps=list(h.steps or []),
        )
        for h in rows
    ]


#: What the incident page shows of a notification: never its body.
NOTIFICATION_FIELDS = (
    "channel", "recipient", "subject", "status", "attempts", "last_error", "created_at",
    "sent_at", "is_drill",
)  # fmt: skip


def incident_notifications(incident: Incident) -> QuerySet[Notification]:
    """The messages sent (or still trying) for an incident, newest first; bodies left out."""
    return incident.notifications.only("pk", "incident_id", *NOTIFICATION_FIELDS).order_by(
        "-created_at", "-pk"
    )


#: The window length of an alert with no occurrence recorded yet.
DEFAULT_WINDOW_DAYS = 30


def alert_series(alert: Alert, limit: int = 12) -> list[charts.ChartPoint]:
    """The alert's metric over time, oldest first: the last ``limit`` results for its version,
    slice and metric, at the window length of its latest occurrence (30 days without one)."""
    latest = alert.occurrences.order_by("-window_end", "-window_days", "-pk").first()
    window_days = latest.window_days if latest else DEFAULT_WINDOW_DAYS
    rows = (
        MetricResult.objects.filter(
            version_id=alert.version_id,
            slice_key=alert.slice_key,
            metric=alert.metric,
            window_days=window_days,
        )
        .order_by("-window_end")
        .values("window_end", "value", "low", "high", "baseline", "band")[:limit]
    )
    return [
        charts.ChartPoint(
            label=r["window_end"].isoformat(),
            value=r["value"],
            low=r["low"],
            high=r["high"],
            baseline=r["baseline"],
            band=r["band"],
        )  # fmt: skip
        for r in reversed(list(rows))
    ]


@dataclass(frozen=True)
class AlertChart:
    svg: SafeString
    label: str
    last: charts.ChartPoint | None
    last_text: str
    count: int


def alert_chart(alert: Alert, limit: int = 12) -> AlertChart:
    """The alert's series drawn as an SVG; the markup is built (and escaped) by ``charts``."""
    points = alert_series(alert, limit=limit)
    payload = alert.payload if isinstance(alert.payload, dict) else {}
    title = f"{payload.get('metric_label') or alert.metric} · {alert.slice_key}"
    last = charts.last_value(points)
    return AlertChart(
        svg=mark_safe(charts.render_svg(points, title=title)),  # noqa: S308 - escaped in charts
        label=charts.describe(points, title=title),
        last=last,
        last_text=charts.format_value(last.value) if last else "—",
        count=len(points),
    )


def releases_from(incident: Incident) -> QuerySet[Any]:
    """The releases (recalibration, threshold change, rollback ...) proposed from it."""
    from governance.models import Release

    return Release.objects.filter(
        model=incident.model, origin__incident=incident.number
    ).order_by("created_at")
