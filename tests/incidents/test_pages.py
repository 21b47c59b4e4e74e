"""The incident pages: the queue (tabs, order, overdue), the work page (alerts, runbook,
impact, review, timeline, buttons only when allowed, the kill switch) and the alert list with
suppression. Every refused action comes back as a message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import Alert, Incident, Suppression
from registry import services as registry
from registry.models import Deployment
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


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


def test_roles_are_assigned_on_the_page_and_mine_includes_every_role(page, make_incident, user_for):
    make_incident(1)
    make_incident(2, site="SOUTH")
    lead = user_for("clinical_informaticist")
    viewer_html = page("viewer").get("/incidents/1/").content.decode()
    assert 'id="role-scribe"' in viewer_html and 'id="do-assign"' not in viewer_html
    assert page("viewer").post("/incidents/1/assign/", {}).status_code == 403

    engineer = page("data_engineer")
    assert 'id="do-assign"' in engineer.get("/incidents/1/").content.decode()
    nobody = engineer.post("/incidents/1/assign/", {"role": "scribe", "username": "ghost"},
                           follow=True)  # fmt: skip
    assert any("No user named ghost" in m for m in _messages(nobody))
    bad_role = engineer.post("/incidents/1/assign/", {"role": "cook", "username": lead.username},
                             follow=True)  # fmt: skip
    assert any("Role:" in m for m in _messages(bad_role))
    done = engineer.post("/incidents/1/assign/", {"role": "clinical_lead",
                         "username": lead.username}, follow=True)  # fmt: skip
    assert done.context["incident"].clinical_lead == lead
    html = done.content.decode()
    assert f'id="role-clinical_lead">{lead.username}<' in html
    assert f"Clinical lead: {lead.username}" in html  # the timeline

    mine = page("clinical_informaticist").get("/incidents/?tab=mine")
    assert [i.number for i, _ in mine.context["rows"]] == [1]
    for role, person in (("scribe", "quality_safety"), ("model_owner", "ml_engineer")):
        engineer.post("/incidents/2/assign/", {"role": role,
                      "username": user_for(person).username})  # fmt: skip
        rows = page(person).get("/incidents/?tab=mine").context["rows"]
        assert [i.number for i, _ in rows] == [2], role


def test_the_incident_page_shows_its_notifications_without_bodies(page, make_incident):
    from incidents.models import Notification

    incident = make_incident(1)
    Notification.objects.create(
        incident=incident, channel="email", recipient="oncall@hospital.test",
        subject="[Vigil SEV2] INC-1 lactate", body={"summary": "SECRET-BODY-TEXT"},
        status="dead", attempts=5, last_error="SMTP 550 mailbox unavailable",
    )  # fmt: skip
    sent = Notification.objects.create(
        incident=incident, channel="webhook", recipient="https://pager.test/hook",
        subject="[Vigil SEV2] INC-1 lactate", body={"summary": "SECRET-BODY-TEXT"},
        status="sent", attempts=1, sent_at=timezone.now(),
    )  # fmt: skip
    html = page("viewer").get("/incidents/1/").content.decode()
    section = html.split('id="notifications"')[1].split("</section>")[0]
    assert "oncall@hospital.test" in section and "https://pager.test/hook" in section
    assert "SMTP 550 mailbox unavailable" in section and 'data-status="dead"' in section
    assert "Failed for good" in section and f'id="notification-{sent.pk}"' in section
    assert "SECRET-BODY-TEXT" not in html


def test_a_drill_from_the_page_is_labelled_everywhere_and_stats_leave_it_out(page, make_incident):
    real = make_incident(1)
    real.acknowledged_at = real.triggered_at + timedelta(hours=3)
    real.status = "acknowledged"
    real.save()
    version = make_incident.version
    assert page("data_engineer").get("/incidents/drills/new/").status_code == 403
    assert 'id="start-drill"' not in page("data_engineer").get("/incidents/").content.decode()
    commander = page("incident_commander")
    assert 'id="start-drill"' in commander.get("/incidents/?tab=all").content.decode()
    assert commander.get("/incidents/drills/new/").status_code == 200

    refused = commander.post("/incidents/drills/new/", {"version": version.pk,
                             "slice_key": "all", "metric": "nope", "band": "red",
                             "scenario": "x"})  # fmt: skip
    assert "Unknown metric" in refused.context["form"].errors["metric"][0]
    started = commander.post("/incidents/drills/new/", {"version": version.pk,
                             "slice_key": "all", "metric": "auc", "band": "red",
                             "scenario": "AUC collapses"}, follow=True)  # fmt: skip
    drill = started.context["incident"]
    assert drill.is_drill and any("DRILL" in m for m in _messages(started))
    assert 'id="drill-note"' in started.content.decode()
    queue = commander.get("/incidents/?tab=all").content.decode()
    row = queue.split(f'id="incident-{drill.number}"')[1].split("</tr>")[0]
    assert "DRILL" in row and "DRILL" not in queue.split('id="incident-1"')[1].split("</tr>")[0]
    alerts = page("viewer").get("/incidents/alerts/").content.decode()
    assert f"DRILL INC-{drill.number}" in alerts

    stats = page("viewer").get("/incidents/stats/")
    assert stats.status_code == 200
    (row,) = stats.context["rows"]
    assert row["incidents"] == 1 and row["acknowledge"]["median_hours"] == 3.0
    assert f'id="stats-{version.model.slug}-SEV2"' in stats.content.decode()
    assert page("viewer").get("/incidents/stats/?model=other").context["rows"] == []


def test_the_work_page_charts_each_alert_from_its_results(page, make_incident):
    from datetime import date

    from incidents.models import AlertOccurrence
    from monitoring.models import MetricResult

    incident = make_incident(1)
    alert = Alert.objects.get()
    for n, slice_key in enumerate(["site=NORTH/age=65+", "site=NORTH/sex=F"]):
        Alert.objects.create(
            model=alert.model, version=alert.version, site=alert.site, slice_key=slice_key,
            metric=alert.metric, layer=alert.layer, fingerprint=f"chart{n}", band="orange",
            worst_band="orange", reason="confident", routed_role=alert.routed_role,
            payload={"summary": "x"}, incident=incident,
        )  # fmt: skip
    alert, other, empty = Alert.objects.order_by("pk")
    AlertOccurrence.objects.create(alert=alert, window_end=date(2024, 3, 3), window_days=7,
                                   band="red", value=0.3, n=100, confident=True)  # fmt: skip

    def result(a, day, value, band, window_days):
        MetricResult.objects.create(
            model=a.model, version=a.version, site=a.site, slice_key=a.slice_key,
            layer="data_quality", metric=a.metric, window_days=window_days,
            window_start=date(2024, 3, day - 1), window_end=date(2024, 3, day), value=value,
            low=value - 0.02, high=value + 0.02, n=100, baseline=0.05, band=band,
        )  # fmt: skip

    result(alert, 2, 0.1, "yellow", 7)
    result(alert, 3, 0.3, "red", 7)
    result(alert, 3, 0.9, "green", 30)  # another window length: not this alert's chart
    result(other, 3, 0.2, "orange", 30)  # no occurrence: 30-day windows

    html = page("viewer").get("/incidents/1/").content.decode()
    sections = {a.pk: html.split(f'id="alert-{a.pk}"')[1].split("</article>")[0]
                for a in (alert, other, empty)}  # fmt: skip
    first = sections[alert.pk]
    assert first.count("<svg") == 1 and first.count("<circle") == 2
    assert 'aria-label="missing_rate:lactate · site=NORTH over the last 2 windows' in first
    assert "#c0392b" in first and "#f2c037" in first and "#2e7d32" not in first
    assert "Last value <strong>0.3</strong>" in first and "metric-link" in first
    second = sections[other.pk]
    assert second.count("<svg") == 1 and "#e67e22" in second
    assert "Last value <strong>0.2</strong>" in second
    assert "<svg" not in sections[empty.pk] and "No results recorded" in sections[empty.pk]
