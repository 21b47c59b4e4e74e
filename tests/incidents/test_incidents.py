"""From results to alerts and incidents: raising, deduplication, root slice, suppression,
return to green, the lifecycle, escalation on a controlled clock, and the kill switch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from governance.audit.models import AuditEvent
from incidents import services
from incidents.alerts import lift_expired, suppress
from incidents.models import Alert, AlertOccurrence, Incident, Notification, TimelineEntry
from incidents.notify import check_aggregate_only
from monitoring.models import MetricResult, MonitorPolicy
from monitoring.runner import run_now
from registry.models import Deployment
from tests.factories import PASSWORD
from tests.monitoring.engine.conftest import rows

pytestmark = pytest.mark.django_db


def _week(monitored, days_ago, *, south_missing=0.7, tier="moderate", seed=0):
    model = monitored.version.model
    model.risk_tier = tier
    model.save()
    MonitorPolicy.objects.create(
        model=model, windows=[7], reason="t", updated_by=monitored.gate.engineer
    )
    monitored.upload_reference(n=1500)
    for back in range(1, 8):
        north = rows(110, seed=seed + 100 + back)
        monitored.label(monitored.send(north, day=days_ago(back), site="NORTH"), north)
        south = rows(110, seed=seed + 200 + back, lactate_missing=south_missing)
        monitored.label(monitored.send(south, day=days_ago(back), site="SOUTH"), south)


def test_a_confident_problem_raises_one_alert_routed_to_its_owner_and_one_incident(
    monitored, days_ago, user_for
):
    user_for("data_engineer")
    _week(monitored, days_ago)

    run_now(actor=None, window_end=days_ago(0))

    south = Alert.objects.get(slice_key="site=SOUTH", metric="missing_rate:lactate")
    assert south.band == "red" and south.reason == "confident"
    assert south.routed_role == "data_engineer"
    payload = south.payload
    assert payload["slice_words"] == "site SOUTH" and payload["n"] == 660
    assert "Missing rate" in payload["summary"]
    # The response comes from the alert type's runbook (the seeded data-quality one).
    assert "Runbook “Data quality" in payload["recommended_response"]
    assert "1. Validate the signal" in payload["recommended_response"]
    check_aggregate_only(payload)  # no case key, no feature value
    assert "case" not in str(payload).lower().replace("cases", "")
    # The same problem seen in the whole deployment and the cohorts joins SOUTH's incident.
    incident = Incident.objects.get()
    assert incident.slice_key == "site=SOUTH" and incident.routed_role == "data_engineer"
    assert set(incident.alerts.values_list("metric", flat=True)) == {"missing_rate:lactate"}
    assert incident.alerts.filter(slice_key="all").exists()
    assert incident.severity == "SEV2"  # red on a moderate tier
    assert incident.timeline.filter(kind="triggered").exists()
    sent = Notification.objects.filter(incident=incident)
    assert sent.exists() and all(n.recipient for n in sent)
    assert not Alert.objects.filter(slice_key="site=NORTH").exists()

    # Evaluating again: the same alert gains nothing new (deduplicated), no second incident.
    run_now(actor=None, window_end=days_ago(0))
    assert Alert.objects.filter(slice_key="site=SOUTH", metric="missing_rate:lactate").count() == 1
    assert AlertOccurrence.objects.filter(alert=south).count() == 1
    assert Incident.objects.count() == 1


def test_backfilled_windows_never_page(monitored, days_ago):
    _week(monitored, days_ago)
    run_now(actor=None, window_end=days_ago(3))
    assert MetricResult.objects.filter(band="red").exists()
    assert not Alert.objects.exists()


def test_a_suppressed_fingerprint_stays_quiet_until_it_expires(monitored, days_ago, user_for):
    _week(monitored, days_ago)
    run_now(actor=None, window_end=days_ago(0))
    alert = Alert.objects.get(slice_key="site=SOUTH", metric="missing_rate:lactate")
    with pytest.raises(PermissionDenied):
        suppress(actor=user_for("viewer"), alert=alert, reason="noise", days=3)
    with pytest.raises(ValidationError):
        suppress(actor=user_for("data_engineer"), alert=alert, reason=" ", days=3)
    suppression = suppress(actor=user_for("data_engineer"), alert=alert, reason="lab upgrade",
                           days=3)  # fmt: skip
    alert.status = "resolved"
    alert.save()

    run_now(actor=None, window_end=days_ago(0))
    assert not Alert.objects.filter(fingerprint=alert.fingerprint, status="open").exists()

    assert lift_expired(now=suppression.expires_at + timedelta(seconds=1)) == 1
    assert AuditEvent.objects.filter(action="alert.suppression_lifted").exists()
    run_now(actor=None, window_end=days_ago(0))
    assert Alert.objects.filter(fingerprint=alert.fingerprint, status="open").exists()


def _incident(monitored, days_ago):
    _week(monitored, days_ago)
    run_now(actor=None, window_end=days_ago(0))
    return Incident.objects.get()


def test_the_lifecycle_allows_each_next_step_and_refuses_skips(monitored, days_ago, user_for):
    incident = _incident(monitored, days_ago)
    commander = user_for("incident_commander")
    with pytest.raises(ValidationError, match="next step is acknowledged"):
        services.transition(actor=commander, incident=incident, to="investigating")
    with pytest.raises(PermissionDenied):
        services.transition(actor=user_for("viewer"), incident=incident, to="acknowledged")
    before = incident.triggered_at - timedelta(minutes=1)
    with pytest.raises(ValidationError, match="cannot come before"):
        services.transition(actor=commander, incident=incident, to="acknowledged", at=before)

    incident = services.transition(actor=commander, incident=incident, to="acknowledged")
    assert incident.commander == commander and incident.acknowledged_at is not None
    incident = services.transition(actor=commander, incident=incident, to="investigating")
    incident = services.transition(actor=commander, incident=incident, to="mitigated")
    # Red: resolving needs the impact assessment and every runbook step's evidence.
    with pytest.raises(ValidationError, match="patient-impact assessment"):
        services.transition(actor=commander, incident=incident, to="resolved")
    incident = services.assess_impact(
        actor=commander,
        incident=incident,
        assessment="Lactate absent; deferrals rose",
        harm_found=False,
    )
    assert incident.impact["predictions"] == 660 and incident.impact["patients"] == 660
    for step in range(5):
        services.check_step(actor=commander, incident=incident, step=step, evidence=f"done {step}")
    with pytest.raises(ValidationError):
        services.check_step(actor=commander, incident=incident, step=0, evidence="again")
    incident = services.transition(actor=commander, incident=incident, to="resolved")
    with pytest.raises(ValidationError, match="post-incident review"):
        services.transition(actor=commander, incident=incident, to="closed")
    with pytest.raises(ValidationError):
        services.record_review(
            actor=commander,
            incident=incident,
            summary="x",
            corrective_actions=[{"action": "fix", "owner": ""}],
        )
    services.record_review(
        actor=commander,
        incident=incident,
        summary="Feed fixed",
        corrective_actions=[
            {"action": "Monitor the lab interface", "owner": "dataengineer", "due": "2026-12-31"}
        ],
    )
    incident = services.transition(actor=commander, incident=incident, to="closed")
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds[-1] == "closed" and "impact" in kinds and "review" in kinds
    assert AuditEvent.objects.filter(action="incident.closed").exists()
    with pytest.raises(TypeError):
        entry = TimelineEntry.objects.first()
        entry.text = "rewritten"
        entry.save()


def test_cancel_needs_a_reason_and_merge_needs_another_open_incident(monitored, days_ago, user_for):
    incident = _incident(monitored, days_ago)
    commander = user_for("incident_commander")
    with pytest.raises(ValidationError):
        services.transition(actor=commander, incident=incident, to="cancelled")
    with pytest.raises(ValidationError):
        services.transition(actor=commander, incident=incident, to="merged", into=incident)
    incident = services.transition(
        actor=commander, incident=incident, to="cancelled", reason="lab maintenance, announced"
    )
    assert incident.status == "cancelled" and incident.cancel_reason.startswith("lab")
    with pytest.raises(ValidationError):
        services.transition(actor=commander, incident=incident, to="acknowledged")


def test_an_unacknowledged_incident_escalates_on_time_and_not_before(monitored, days_ago, user_for):
    user_for("medical_director")
    incident = _incident(monitored, days_ago)
    assert services.escalate_overdue(now=incident.ack_deadline - timedelta(seconds=1)) == []
    (escalated,) = services.escalate_overdue(now=incident.ack_deadline + timedelta(seconds=1))
    assert escalated.escalation_level == 1
    assert escalated.timeline.filter(kind="escalated", data__role="medical_director").exists()
    assert Notification.objects.filter(incident=incident, subject__contains="ESCALATED").exists()
    # Onward: the next deadline passes too.
    (again,) = services.escalate_overdue(now=escalated.ack_deadline + timedelta(seconds=1))
    assert again.escalation_level == 2
    assert again.timeline.filter(kind="escalated", data__role="incident_commander").exists()
    services.transition(actor=user_for("incident_commander"), incident=again, to="acknowledged")
    assert services.escalate_overdue(now=timezone.now() + timedelta(days=30)) == []


def test_red_on_a_high_tier_model_freezes_it_and_the_gate_defers(monitored, days_ago, user_for):
    _week(monitored, days_ago, tier="high")
    run_now(actor=None, window_end=days_ago(0))
    incident = Incident.objects.get(slice_key="site=SOUTH")
    assert incident.severity == "SEV1"
    south = Deployment.objects.get(site__code="SOUTH", ended_at__isnull=True)
    assert south.frozen
    # The whole deployment's and the cohorts' echoes of SOUTH's problem stop SOUTH only.
    assert not Deployment.objects.get(site__code="NORTH", ended_at__isnull=True).frozen
    assert incident.title.endswith("— site SOUTH")
    assert incident.timeline.filter(kind="freeze").exists()
    answer = monitored.gate.post(site="SOUTH").json()
    assert answer["action"] == "defer"
    assert any(r["code"] == "frozen_deployment" for r in answer["reasons"])

    director = user_for("medical_director")
    with pytest.raises(PermissionDenied):
        services.unfreeze(actor=user_for("incident_commander"), incident=incident,
                          deployment=south, reason="fixed", password="x")  # fmt: skip
    with pytest.raises(ValidationError, match="password"):
        services.unfreeze(actor=director, incident=incident, deployment=south, reason="fixed",
                          password="wrong")  # fmt: skip
    services.unfreeze(actor=director, incident=incident, deployment=south, reason="feed fixed",
                      password=PASSWORD)  # fmt: skip
    assert not Deployment.objects.get(pk=south.pk).frozen
    assert incident.timeline.filter(kind="unfreeze").exists()


def _result(version, end, band, *, clears=False, value=0.1):
    return MetricResult.objects.create(
        model=version.model, version=version, site=None, slice_key="sex=F", layer="outcome",
        metric="outcome_rate", window_days=7, window_start=end - timedelta(days=6),
        window_end=end, value=value, low=0.0, high=0.2, n=300, baseline=0.05, band=band,
        clears_threshold=clears, thresholds={"yellow": 0.03, "orange": 0.05, "red": 0.08},
        details={"deviation": [value - 0.05, -0.05, 0.15], "min_n": 100},
    )  # fmt: skip


def test_a_result_worse_than_green_for_k_evaluations_in_a_row_is_sustained(
    monitored, days_ago, user_for
):
    """Not confident on any day (its interval reaches green), but yellow k days running: the
    policy's k decides when that pages."""
    from incidents.alerts import process_results

    user_for("quality_safety")
    version = monitored.version
    MonitorPolicy.objects.create(model=version.model, windows=[7], sustained_windows=2,
                                 reason="t", updated_by=monitored.gate.engineer)  # fmt: skip
    _result(version, days_ago(1), "yellow")
    _result(version, days_ago(0), "yellow")
    process_results(version=version, window_end=days_ago(0))
    alert = Alert.objects.get(metric="outcome_rate")
    assert alert.reason == "sustained" and alert.routed_role == "quality_safety"
    assert "2 consecutive evaluations" in alert.payload["confidence"]
    assert not Incident.objects.exists()  # yellow stays on the watch list

    # It worsens to orange: the alert escalates (notified) and now has an incident.
    MetricResult.objects.filter(window_end=days_ago(0)).delete()
    _result(version, days_ago(0), "orange", clears=True, value=0.11)
    process_results(version=version, window_end=days_ago(0))
    alert.refresh_from_db()
    assert alert.worst_band == "orange" and alert.incident is not None
    assert Notification.objects.filter(alert=alert, subject__contains="Alert worse").exists()

    # One green evaluation: an orange alert is only suggested for resolution, never closed.
    MetricResult.objects.filter(window_end=days_ago(0)).delete()
    _result(version, days_ago(0), "green", value=0.05)
    process_results(version=version, window_end=days_ago(0))
    alert.refresh_from_db()
    assert alert.status == "open" and alert.green_since == days_ago(0)
    assert AuditEvent.objects.filter(action="alert.back_to_green").exists()


def test_no_alert_or_notification_carries_a_case_key_or_an_input_value(
    monitored, days_ago, user_for
):
    from monitoring.models import PredictionEvent

    user_for("data_engineer")
    _week(monitored, days_ago, tier="high")
    run_now(actor=None, window_end=days_ago(0))
    hashes = set(PredictionEvent.objects.values_list("case_key_hash", flat=True)[:2000])
    texts = [str(a.payload) for a in Alert.objects.all()]
    texts += [f"{n.subject} {n.body}" for n in Notification.objects.all()]
    assert texts and Notification.objects.exists()
    for text in texts:
        assert "case-" not in text and not any(h in text for h in hashes)
        assert "heart_rate" not in text or "Missing rate" in text
    for alert in Alert.objects.all():
        check_aggregate_only(alert.payload)
