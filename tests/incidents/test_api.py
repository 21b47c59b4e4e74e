"""The incident API: alerts (list, filters, suppress) and incidents (list, filters, detail,
one action per transition, impact, runbook steps, review) — refusals are 400 with field
messages, 403 for roles, 404 for unknown numbers."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from incidents.models import Alert, Incident, Suppression
from monitoring.runner import run_now
from tests.factories import ModelVersionFactory, SiteFactory
from tests.incidents.test_incidents import _week

pytestmark = pytest.mark.django_db
_fingerprints = itertools.count()


@pytest.fixture
def make_incident():
    """A red data-quality incident with one alert, as ``attach_to_incidents`` leaves one: cheap,
    for the tests that do not need the monitoring engine (one test below uses the engine)."""
    version = ModelVersionFactory()
    sites = {}

    def make(
        number=1, *, severity="SEV2", band="red", status="triggered", site="NORTH",
        routed_role="data_engineer", commander=None, metric="missing_rate:lactate",
    ):  # fmt: skip
        if site not in sites:
            sites[site] = SiteFactory(code=site)
        incident = Incident.objects.create(
            number=number, model=version.model, site=sites[site], slice_key=f"site={site}",
            title=f"{metric} at {site}", severity=severity, band=band, layer="data_quality",
            routed_role=routed_role, status=status, commander=commander,
            ack_deadline=timezone.now() + timedelta(hours=1),
        )  # fmt: skip
        Alert.objects.create(
            model=version.model, version=version, site=sites[site], slice_key=f"site={site}",
            metric=metric, layer="data_quality", fingerprint=f"{next(_fingerprints):064d}",
            band=band, worst_band=band, reason="confident", routed_role=routed_role,
            payload={"summary": f"{metric} is bad", "confidence": "sure",
                     "clinical_impact": "scores on incomplete data",
                     "recommended_response": "check the feed",
                     "links": {"metric": f"/monitoring/{version.model.slug}/metric/{metric}/"}},
            incident=incident,
        )  # fmt: skip
        return incident

    make.version = version
    return make


@pytest.fixture
def api(user_for):
    def client(role):
        c = APIClient()
        c.force_login(user_for(role))
        return c

    return client


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
