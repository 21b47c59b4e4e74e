"""Routing and escalation read the model's effective RACI matrix: an alert goes to its layer
row's Responsible (a person or a role), an unacknowledged incident escalates to the row's
Accountable first, then onward as before."""

from __future__ import annotations

from datetime import timedelta

import pytest

from governance import raci
from incidents import routing, services
from incidents.drills import start_drill
from incidents.models import Alert, Notification
from monitoring.runner import run_now
from tests.factories import ClinicalModelFactory, UserFactory
from tests.incidents.test_incidents import _week

pytestmark = pytest.mark.django_db


def _set_row(director, model, activity, *, a="role:medical_director", r=("role:data_engineer",)):
    raci.raci_save(actor=director, model=model, entries={activity: {"A": a, "R": list(r)}},
                   reason="on-call rota")  # fmt: skip


def test_an_alert_routes_to_a_person_named_in_the_models_matrix(
    monitored, days_ago, user_for, director
):
    user_for("data_engineer")
    lead = UserFactory(username="feed.lead", role="data_engineer")
    model = monitored.version.model
    _set_row(director, model, "incidents.data_quality", r=("user:feed.lead", "role:data_engineer"))
    _week(monitored, days_ago)

    run_now(actor=None, window_end=days_ago(0))

    south = Alert.objects.get(slice_key="site=SOUTH", metric="missing_rate:lactate")
    assert south.routed_role == "user:feed.lead"
    incident = south.incident
    assert incident.routed_role == "user:feed.lead"
    assert incident.timeline.filter(kind="triggered", data__routed_to="user:feed.lead").exists()
    # Every Responsible party is notified: the person and the role's members.
    recipients = set(
        Notification.objects.filter(incident=incident, channel="email").values_list(
            "recipient", flat=True
        )
    )
    assert {lead.email, "test-data_engineer@hospital.test"} <= recipients


def test_a_model_without_a_matrix_routes_by_the_default(make_incident, director):
    model = make_incident.version.model
    assert routing.responsible("data_quality", model) == "data_engineer"
    _set_row(director, None, "incidents.data_quality", r=("role:ml_engineer",))
    assert routing.responsible("data_quality", model) == "ml_engineer"
    assert routing.responsible("data_quality", ClinicalModelFactory()) == "ml_engineer"
    assert routing.responsible("no_such_layer", model) == routing.ACCOUNTABLE


def test_a_drill_routes_through_the_models_matrix(monitored, user_for, director):
    UserFactory(username="wf.owner", role="clinical_informaticist")
    model = monitored.version.model
    _set_row(director, model, "incidents.data_quality", r=("user:wf.owner",))
    incident = start_drill(actor=user_for("incident_commander"), version=monitored.version,
                           slice_key="site=NORTH", metric="missing_rate:lactate", band="red",
                           scenario="lab down")  # fmt: skip
    assert incident.routed_role == "user:wf.owner"
    drills = Notification.objects.filter(incident=incident)
    assert drills.exists() and all(n.is_drill for n in drills)


def test_escalation_goes_first_to_the_rows_accountable_then_onward(make_incident, director):
    chief = UserFactory(username="chief.dq", role="medical_director")
    incident = make_incident()
    _set_row(director, incident.model, "incidents.data_quality", a="user:chief.dq")

    (first,) = services.escalate_overdue(now=incident.ack_deadline + timedelta(seconds=1))
    assert first.timeline.filter(kind="escalated", data__role="user:chief.dq").exists()
    escalation = Notification.objects.filter(incident=incident, subject__contains="ESCALATED")
    assert list(escalation.values_list("recipient", flat=True)) == [chief.email]

    levels = []
    for _ in range(3):
        (step,) = services.escalate_overdue(now=first.ack_deadline + timedelta(seconds=1))
        first = step
        levels.append(step.timeline.filter(kind="escalated").order_by("-pk").first().data["role"])
    assert levels == ["medical_director", "incident_commander", "compliance_officer"]


def test_escalation_to_an_accountable_role_skips_it_onward(make_incident, director):
    incident = make_incident()
    _set_row(director, incident.model, "incidents.data_quality", a="role:compliance_officer")
    assert routing.escalation_chain("data_quality", incident.model) == [
        "role:compliance_officer", "role:medical_director", "role:incident_commander",
    ]  # fmt: skip
    assert routing.escalation_chain("data_quality", ClinicalModelFactory()) == [
        "role:medical_director", "role:incident_commander", "role:compliance_officer",
    ]  # fmt: skip


def test_a_person_who_no_longer_exists_is_recorded_as_unroutable(make_incident):
    from governance.audit.models import AuditEvent

    incident = make_incident()
    assert services.notify_parties(["user:nobody"], subject="s", body={"n": 1},
                                   incident=incident) == []  # fmt: skip
    assert AuditEvent.objects.filter(action="notification.unroutable",
                                     payload__party="user:nobody").exists()  # fmt: skip


def test_routed_names_round_trip_and_fit_the_column():
    assert routing.routed_name("role:ml_engineer") == "ml_engineer"
    assert routing.routed_name("user:alice") == "user:alice"
    assert routing.party_of("ml_engineer") == "role:ml_engineer"
    assert routing.party_of("user:alice") == "user:alice"
