"""Runbooks editable with history: the services (validation with field messages, roles, the
history and the audit event), the pages (list, steps with history, the edit form) and the API
(list, detail, PUT). A step already checked on an incident keeps the title it was checked
under when the runbook changes later."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from governance.audit.models import AuditEvent
from incidents import services
from incidents.models import Runbook
from incidents.runbook_services import runbook_create, runbook_save

pytestmark = pytest.mark.django_db

STEPS = [
    {"title": "Confirm the feed", "evidence": "interface log"},
    {"title": "Fix it", "evidence": "ticket"},
]


def _book() -> Runbook:
    return Runbook.objects.get(layer="data_quality", metric="")


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- services --------------------------------------------------------------------------------


def test_saving_a_runbook_grows_its_history_and_audits_what_changed(user_for):
    commander = user_for("incident_commander")
    book = _book()
    before = book.history.count()
    old_title = book.title

    saved = runbook_save(actor=commander, runbook=book, title="Data quality v2", steps=STEPS,
                         reason="shorter for nights")  # fmt: skip

    assert saved.steps == STEPS and saved.updated_by == commander
    assert book.history.count() == before + 1
    latest = book.history.order_by("-history_date", "-history_id").first()
    assert latest.history_user == commander
    assert latest.history_change_reason == "shorter for nights"
    event = AuditEvent.objects.filter(action="runbook.changed").latest("seq")
    changes = event.payload["changes"]
    assert changes["title"] == {"before": old_title, "after": "Data quality v2"}
    assert changes["steps_edited"] == [1, 2] and changes["steps_removed"] == [3, 4, 5]
    assert event.payload["reason"] == "shorter for nights"

    more = [*STEPS, {"title": "Verify", "evidence": "green"}]
    runbook_save(actor=user_for("medical_director"), runbook=saved, title="Data quality v2",
                 steps=more, reason="verify")  # fmt: skip
    assert book.history.count() == before + 2
    event = AuditEvent.objects.filter(action="runbook.changed").latest("seq")
    assert event.payload["changes"] == {"steps_added": [3]}


@pytest.mark.parametrize(
    ("title", "steps", "reason", "field", "text"),
    [
        ("", STEPS, "why", "title", "title"),
        ("T", STEPS, " ", "reason", "Say why"),
        ("T", [], "why", "steps", "at least one step"),
        ("T", [{"title": "A", "evidence": " "}], "why", "steps", "Step 1: say what evidence"),
        ("T", [*STEPS, {"title": "", "evidence": "x"}], "why", "steps", "Step 3: the title"),
        ("T", [{"title": f"s{i}", "evidence": "e"} for i in range(21)], "why", "steps",
         "At most 20"),
        ("T", "not a list", "why", "steps", "at least one step"),
    ],
)  # fmt: skip
def test_invalid_runbooks_are_refused_with_field_messages(user_for, title, steps, reason, field,
                                                          text):  # fmt: skip
    book = _book()
    before = book.history.count()
    with pytest.raises(ValidationError) as refused:
        runbook_save(actor=user_for("incident_commander"), runbook=book, title=title,
                     steps=steps, reason=reason)  # fmt: skip
    assert any(text in m for m in refused.value.message_dict[field])
    assert book.history.count() == before and _book().steps == book.steps


def test_only_commanders_and_the_director_edit_runbooks_and_a_no_op_is_refused(user_for):
    book = _book()
    for role in ("data_engineer", "ml_engineer", "viewer", "quality_safety"):
        with pytest.raises(PermissionDenied):
            runbook_save(actor=user_for(role), runbook=book, title="x", steps=STEPS, reason="y")
    with pytest.raises(ValidationError) as same:
        runbook_save(actor=user_for("medical_director"), runbook=book, title=book.title,
                     steps=book.steps, reason="nothing")  # fmt: skip
    assert "Nothing changed" in same.value.message_dict["steps"][0]


def test_a_metric_runbook_is_created_and_incidents_of_that_metric_follow_it(
    user_for, make_incident
):
    director = user_for("medical_director")
    with pytest.raises(ValidationError) as bad:
        runbook_create(actor=director, layer="data_quality", metric="auc", title="T",
                       steps=STEPS, reason="r")  # fmt: skip
    assert "prediction_quality" in bad.value.message_dict["metric"][0]
    with pytest.raises(ValidationError) as unknown:
        runbook_create(actor=director, layer="nope", metric="", title="", steps=[], reason="")
    assert {"layer", "metric", "title", "steps", "reason"} <= unknown.value.message_dict.keys()
    with pytest.raises(PermissionDenied):
        runbook_create(actor=user_for("data_engineer"), layer="data_quality",
                       metric="missing_rate", title="T", steps=STEPS, reason="r")  # fmt: skip

    book = runbook_create(actor=director, layer="data_quality", metric="missing_rate:lactate",
                          title="Missing values", steps=STEPS, reason="lab feeds")  # fmt: skip
    assert book.metric == "missing_rate" and book.history.get().history_user == director
    assert AuditEvent.objects.filter(action="runbook.created").exists()
    incident = make_incident(1)  # its first alert is missing_rate:lactate
    assert services.runbook_for(incident) == book
    with pytest.raises(ValidationError) as twice:
        runbook_create(actor=director, layer="data_quality", metric="missing_rate", title="T",
                       steps=STEPS, reason="r")  # fmt: skip
    assert "exists already" in twice.value.message_dict["metric"][0]


def test_a_checked_step_keeps_its_title_when_the_runbook_changes(user_for, make_incident):
    incident = make_incident(1)
    engineer = user_for("data_engineer")
    check = services.check_step(actor=engineer, incident=incident, step=0, evidence="logs")
    assert check.step_title == "Validate the signal"
    runbook_save(actor=user_for("incident_commander"), runbook=_book(), title="New",
                 steps=[{"title": "Renamed first step", "evidence": "e"}, *STEPS],
                 reason="rename")  # fmt: skip
    check.refresh_from_db()
    assert check.step_title == "Validate the signal"


# --- pages -----------------------------------------------------------------------------------


def test_the_runbook_pages_list_show_history_and_edit(page):
    book = _book()
    listing = page("viewer").get("/incidents/runbooks/")
    html = listing.content.decode()
    assert listing.status_code == 200 and book.title in html and 'id="new-runbook"' not in html
    detail = page("viewer").get(f"/incidents/runbooks/{book.pk}/").content.decode()
    assert "Validate the signal" in detail and 'id="edit-runbook"' not in detail
    assert page("viewer").get(f"/incidents/runbooks/{book.pk}/edit/").status_code == 403

    commander = page("incident_commander")
    form = commander.get(f"/incidents/runbooks/{book.pk}/edit/")
    assert "Validate the signal | The feed owner" in form.content.decode()

    bad = commander.post(f"/incidents/runbooks/{book.pk}/edit/", {
        "title": "T", "steps": "Only a title\nGood | evidence\n | no title", "reason": "",
    })  # fmt: skip
    assert bad.status_code == 200
    errors = bad.context["form"].errors
    assert "Line 1: write the step as “title | evidence”." in errors["steps"]
    assert "Line 3: the title is blank." in errors["steps"]
    assert "reason" in errors and "Nothing was saved" in bad.content.decode()
    assert _book().title == book.title

    saved = commander.post(f"/incidents/runbooks/{book.pk}/edit/", {
        "title": "Data quality, short", "steps": "Check | the log\n\nFix | the ticket\n",
        "reason": "night shift version",
    }, follow=True)  # fmt: skip
    assert _book().steps == [{"title": "Check", "evidence": "the log"},
                             {"title": "Fix", "evidence": "the ticket"}]  # fmt: skip
    html = saved.content.decode()
    assert "night shift version" in html and "test-incident_commander" in html
    assert len(saved.context["history"]) == book.history.count()
    assert saved.context["history"][0].kind == "changed"

    same = commander.post(f"/incidents/runbooks/{book.pk}/edit/", {
        "title": "Data quality, short", "steps": "Check | the log\nFix | the ticket",
        "reason": "again",
    })  # fmt: skip
    assert "Nothing changed" in same.content.decode()


def test_a_metric_runbook_from_the_page(page):
    director = page("medical_director")
    assert director.get("/incidents/runbooks/new/").status_code == 200
    assert page("ml_engineer").get("/incidents/runbooks/new/").status_code == 403
    refused = director.post("/incidents/runbooks/new/", {"layer": "workflow", "metric": "psi",
                            "title": "T", "steps": "A | b", "reason": "r"})  # fmt: skip
    assert "belongs to the" in refused.context["form"].errors["metric"][0]
    made = director.post("/incidents/runbooks/new/", {"layer": "prediction_quality",
                         "metric": "psi", "title": "Drift", "steps": "A | b", "reason": "r"},
                         follow=True)  # fmt: skip
    assert made.context["runbook"].metric == "psi"


# --- API -------------------------------------------------------------------------------------


def test_the_runbook_api_lists_shows_history_and_replaces(api):
    book = _book()
    viewer = api("viewer")
    listing = viewer.get("/api/v1/runbooks/").json()
    assert book.pk in [r["id"] for r in listing["results"]]
    detail = viewer.get(f"/api/v1/runbooks/{book.pk}/").json()
    assert detail["steps"][0]["title"] == "Validate the signal"
    assert isinstance(detail["history"], list)
    body = {"title": "Short", "steps": STEPS, "reason": "simpler"}
    assert viewer.put(f"/api/v1/runbooks/{book.pk}/", body, format="json").status_code == 403
    assert (
        api("data_engineer").put(f"/api/v1/runbooks/{book.pk}/", body, format="json").status_code
        == 403
    )

    commander = api("incident_commander")
    bad = commander.put(f"/api/v1/runbooks/{book.pk}/", {
        "title": "Short", "steps": [{"title": "A", "evidence": ""}], "reason": "",
    }, format="json")  # fmt: skip
    assert bad.status_code == 400
    assert "reason" in bad.json() and "Step 1" in bad.json()["steps"][0]
    before = len(detail["history"])
    done = commander.put(f"/api/v1/runbooks/{book.pk}/", body, format="json")
    assert done.status_code == 200, done.json()
    assert done.json()["steps"] == STEPS and done.json()["updated_by"] == "test-incident_commander"
    assert len(done.json()["history"]) == before + 1
    assert done.json()["history"][0]["reason"] == "simpler"
    assert viewer.get("/api/v1/runbooks/99999/").status_code == 404
    assert viewer.patch(f"/api/v1/runbooks/{book.pk}/", body, format="json").status_code in (
        403, 405,
    )  # fmt: skip
