"""The incident API: alerts (list, filters, suppress) and incidents (list, filters, detail,
one action per transition, impact, runbook steps, review) — refusals are 400 with field
messages, 403 for roles, 404 for unknown numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from incidents.models import Alert, Incident, Suppression
from monitoring.runner import run_now
from tests.incidents.test_incidents import _week

pytestmark = pytest.mark.django_db


def url(number, action=""):
    return f"/api/v1/incidents/{number}/" + (f"{action}/" if action else "")


# --- alerts ----------------------------------------------------------------------------------


def test_it_lists_alerts_with_filters(api, make_incident):
    make_incident(1, site="NORTH", band="red")
    make_incident(2, site="SOUTH", band="orange", metric="psi:lactate")
    viewer = api("viewer")

    body = viewer.get("/api/v1/alerts/").json()
    assert body["count"] == 2
    assert {a["site"] for a in body["results"]} == {"NORTH", "SOUTH"}
    first = body["results"][0]
    assert first["payload"]["summary"] and first["incident"] in (1, 2)
    assert viewer.get("/api/v1/alerts/?site=SOUTH").json()["count"] == 1
    assert viewer.get("/api/v1/alerts/?band=red").json()["results"][0]["site"] == "NORTH"
    assert viewer.get("/api/v1/alerts/?metric=psi:lactate").json()["count"] == 1
    assert viewer.get("/api/v1/alerts/?slice=site=NORTH").json()["count"] == 1
    assert viewer.get("/api/v1/alerts/?layer=data_quality").json()["count"] == 2
    assert viewer.get("/api/v1/alerts/?status=resolved").json()["count"] == 0
    model = make_incident.version.model.slug
    assert viewer.get(f"/api/v1/alerts/?model={model}").json()["count"] == 2
    assert viewer.get("/api/v1/alerts/?model=nope").json()["count"] == 0
    assert APIClient().get("/api/v1/alerts/").status_code in (401, 403)


def test_it_suppresses_an_alert_for_its_owner_and_refuses_others(api, make_incident):
    make_incident(1)
    alert = Alert.objects.get()
    path = f"/api/v1/alerts/{alert.pk}/suppress/"

    assert (
        api("viewer").post(path, {"reason": "noise", "days": 3}, format="json").status_code == 403
    )
    engineer = api("data_engineer")
    blank = engineer.post(path, {"reason": "", "days": 3}, format="json")
    assert blank.status_code == 400 and "reason" in blank.json()
    too_long = engineer.post(path, {"reason": "lab upgrade", "days": 120}, format="json")
    assert too_long.status_code == 400 and "days" in too_long.json()
    assert engineer.post("/api/v1/alerts/999999/suppress/", {}, format="json").status_code == 404

    done = engineer.post(path, {"reason": "lab upgrade", "days": 3}, format="json")
    assert done.status_code == 201
    assert done.json()["fingerprint"] == alert.fingerprint
    assert Suppression.objects.get().reason == "lab upgrade"


# --- incidents: reads ------------------------------------------------------------------------


def test_it_lists_incidents_most_severe_first_with_filters(api, make_incident, user_for):
    commander = user_for("incident_commander")
    make_incident(1, severity="SEV3", site="A")
    make_incident(2, severity="SEV1", site="B", routed_role="ml_engineer")
    make_incident(3, severity="SEV2", site="C", status="acknowledged", commander=commander)
    reader = api("incident_commander")

    body = reader.get("/api/v1/incidents/").json()
    assert [i["number"] for i in body["results"]] == [2, 3, 1]
    assert body["results"][0]["severity"] == "SEV1" and "alerts" not in body["results"][0]
    assert [i["number"] for i in reader.get("/api/v1/incidents/?mine=true").json()["results"]] == [
        3
    ]
    assert reader.get("/api/v1/incidents/?status=acknowledged").json()["count"] == 1
    assert reader.get("/api/v1/incidents/?severity=SEV3").json()["results"][0]["number"] == 1
    assert reader.get("/api/v1/incidents/?routed_role=ml_engineer").json()["count"] == 1
    slug = make_incident.version.model.slug
    assert reader.get(f"/api/v1/incidents/?model={slug}").json()["count"] == 3
    bad = reader.get("/api/v1/incidents/?severity=SEV9")
    assert bad.status_code == 400


def test_it_shows_an_incident_with_alerts_timeline_and_runbook(api, make_incident):
    make_incident(7)
    detail = api("viewer").get(url(7))
    assert detail.status_code == 200
    body = detail.json()
    assert body["number"] == 7 and body["site"] == "NORTH"
    assert body["alerts"][0]["payload"]["recommended_response"] == "check the feed"
    assert body["runbook"]["title"].startswith("Data quality")
    steps = body["runbook"]["steps"]
    assert len(steps) == 5 and steps[0]["check"] is None and steps[0]["evidence_needed"]
    assert body["impact"] == {} and body["review"] == {}
    assert "record the patient-impact assessment" in body["closure_gaps"]
    assert body["actions"] == []  # a viewer may do nothing
    assert api("incident_commander").get(url(7)).json()["actions"] == [
        "acknowledge", "cancel", "merge",
    ]  # fmt: skip
    missing = api("viewer").get(url(99))
    assert missing.status_code == 404 and "INC-99" in missing.json()["detail"]


# --- incidents: the lifecycle ----------------------------------------------------------------


def test_the_lifecycle_over_the_api_on_a_real_incident(monitored, days_ago, api):
    _week(monitored, days_ago)
    run_now(actor=None, window_end=days_ago(0))
    number = Incident.objects.get().number
    commander, engineer, viewer = api("incident_commander"), api("data_engineer"), api("viewer")

    assert viewer.post(url(number, "acknowledge"), {}, format="json").status_code == 403
    skip = commander.post(url(number, "investigate"), {}, format="json")
    assert skip.status_code == 400
    assert "next step is acknowledged" in skip.json()["status"][0]

    ack = engineer.post(url(number, "acknowledge"), {"reason": "on it"}, format="json")
    assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
    assert ack.json()["commander"] == "test-data_engineer"
    assert commander.post(url(number, "investigate"), {}, format="json").json()["status"] == (
        "investigating"
    )
    assert commander.post(url(number, "mitigate"), {}, format="json").status_code == 200

    # Resolving a red incident needs the impact assessment and every step's evidence.
    refused = commander.post(url(number, "resolve"), {}, format="json")
    assert refused.status_code == 400 and "patient-impact" in refused.json()["status"][0]
    assert engineer.post(url(number, "resolve"), {}, format="json").status_code == 403

    blank = commander.post(url(number, "impact"), {"assessment": " ", "harm_found": False},
                           format="json")  # fmt: skip
    assert blank.status_code == 400 and "assessment" in blank.json()
    impact = commander.post(url(number, "impact"),
                            {"assessment": "Lactate absent; more deferrals", "harm_found": False},
                            format="json")  # fmt: skip
    assert impact.status_code == 200
    assert impact.json()["impact"]["predictions"] == 660

    for step in range(5):
        done = engineer.post(url(number, f"steps/{step}"), {"evidence": f"seen {step}"},
                             format="json")  # fmt: skip
        assert done.status_code == 200, done.json()
    assert all(s["check"] for s in done.json()["runbook"]["steps"])
    resolved = commander.post(url(number, "resolve"), {}, format="json")
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"

    early = commander.post(url(number, "close"), {}, format="json")
    assert early.status_code == 400 and "review" in early.json()
    review = {
        "summary": "Feed fixed",
        "corrective_actions": [
            {"action": "Alarm on the lab feed", "owner": "dataengineer", "due": "2026-12-31"}
        ],
    }
    assert engineer.post(url(number, "review"), review, format="json").status_code == 403
    recorded = commander.post(url(number, "review"), review, format="json")
    assert recorded.status_code == 200
    assert recorded.json()["review"]["corrective_actions"][0]["due"] == "2026-12-31"
    closed = commander.post(url(number, "close"), {}, format="json").json()
    assert closed["status"] == "closed"
    kinds = [e["kind"] for e in closed["timeline"]]
    assert kinds[0] == "triggered" and kinds[-1] == "closed"
    assert {"acknowledged", "impact", "step", "review", "resolved"} <= set(kinds)


def test_each_transition_is_refused_out_of_order(api, make_incident):
    make_incident(1)
    commander = api("incident_commander")
    for action in ("investigate", "mitigate", "resolve", "close"):
        response = commander.post(url(1, action), {}, format="json")
        assert response.status_code == 400, action
        assert "next step is acknowledged" in response.json()["status"][0]
    assert commander.post(url(42, "acknowledge"), {}, format="json").status_code == 404


def test_cancel_needs_a_reason(api, make_incident):
    make_incident(1)
    commander = api("incident_commander")
    refused = commander.post(url(1, "cancel"), {}, format="json")
    assert refused.status_code == 400 and "false positive" in refused.json()["reason"][0]
    done = commander.post(url(1, "cancel"), {"reason": "lab maintenance"}, format="json")
    assert (
        done.json()["status"] == "cancelled" and done.json()["cancel_reason"] == "lab maintenance"
    )
    again = commander.post(url(1, "acknowledge"), {}, format="json")
    assert again.status_code == 400


def test_merge_needs_another_open_incident(api, make_incident):
    make_incident(1)
    make_incident(2, site="SOUTH")
    engineer = api("ml_engineer")
    assert engineer.post(url(1, "merge"), {}, format="json").json().keys() == {"into"}
    assert "INC-77" in engineer.post(url(1, "merge"), {"into": 77}, format="json").json()["into"][0]
    assert engineer.post(url(1, "merge"), {"into": 1}, format="json").status_code == 400
    merged = engineer.post(url(1, "merge"), {"into": 2, "reason": "same feed"}, format="json")
    assert merged.status_code == 200 and merged.json()["merged_into"] == 2
    into = engineer.get(url(2)).json()
    assert len(into["alerts"]) == 2
    assert any(e["kind"] == "merged_in" for e in into["timeline"])


def test_runbook_steps_refuse_unknown_steps_blank_evidence_and_repeats(api, make_incident):
    make_incident(1)
    engineer = api("data_engineer")
    assert engineer.post(url(1, "steps/9"), {"evidence": "x"}, format="json").json().keys() == {
        "step"
    }
    blank = engineer.post(url(1, "steps/0"), {"evidence": ""}, format="json")
    assert blank.status_code == 400 and "evidence" in blank.json()
    assert (
        engineer.post(url(1, "steps/0"), {"evidence": "feed logs"}, format="json").status_code
        == 200
    )
    again = engineer.post(url(1, "steps/0"), {"evidence": "again"}, format="json")
    assert again.status_code == 400 and "already" in again.json()["step"][0]
    assert (
        api("viewer").post(url(1, "steps/1"), {"evidence": "x"}, format="json").status_code == 403
    )


def test_a_review_needs_a_summary_and_complete_corrective_actions(api, make_incident):
    make_incident(1)
    commander = api("incident_commander")
    empty = commander.post(url(1, "review"), {"summary": "x", "corrective_actions": []},
                           format="json")  # fmt: skip
    assert empty.status_code == 400 and "corrective_actions" in empty.json()
    partial = commander.post(
        url(1, "review"),
        {"summary": "x", "corrective_actions": [{"action": "fix", "owner": ""}]},
        format="json",
    )
    assert partial.status_code == 400
    assert {"corrective_actions[0].owner", "corrective_actions[0].due"} <= partial.json().keys()


# --- incident roles --------------------------------------------------------------------------


def test_assign_gives_a_person_an_incident_role_on_the_timeline(api, make_incident, user_for):
    make_incident(1)
    scribe = user_for("quality_safety")
    engineer = api("data_engineer")
    assert (
        api("viewer")
        .post(url(1, "assign"), {"role": "scribe", "username": scribe.username}, format="json")
        .status_code
        == 403
    )
    unknown = engineer.post(url(1, "assign"), {"role": "cook", "username": "nobody"},
                            format="json")  # fmt: skip
    assert unknown.status_code == 400 and {"role", "username"} <= unknown.json().keys()

    done = engineer.post(url(1, "assign"), {"role": "scribe", "username": scribe.username},
                         format="json")  # fmt: skip
    assert done.status_code == 200 and done.json()["scribe"] == scribe.username
    entry = done.json()["timeline"][-1]
    assert entry["kind"] == "role" and entry["text"] == f"Scribe: {scribe.username}"
    again = engineer.post(url(1, "assign"), {"role": "scribe", "username": scribe.username},
                          format="json")  # fmt: skip
    assert again.status_code == 400 and "already" in again.json()["username"][0]
    lead = user_for("clinical_informaticist")
    owner = engineer.post(url(1, "assign"), {"role": "model_owner", "username": lead.username},
                          format="json").json()  # fmt: skip
    assert owner["model_owner"] == lead.username
    assert [i["number"] for i in api("quality_safety").get(
        "/api/v1/incidents/?mine=true").json()["results"]] == [1]  # fmt: skip


def test_assign_refuses_service_accounts_inactive_users_and_finished_incidents(
    make_incident, user_for
):
    from django.core.exceptions import ValidationError

    from accounts.services import service_account_create
    from incidents.services import assign_role
    from tests.factories import UserFactory

    incident = make_incident(1)
    actor = user_for("incident_commander")
    service = service_account_create(actor=None, name="svc", model_slugs=[incident.model.slug])
    for person, text in [
        (service.account.user, "service"),
        (UserFactory(username="gone", role="viewer", is_active=False), "active person"),
        (UserFactory(username="norole"), "no role"),
    ]:
        with pytest.raises(ValidationError) as refused:
            assign_role(actor=actor, incident=incident, role="commander", user=person)
        assert text in refused.value.message_dict["username"][0]
    incident.status = "closed"
    incident.save()
    with pytest.raises(ValidationError) as closed:
        assign_role(actor=actor, incident=incident, role="scribe", user=actor)
    assert "final" in closed.value.message_dict["status"][0]
    assert not incident.timeline.filter(kind="role").exists()


# --- the kill switch -------------------------------------------------------------------------


@pytest.fixture
def deployed(make_incident, user_for):
    from registry import services as registry

    incident = make_incident(1)
    deployment = registry.deployment_start(
        actor=user_for("medical_director"), version=make_incident.version, site=incident.site,
        reason="launch",
    )  # fmt: skip
    return incident, deployment


def test_freeze_and_unfreeze_over_the_api(api, deployed, password):
    from registry.models import Deployment

    incident, deployment = deployed
    body = {"site": "NORTH", "reason": "scores unreliable"}
    assert api("data_engineer").post(url(1, "freeze"), body, format="json").status_code == 403
    commander = api("incident_commander")
    nowhere = commander.post(url(1, "freeze"), {"site": "SOUTH", "reason": "x"}, format="json")
    assert nowhere.status_code == 400 and "SOUTH" in nowhere.json()["site"][0]
    frozen = commander.post(url(1, "freeze"), body, format="json")
    assert frozen.status_code == 200
    assert frozen.json()["deployments"] == [
        {"site": "NORTH", "version": deployment.version.version, "frozen": True,
         "frozen_reason": "scores unreliable"}
    ]  # fmt: skip
    assert frozen.json()["timeline"][-1]["kind"] == "freeze"
    twice = commander.post(url(1, "freeze"), body, format="json")
    assert twice.status_code == 400 and "already frozen" in twice.json()["frozen"][0]

    unfreeze = {"site": "NORTH", "reason": "fixed", "password": password}
    assert commander.post(url(1, "unfreeze"), unfreeze, format="json").status_code == 403
    assert Deployment.objects.get(pk=deployment.pk).frozen
    director = api("medical_director")
    wrong = director.post(url(1, "unfreeze"), {**unfreeze, "password": "nope"}, format="json")
    assert wrong.status_code == 400 and "password does not match" in wrong.json()["password"][0]
    assert Deployment.objects.get(pk=deployment.pk).frozen
    assert not incident.timeline.filter(kind="unfreeze").exists()
    missing = director.post(url(1, "unfreeze"), {"site": "NORTH", "reason": "x"}, format="json")
    assert missing.status_code == 400 and "password" in missing.json()
    done = director.post(url(1, "unfreeze"), unfreeze, format="json")
    assert done.status_code == 200 and done.json()["deployments"][0]["frozen"] is False
    assert done.json()["timeline"][-1]["kind"] == "unfreeze"


# --- drills and statistics -------------------------------------------------------------------


def test_a_drill_over_the_api_is_labelled_and_left_out_of_the_statistics(
    api, make_incident, user_for
):
    incident = make_incident(1, severity="SEV2")
    incident.acknowledged_at = incident.triggered_at + timedelta(hours=2)
    incident.status = "acknowledged"
    incident.save()
    model, version = make_incident.version.model.slug, make_incident.version.version
    drill = {"model": model, "version": version, "slice": "all", "metric": "auc",
             "band": "red", "scenario": "AUC collapses overnight"}  # fmt: skip
    assert api("data_engineer").post("/api/v1/drills/", drill, format="json").status_code == 403
    commander = api("incident_commander")
    bad = commander.post("/api/v1/drills/", {**drill, "metric": "nope", "band": "orange",
                         "scenario": " "}, format="json")  # fmt: skip
    assert bad.status_code == 400 and {"metric", "scenario"} <= bad.json().keys()
    nowhere = commander.post("/api/v1/drills/", {**drill, "slice": "site=MARS"}, format="json")
    assert nowhere.status_code == 400 and "MARS" in nowhere.json()["slice"][0]
    unknown = commander.post("/api/v1/drills/", {**drill, "version": "9.9"}, format="json")
    assert unknown.status_code == 400 and "version" in unknown.json()

    started = commander.post("/api/v1/drills/", drill, format="json")
    assert started.status_code == 201, started.json()
    body = started.json()
    assert body["is_drill"] is True and body["alerts"][0]["is_drill"] is True
    assert all(n["recipient"].startswith("drill:") for n in body["notifications"])
    assert "body" not in (body["notifications"] or [{}])[0]

    stats = api("viewer").get("/api/v1/incidents/stats/")
    assert stats.status_code == 200
    (row,) = stats.json()
    assert row["model"] == model and row["severity"] == "SEV2" and row["incidents"] == 1
    assert row["acknowledge"] == {"n": 1, "median_hours": 2.0, "max_hours": 2.0}
    assert api("viewer").get("/api/v1/incidents/stats/?model=other").json() == []
