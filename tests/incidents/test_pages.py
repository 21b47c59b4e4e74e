"""The incident pages: the queue (tabs, order, overdue), the work page (alerts, runbook,
impact, review, timeline, buttons only when allowed, the kill switch) and the alert list with
suppression. Every refused action comes back as a message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from incidents.models import Alert, Incident, Suppression
from registry import services as registry
from registry.models import Deployment
from tests.factories import PASSWORD
from tests.incidents import test_api

pytestmark = pytest.mark.django_db
make_incident = test_api.make_incident  # the cheap incident fixture, shared


@pytest.fixture
def page(user_for):
    def client(role):
        c = Client()
        c.force_login(user_for(role))
        return c

    return client


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_it_queues_incidents_by_tab_severity_then_age_with_overdue_in_red(
    page, make_incident, user_for
):
    commander = user_for("incident_commander")
    make_incident(1, severity="SEV3", site="A")
    make_incident(2, severity="SEV1", site="B")
    make_incident(3, severity="SEV2", site="C", status="acknowledged", commander=commander)
    late = Incident.objects.get(number=2)
    late.ack_deadline = timezone.now() - timedelta(minutes=5)
    late.save()
    client = page("incident_commander")

    default = client.get("/incidents/")
    assert default.status_code == 200 and default.context["tab"] == "mine"
    assert [i.number for i, _ in default.context["rows"]] == [3]

    everything = client.get("/incidents/?tab=all")
    assert [i.number for i, _ in everything.context["rows"]] == [2, 3, 1]
    html = everything.content.decode()
    row = {n: html.split(f'id="incident-{n}"')[1].split("</tr>")[0] for n in (1, 2)}
    assert 'class="overdue"' in row[2] and "overdue" not in row[1]

    team = page("data_engineer").get("/incidents/?tab=team")
    assert [i.number for i, _ in team.context["rows"]] == [2, 3, 1]
    assert page("reviewer").get("/incidents/").context["tab"] == "all"  # nothing mine or team
    assert b">Incidents</a>" in page("viewer").get("/incidents/").content


def test_the_work_page_shows_alerts_runbook_impact_and_only_allowed_buttons(page, make_incident):
    make_incident(1)
    viewer = page("viewer").get("/incidents/1/")
    assert viewer.status_code == 200
    html = viewer.content.decode()
    assert "missing_rate:lactate is bad" in html and "check the feed" in html
    assert "scores on incomplete data" in html and "/metric/missing_rate:lactate/" in html
    assert "Validate the signal" in html and 'id="impact-counts"' in html
    assert 'id="do-acknowledge"' not in html and 'id="check-0"' not in html
    assert 'id="do-freeze"' not in html and 'id="do-review"' not in html

    html = page("data_engineer").get("/incidents/1/").content.decode()
    assert 'id="do-acknowledge"' in html and 'id="do-cancel"' in html
    assert 'id="do-investigate"' not in html and 'id="do-resolve"' not in html
    assert 'id="check-0"' in html and 'id="do-impact"' in html
    assert 'id="do-review"' not in html  # closing is the commanders'
    assert page("viewer").get("/incidents/99/").status_code == 404


def test_it_works_an_incident_through_the_page_and_shows_each_refusal(page, make_incident):
    make_incident(1)
    client = page("incident_commander")

    skipped = client.post("/incidents/1/investigate/", follow=True)
    assert any("next step is acknowledged" in m for m in _messages(skipped))
    assert page("viewer").post("/incidents/1/acknowledge/").status_code == 403

    done = client.post("/incidents/1/acknowledge/", {"reason": "paged"}, follow=True)
    assert done.context["incident"].status == "acknowledged"
    assert 'id="do-investigate"' in done.content.decode()
    client.post("/incidents/1/investigate/")
    client.post("/incidents/1/mitigate/")
    refused = client.post("/incidents/1/resolve/", follow=True)
    assert any("patient-impact assessment" in m for m in _messages(refused))

    blank = client.post("/incidents/1/steps/0/", {"evidence": ""}, follow=True)
    assert any("Evidence" in m for m in _messages(blank))
    for step in range(5):
        client.post(f"/incidents/1/steps/{step}/", {"evidence": f"checked {step}"})
    again = client.post("/incidents/1/steps/0/", {"evidence": "again"}, follow=True)
    assert any("already checked off" in m for m in _messages(again))
    impact = client.post("/incidents/1/impact/", {"assessment": "Nobody harmed"}, follow=True)
    assert impact.context["incident"].impact["harm_found"] is False
    assert 'id="impact-recorded"' in impact.content.decode()
    resolved = client.post("/incidents/1/resolve/", follow=True)
    assert resolved.context["incident"].status == "resolved"

    early = client.post("/incidents/1/close/", follow=True)
    assert any("post-incident review" in m for m in _messages(early))
    management = {"ca-TOTAL_FORMS": "3", "ca-INITIAL_FORMS": "0"}
    partial = client.post("/incidents/1/review/", {"summary": "Fixed", **management,
                          "ca-0-action": "Alarm on the feed"}, follow=True)  # fmt: skip
    assert any("Corrective action 1, owner" in m for m in _messages(partial))
    recorded = client.post("/incidents/1/review/", {"summary": "Fixed", **management,
                           "ca-0-action": "Alarm on the feed", "ca-0-owner": "dataeng",
                           "ca-0-due": "2026-12-31"}, follow=True)  # fmt: skip
    assert recorded.context["incident"].review["corrective_actions"][0]["due"] == "2026-12-31"
    closed = client.post("/incidents/1/close/", follow=True)
    assert closed.context["incident"].status == "closed"
    html = closed.content.decode()
    assert 'data-status="closed"' in html and "resolved → closed" in html
    assert "Alarm on the feed" in html and 'id="do-' not in html.replace('id="do-unfreeze"', "")


def test_cancel_and_merge_from_the_page(page, make_incident):
    make_incident(1)
    make_incident(2, site="SOUTH")
    client = page("quality_safety")
    refused = client.post("/incidents/1/cancel/", {"reason": ""}, follow=True)
    assert any("false positive" in m for m in _messages(refused))
    merged = client.post("/incidents/1/merge/", {"into": 2, "reason": "same"}, follow=True)
    assert merged.context["incident"].status == "merged"
    unknown = client.post("/incidents/2/merge/", {"into": 50}, follow=True)
    assert any("INC-50" in m for m in _messages(unknown))


def test_the_kill_switch_freezes_and_only_a_director_unfreezes_with_a_password(
    page, make_incident, user_for
):
    incident = make_incident(1)
    deployment = registry.deployment_start(
        actor=user_for("medical_director"), version=make_incident.version, site=incident.site,
        reason="launch",
    )  # fmt: skip
    commander = page("incident_commander")
    html = commander.get("/incidents/1/").content.decode()
    assert 'id="do-freeze"' in html and 'id="do-unfreeze"' not in html
    assert 'id="do-freeze"' not in page("data_engineer").get("/incidents/1/").content.decode()

    frozen = commander.post("/incidents/1/freeze/", {"deployment": deployment.pk,
                            "reason": "scores unreliable"}, follow=True)  # fmt: skip
    assert Deployment.objects.get(pk=deployment.pk).frozen
    assert any("frozen" in m for m in _messages(frozen))
    assert "frozen: scores unreliable" in frozen.content.decode()
    assert commander.post("/incidents/1/unfreeze/", {}).status_code == 403

    director = page("medical_director")
    assert 'id="do-unfreeze"' in director.get("/incidents/1/").content.decode()
    wrong = director.post("/incidents/1/unfreeze/", {"deployment": deployment.pk,
                          "reason": "fixed", "password": "nope"}, follow=True)  # fmt: skip
    assert any("password does not match" in m for m in _messages(wrong))
    assert Deployment.objects.get(pk=deployment.pk).frozen
    director.post("/incidents/1/unfreeze/", {"deployment": deployment.pk, "reason": "fixed",
                  "password": PASSWORD})  # fmt: skip
    assert not Deployment.objects.get(pk=deployment.pk).frozen
    assert incident.timeline.filter(kind="unfreeze").exists()


def test_the_alert_list_suppresses_open_alerts_and_shows_refusals(page, make_incident):
    make_incident(1)
    alert = Alert.objects.get()
    viewer = page("viewer").get("/incidents/alerts/").content.decode()
    assert "missing_rate:lactate is bad" in viewer and "Suppress</button>" not in viewer
    engineer = page("data_engineer")
    assert "Suppress</button>" in engineer.get("/incidents/alerts/").content.decode()
    refused = engineer.post(f"/incidents/alerts/{alert.pk}/suppress/", {"reason": "x",
                            "days": 400}, follow=True)  # fmt: skip
    assert any("Days" in m for m in _messages(refused))
    done = engineer.post(f"/incidents/alerts/{alert.pk}/suppress/", {"reason": "lab upgrade",
                         "days": 5}, follow=True)  # fmt: skip
    assert any("suppressed until" in m for m in _messages(done))
    assert Suppression.objects.get().fingerprint == alert.fingerprint
    assert page("viewer").post(f"/incidents/alerts/{alert.pk}/suppress/").status_code == 403
