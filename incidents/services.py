"""Incidents: grouping alerts, the lifecycle, the kill switch, impact, review and escalation.

Every change appends a ``TimelineEntry`` and an audit event in the same transaction.
Transitions are validated (no skipping, no timestamp earlier than the previous one); resolving
an orange or red incident needs its patient-impact assessment and the runbook evidence its band
requires; closing a red one needs a post-incident review with corrective actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from accounts.permissions import require_perms
from governance.audit.services import record
from incidents import routing
from incidents.alerts import slice_words
from incidents.models import Alert, Incident, IncidentStatus, Runbook, RunbookCheck, TimelineEntry
from monitoring.models import PredictionEvent
from registry.models import Deployment, ModelVersion
from registry.services import deployment_set_frozen

S = IncidentStatus
OPEN_STATES = (S.TRIGGERED, S.ACKNOWLEDGED, S.INVESTIGATING, S.MITIGATED)
#: The lifecycle: each state's one next state; any open state may also be cancelled or merged.
NEXT = {
    S.TRIGGERED: S.ACKNOWLEDGED,
    S.ACKNOWLEDGED: S.INVESTIGATING,
    S.INVESTIGATING: S.MITIGATED,
    S.MITIGATED: S.RESOLVED,
    S.RESOLVED: S.CLOSED,
}
STAMP = {
    S.ACKNOWLEDGED: "acknowledged_at",
    S.INVESTIGATING: "investigating_at",
    S.MITIGATED: "mitigated_at",
    S.RESOLVED: "resolved_at",
    S.CLOSED: "closed_at",
    S.CANCELLED: "cancelled_at",
    S.MERGED: "merged_at",
}


def note(incident: Incident, *, actor: Any, kind: str, text: str, **data: Any) -> TimelineEntry:
    """One timeline entry and its audit event."""
    entry = TimelineEntry.objects.create(
        incident=incident, actor=actor if actor is not None else None, kind=kind,
        text=text[:1000], data=data,
    )  # fmt: skip
    record(
        actor=actor,
        action=f"incident.{kind}",
        summary=f"INC-{incident.number}: {text}"[:500],
        target=incident,
        payload={"incident": incident.number, "model": incident.model.slug, **data},
    )
    return entry


# --- grouping alerts into incidents ---------------------------------------------------------


def _root_slices(alerts: Sequence[tuple[Alert, Any]]) -> dict[str, str]:
    """Per metric, the slice that owns it: the site or cohort with the largest deviation (the
    whole deployment only when nothing narrower is flagged)."""
    best: dict[str, tuple[float, str]] = {}
    for alert, result in alerts:
        dev = (result.details.get("deviation") or [0.0])[0] or 0.0
        narrow = alert.slice_key != "all"
        score = (1 if narrow else 0, dev)
        current = best.get(alert.metric)
        if current is None or score > current[0]:
            best[alert.metric] = (score, alert.slice_key)  # type: ignore[assignment]
    return {metric: slice_key for metric, (_, slice_key) in best.items()}


LAYER_ORDER = {"data_quality": 0, "prediction_quality": 1, "workflow": 2, "outcome": 3}
#: A sequential chart watches a metric another alert may already own: its alarm is evidence for
#: that incident, not an incident of its own.
CHART_OF = {
    "ewma_override_rate": "override_rate",
    "ewma_deferral_rate": "deferral_rate",
    "cusum_calibration_up": "calibration_oe",
    "cusum_calibration_down": "calibration_oe",
}


def _incident_of_base_metric(model: Any, alert: Alert) -> Incident | None:
    base = CHART_OF.get(alert.metric)
    if base is None:
        return None
    return (
        Incident.objects.select_for_update()
        .filter(model=model, status__in=OPEN_STATES, alerts__metric=base, is_drill=alert.is_drill)
        .order_by("triggered_at")
        .first()
    )


def _next_number() -> int:
    return (Incident.objects.aggregate(m=Max("number"))["m"] or 0) + 1


def attach_to_incidents(
    *, version: ModelVersion, alerts: Sequence[tuple[Alert, Any]], window_end: date
) -> list[Incident]:
    """Put each orange or red alert in the open incident of its metric's root slice (opening
    one if needed); yellow alerts stay on the watch list until they worsen."""
    roots = _root_slices([(a, r) for a, r in alerts if a.worst_band in ("orange", "red")])
    touched: dict[int, Incident] = {}
    model = version.model
    # Causes before symptoms: a data problem explains the drift, deferrals and outcomes it
    # brings, so it opens the incident (and routes it); sequential charts join last.
    ordered = sorted(
        alerts, key=lambda pair: (pair[0].metric in CHART_OF, LAYER_ORDER.get(pair[0].layer, 9))
    )
    for alert, result in ordered:
        if alert.worst_band not in ("orange", "red") or alert.incident_id is not None:
            if alert.incident_id is not None:
                _maybe_upgrade(alert.incident, alert, result)
            continue
        incident = _incident_of_base_metric(model, alert)
        root = incident.slice_key if incident else roots.get(alert.metric, alert.slice_key)
        incident = incident or (
            Incident.objects.select_for_update()
            .filter(model=model, slice_key=root, status__in=OPEN_STATES, is_drill=alert.is_drill)
            .first()
        )
        if incident is None:
            incident = _open(version, alert, result, root, window_end)
        else:
            _maybe_upgrade(incident, alert, result)
        alert.incident = incident
        alert.save(update_fields=["incident"])
        note(
            incident, actor=None, kind="alert_added",
            text=f"{alert.payload['summary']}", metric=alert.metric, slice=alert.slice_key,
            band=alert.worst_band,
        )  # fmt: skip
        touched[incident.pk] = incident
        # A governance finding (missing signatures, an overdue review) is a paperwork failure:
        # it routes to people, it never stops a model that is scoring correctly.
        if (
            alert.worst_band == "red"
            and model.risk_tier in routing.HIGH_TIERS
            and alert.layer != "governance"
        ):
            if alert.is_drill:  # a drill rehearses the decision; it never stops a model
                note(
                    incident,
                    actor=None,
                    kind="freeze_skipped",
                    text="Drill: the policy would freeze this deployment now (not done)",
                )
            else:
                auto_freeze(incident, alert)
    return list(touched.values())


def _open(
    version: ModelVersion, alert: Alert, result: Any, root: str, window_end: date
) -> Incident:
    model = version.model
    sev = routing.severity(alert.worst_band, model.risk_tier)
    now = timezone.now()
    site = Deployment.objects.filter(version=version, site__code=root.partition("=")[2]).first()
    incident = Incident.objects.create(
        number=_next_number(),
        model=model,
        site=site.site if root.startswith("site=") and site else None,
        slice_key=root,
        title=f"{alert.payload['metric_label']} — {slice_words(root)}",
        severity=sev,
        band=alert.worst_band,
        layer=alert.layer,
        routed_role=alert.routed_role,
        clinical_lead=model.clinical_owner,
        model_owner=model.technical_owner,
        triggered_at=now,
        first_harmful_day=result.window_start,
        ack_deadline=now + routing.ACK_WITHIN[sev],
        is_drill=alert.is_drill,
    )
    note(
        incident, actor=None, kind="triggered",
        text=f"{sev} opened for {incident.title}, routed to {incident.routed_role}",
        severity=sev, routed_to=incident.routed_role,
    )  # fmt: skip
    notify_parties(
        routing.responsible_parties(alert.layer, model),
        subject=f"[Vigil {sev}] INC-{incident.number} {incident.title}",
        body={**alert.payload, "incident": incident.number, "severity": sev,
              "acknowledge_by": incident.ack_deadline.isoformat()},
        incident=incident,
        alert=alert,
        is_drill=incident.is_drill,
    )  # fmt: skip
    return incident


def _maybe_upgrade(incident: Incident, alert: Alert, result: Any) -> None:
    sev = routing.severity(alert.worst_band, incident.model.risk_tier)
    if sev < incident.severity:  # "SEV1" < "SEV2": more severe
        before = incident.severity
        incident.severity, incident.band = sev, alert.worst_band
        incident.save(update_fields=["severity", "band"])
        note(incident, actor=None, kind="severity", text=f"Severity {before} → {sev}",
             before=before, after=sev)  # fmt: skip


# --- the kill switch ----------------------------------------------------------------------


def auto_freeze(incident: Incident, alert: Alert) -> list[Deployment]:
    """By policy a red result on a high or critical tier model freezes its deployment at once:
    at the incident's site when its root is a site, at every site of the version otherwise."""
    live = Deployment.objects.filter(
        version_id=alert.version_id, ended_at__isnull=True, frozen=False
    )
    # The incident's root decides the scope: its site, or every site for a cohort's or the whole
    # deployment's problem (a cohort alert that only echoes one site's problem stops that site).
    if incident.slice_key.startswith("site="):
        live = live.filter(site__code=incident.slice_key.partition("=")[2])
    frozen = []
    for deployment in live.select_related("site"):
        reason = f"auto: red {alert.metric} for {alert.slice_key} (INC-{incident.number})"
        frozen.append(deployment_set_frozen(actor=None, deployment=deployment, frozen=True,
                                            reason=reason))  # fmt: skip
        note(incident, actor=None, kind="freeze",
             text=f"Deployment at {deployment.site.code} frozen by policy: every case defers",
             site=deployment.site.code)  # fmt: skip
    return frozen


def freeze(*, actor: Any, incident: Incident, deployment: Deployment, reason: str) -> Deployment:
    """Anyone whose role may freeze does so by hand, from the incident."""
    deployment = deployment_set_frozen(
        actor=actor, deployment=deployment, frozen=True, reason=reason
    )
    note(
        incident,
        actor=actor,
        kind="freeze",
        text=f"Deployment at {deployment.site.code} frozen: {reason}",
        site=deployment.site.code,
    )
    return deployment


def unfreeze(
    *, actor: Any, incident: Incident | None, deployment: Deployment, reason: str, password: str
) -> Deployment:
    """Only a medical director, re-entering their password, puts a model back to acting."""
    if actor is None or not actor.groups.filter(name="medical_director").exists():
        raise PermissionDenied("Only a medical director may unfreeze a deployment.")
    if authenticate(username=actor.get_username(), password=password) is None:
        record(actor=actor, action="deployment.unfreeze_refused",
               summary="Unfreeze refused: the password did not match", target=deployment,
               payload={"site": deployment.site.code})  # fmt: skip
        raise ValidationError({"password": "The password does not match: nothing changed."})
    deployment = deployment_set_frozen(
        actor=actor, deployment=deployment, frozen=False, reason=reason
    )
    if incident is not None:
        note(incident, actor=actor, kind="unfreeze",
             text=f"Deployment at {deployment.site.code} unfrozen: {reason}",
             site=deployment.site.code)  # fmt: skip
    return deployment


# --- the lifecycle ------------------------------------------------------------------------


def transition(
    *,
    actor: Any,
    incident: Incident,
    to: str,
    at: datetime | None = None,
    reason: str = "",
    into: Incident | None = None,
) -> Incident:
    """Move ``incident`` to ``to``; refused with a clear message unless allowed now."""
    require_perms(actor, "incidents.close_incident" if to in (S.RESOLVED, S.CLOSED) else
                  "incidents.work_incident")  # fmt: skip
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        at = at or timezone.now()
        _check(incident, to, at, reason, into)
        previous = incident.status
        incident.status = to
        setattr(incident, STAMP[to], at)
        if to == S.ACKNOWLEDGED and incident.commander_id is None and actor is not None:
            incident.commander = actor
        if to == S.CANCELLED:
            incident.cancel_reason = reason.strip()
        if to == S.MERGED:
            incident.merged_into = into
            for alert in Alert.objects.filter(incident=incident):
                alert.incident = into
                alert.save(update_fields=["incident"])
        incident._history_user = actor  # type: ignore[attr-defined]
        incident.save()
        text = f"{previous} → {to}" + (f": {reason.strip()}" if reason.strip() else "")
        if into is not None:
            text += f" (into INC-{into.number})"
            note(into, actor=actor, kind="merged_in", text=f"INC-{incident.number} merged in")
        note(incident, actor=actor, kind=to, text=text, before=previous, after=to)
    return incident


def _check(incident: Incident, to: str, at: datetime, reason: str, into: Incident | None) -> None:
    now_state = incident.status
    if to in (S.CANCELLED, S.MERGED):
        if now_state not in OPEN_STATES:
            raise ValidationError({"status": f"A {now_state} incident cannot be {to}."})
        if to == S.CANCELLED and not reason.strip():
            raise ValidationError({"reason": "Say why this is a false positive."})
        if to == S.MERGED and (into is None or into.pk == incident.pk
                               or into.status not in OPEN_STATES):  # fmt: skip
            raise ValidationError({"into": "Merge into another open incident."})
    elif NEXT.get(now_state) != to:
        expected = NEXT.get(now_state)
        raise ValidationError(
            {"status": f"From {now_state} the next step is {expected or 'none'}, not {to}."}
        )
    latest = max(
        (getattr(incident, f) for f in ("triggered_at", *STAMP.values()) if getattr(incident, f)),
        default=incident.triggered_at,
    )
    if at < latest:
        raise ValidationError({"at": f"{to} cannot come before {latest:%Y-%m-%d %H:%M} UTC."})
    if to == S.RESOLVED and incident.band in ("orange", "red"):
        missing = closure_gaps(incident)
        if missing:
            raise ValidationError({"status": "Before resolving: " + "; ".join(missing)})
    if to == S.CLOSED and incident.band == "red" and not _review_complete(incident.review):
        raise ValidationError(
            {"review": "A red incident closes only after its post-incident review: corrective "
             "actions, each with an owner and a due date."}
        )  # fmt: skip


def runbook_for(incident: Incident) -> Runbook | None:
    metric = (
        incident.alerts.order_by("first_seen_at").values_list("metric", flat=True).first() or ""
    ).partition(":")[0]
    return (
        Runbook.objects.filter(layer=incident.layer, metric=metric).first()
        or Runbook.objects.filter(layer=incident.layer, metric="").first()
    )


def closure_gaps(incident: Incident) -> list[str]:
    """What an orange or red incident still lacks before it may be resolved."""
    gaps = []
    if not incident.impact:
        gaps.append("record the patient-impact assessment")
    book = runbook_for(incident)
    if book is not None:
        checked = set(incident.checks.values_list("step", flat=True))
        needed = range(len(book.steps)) if incident.band == "red" else [len(book.steps) - 1]
        left = [book.steps[i]["title"] for i in needed if i not in checked]
        if left:
            gaps.append("check off with evidence: " + ", ".join(left))
    return gaps


def _review_complete(review: Mapping[str, Any]) -> bool:
    actions = review.get("corrective_actions") or []
    return (
        bool(review.get("summary"))
        and bool(actions)
        and all(a.get("action") and a.get("owner") and a.get("due") for a in actions)
    )


def check_step(*, actor: Any, incident: Incident, step: int, evidence: str) -> RunbookCheck:
    require_perms(actor, "incidents.work_incident")
    book = runbook_for(incident)
    if book is None or not 0 <= step < len(book.steps):
        raise ValidationError({"step": "No such step in this incident's runbook."})
    if not evidence.strip():
        raise ValidationError({"evidence": f"Record the evidence: {book.steps[step]['evidence']}"})
    if incident.status not in OPEN_STATES:
        raise ValidationError({"status": f"A {incident.status} incident's runbook is finished."})
    with transaction.atomic():
        if RunbookCheck.objects.filter(incident=incident, step=step).exists():
            raise ValidationError({"step": "This step is already checked off."})
        check = RunbookCheck.objects.create(
            incident=incident, step=step, step_title=book.steps[step]["title"],
            evidence=evidence.strip(), checked_by=actor,
        )  # fmt: skip
        note(incident, actor=actor, kind="step", text=f"Step {step + 1} done: "
             f"{book.steps[step]['title']}", step=step)  # fmt: skip
    return check


def impact_window(incident: Incident) -> tuple[datetime, datetime]:
    start = datetime.combine(incident.first_harmful_day or incident.triggered_at.date(), time.min,
                             tzinfo=UTC)  # fmt: skip
    return start, incident.resolved_at or timezone.now()


def impact_counts(incident: Incident) -> dict[str, Any]:
    """Predictions, decisions and distinct (pseudonymous) patients of the incident's slice in
    its window, from the gate's records: counts only."""
    start, end = impact_window(incident)
    events = PredictionEvent.objects.filter(
        model=incident.model, occurred_at__gte=start, occurred_at__lt=end
    )
    key = incident.slice_key
    if key.startswith("site="):
        events = events.filter(site__code=key.partition("=")[2])
    elif key != "all":
        column, _, value = key.partition("=")
        events = events.filter(**{f"cohort__{column}": value})
    agg = events.aggregate(
        predictions=Count("pk"),
        acted=Count("pk", filter=Q(action="act")),
        deferred=Count("pk", filter=Q(action="defer")),
        patients=Count("case_key_hash", distinct=True),
    )
    return {"window": [start.isoformat(), end.isoformat()], **agg}


def assess_impact(*, actor: Any, incident: Incident, assessment: str, harm_found: bool) -> Incident:
    require_perms(actor, "incidents.work_incident")
    if not assessment.strip():
        raise ValidationError({"assessment": "Describe who may have been affected and how."})
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        incident.impact = {
            **impact_counts(incident),
            "assessment": assessment.strip()[:4000],
            "harm_found": bool(harm_found),
            "by": actor.get_username(),
            "at": timezone.now().isoformat(),
        }
        incident.save(update_fields=["impact"])
        c = incident.impact
        note(incident, actor=actor, kind="impact",
             text=f"Impact assessed: {c['predictions']} predictions ({c['acted']} acted on, "
             f"{c['deferred']} deferred) for {c['patients']} patients; harm found: "
             f"{'yes' if harm_found else 'no'}", predictions=c["predictions"],
             patients=c["patients"], harm_found=bool(harm_found))  # fmt: skip
    return incident


def record_review(*, actor: Any, incident: Incident, summary: str,
                  corrective_actions: Sequence[Mapping[str, str]]) -> Incident:  # fmt: skip
    require_perms(actor, "incidents.close_incident")
    review = {
        "summary": summary.strip(),
        "corrective_actions": [dict(a) for a in corrective_actions],
    }
    if not _review_complete(review):
        raise ValidationError({"review": "Give a summary and at least one corrective action, "
                               "each with an action, an owner and a due date."})  # fmt: skip
    with transaction.atomic():
        incident.review = review | {"by": actor.get_username(), "at": timezone.now().isoformat()}
        incident.save(update_fields=["review"])
        note(
            incident,
            actor=actor,
            kind="review",
            text=f"Post-incident review recorded: {len(corrective_actions)} corrective action(s)",
        )
    return incident


# --- notification and escalation ---------------------------------------------------------


def notify_parties(
    parties: Sequence[str],
    *,
    subject: str,
    body: Mapping[str, Any],
    incident: Incident | None = None,
    alert: Alert | None = None,
    is_drill: bool = False,
) -> list[Any]:
    """Notify each RACI party once: a role's active members (and the webhook), or one person.
    A person who no longer exists is recorded as unroutable, never silently dropped."""
    from django.contrib.auth import get_user_model

    from incidents.notify import notify_role, notify_user

    rows: list[Any] = []
    for party in dict.fromkeys(parties):
        kind, _, name = party.partition(":")
        if kind == "role":
            rows += notify_role(role=name, subject=subject, body=body, incident=incident,
                                alert=alert, is_drill=is_drill)  # fmt: skip
            continue
        user = get_user_model().objects.filter(username=name).first()
        if user is not None:
            rows += notify_user(user=user, subject=subject, body=body, incident=incident,
                                alert=alert, is_drill=is_drill)  # fmt: skip
            continue
        record(
            actor=None, action="notification.unroutable",
            summary=f"Nobody to notify (no person {name!r}): {subject}"[:300],
            target=incident or alert, payload={"party": party, "subject": subject},
        )  # fmt: skip
    return rows


def escalate_overdue(*, now: datetime | None = None) -> list[Incident]:
    """An incident not acknowledged by its deadline escalates to the Accountable party of its
    model's RACI row (``incidents.<layer>``), then onward along ``routing.ESCALATION``; each step
    is recorded and notified (beat, every minute)."""
    now = now or timezone.now()
    escalated = []
    for incident in Incident.objects.filter(status=S.TRIGGERED, ack_deadline__lte=now):
        with transaction.atomic():
            incident = Incident.objects.select_for_update().get(pk=incident.pk)
            if incident.status != S.TRIGGERED or incident.ack_deadline > now:
                continue
            chain = routing.escalation_chain(incident.layer, incident.model)
            party = chain[min(incident.escalation_level, len(chain) - 1)]
            role = routing.routed_name(party)
            incident.escalation_level += 1
            incident.ack_deadline = now + routing.ACK_WITHIN[incident.severity]
            incident.save(update_fields=["escalation_level", "ack_deadline"])
            note(
                incident,
                actor=None,
                kind="escalated",
                text=f"Not acknowledged in time: escalated to {role} (level "
                f"{incident.escalation_level})",
                role=role,
                level=incident.escalation_level,
            )
            body = {
                "incident": incident.number,
                "severity": incident.severity,
                "title": incident.title,
                "escalation_level": incident.escalation_level,
                "summary": "Not acknowledged in time.",
            }
            notify_parties(
                [party],
                subject=f"[Vigil {incident.severity}] ESCALATED INC-{incident.number} "
                f"{incident.title}",
                body=body,
                incident=incident,
                is_drill=incident.is_drill,
            )
            escalated.append(incident)
    return escalated


# --- incident roles -------------------------------------------------------------------------

#: The incident roles a person may be given (the RACI's people for this incident).
INCIDENT_ROLES = {
    "commander": "Commander",
    "scribe": "Scribe",
    "clinical_lead": "Clinical lead",
    "model_owner": "Model owner",
}
#: States where an incident's team no longer changes.
FINISHED_STATES = (S.CLOSED, S.CANCELLED, S.MERGED)


def assign_role(*, actor: Any, incident: Incident, role: str, user: Any) -> Incident:
    """Give ``user`` an incident role (commander, scribe, clinical lead, model owner). The
    person must be an active user who may see incidents, never a model service's account."""
    from accounts.permissions import has_perms, is_service_account

    require_perms(actor, "incidents.work_incident")
    if role not in INCIDENT_ROLES:
        raise ValidationError({"role": f"Unknown role {role!r}: one of "
                               f"{', '.join(INCIDENT_ROLES)}."})  # fmt: skip
    if user is None or not getattr(user, "is_active", False):
        raise ValidationError({"username": "Choose an active person."})
    if is_service_account(user):
        raise ValidationError({"username": "A model service's account cannot hold a role."})
    if not has_perms(user, ["incidents.view_incident"]):
        raise ValidationError(
            {"username": f"{user.get_username()} has no role that may see incidents."}
        )
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if incident.status in FINISHED_STATES:
            raise ValidationError({"status": f"A {incident.status} incident's team is final."})
        before = getattr(incident, role)
        if before is not None and before.pk == user.pk:
            raise ValidationError(
                {"username": f"{user.get_username()} is {INCIDENT_ROLES[role].lower()} already."}
            )
        setattr(incident, role, user)
        incident._history_user = actor  # type: ignore[attr-defined]
        incident.save(update_fields=[role])
        text = f"{INCIDENT_ROLES[role]}: {user.get_username()}"
        if before is not None:
            text += f" (was {before.get_username()})"
        note(incident, actor=actor, kind="role", text=text, role=role,
             username=user.get_username(),
             before=before.get_username() if before is not None else None)  # fmt: skip
    return incident
