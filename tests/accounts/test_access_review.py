"""The access review page: roles and last logins, case views, denied attempts, failed signatures,
lock-outs and break-glass grants awaiting review; CSV export per section, itself audited."""

# Fixtures are imported by name and then requested as arguments, which ruff reads as
# redefinitions.
# ruff: noqa: F401, F811

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.urls import include, path, reverse
from django.utils import timezone
from django.utils.html import escape

from accounts import services
from accounts.models import BreakGlassGrant, LoginThrottle
from config import urls as project_urls
from governance.audit.models import AuditEvent
from tests.accounts.test_break_glass import (
    REASON,
    break_in,
    case_url,
    denied_audit,
    north_reviewer,
    review_access,
    south_case,
)
from tests.conftest import ROLES
from tests.monitoring.conftest import gate_setup

# Until config/urls.py mounts the access review, this module does.
urlpatterns = list(project_urls.urlpatterns)
if not any(getattr(p, "namespace", None) == "access" for p in urlpatterns):
    urlpatterns.insert(0, path("accounts/access/", include("accounts.access_urls")))

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def page_url() -> str:
    return reverse("access:review")


@pytest.fixture
def compliance_client(review_access: None, client_for: Any) -> Client:
    return client_for("compliance_officer")


def export(client: Client, section: str, **filters: str) -> list[list[str]]:
    response = client.get(page_url(), {"export": "csv", "section": section, **filters})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    assert f"access-{section}-" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


# --- Who may see it -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_only_compliance_opens_the_access_review(review_access, client_for, role):
    response = client_for(role).get(page_url())
    assert response.status_code == (200 if role == "compliance_officer" else 403)


def test_anonymous_users_are_sent_to_log_in(review_access):
    response = Client().get(page_url())
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_exports_need_the_permission_too(review_access, client_for):
    response = client_for("medical_director").get(
        page_url(), {"export": "csv", "section": "case_views"}
    )
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="access_review.export").exists()


# --- Sections -------------------------------------------------------------------------------


def test_it_lists_people_with_roles_last_login_and_lockouts(compliance_client, user_for, settings):
    engineer = user_for("ml_engineer")
    engineer.last_login = timezone.now() - timedelta(days=2)
    engineer.save(update_fields=["last_login"])
    user_for("viewer")
    for _ in range(settings.VIGIL_LOCKOUT_THRESHOLD):
        services.login_failed(username="test-viewer")
    people = {
        p.username: p for p in compliance_client.get(page_url()).context["sections"]["people"]
    }
    assert people["test-ml_engineer"].roles == ("ml_engineer",)
    assert people["test-ml_engineer"].last_login == engineer.last_login
    assert people["test-viewer"].locked_until is not None
    assert people["test-compliance_officer"].locked_until is None
    body = compliance_client.get(page_url()).content.decode()
    assert "locked</span>" in body

    rows = export(compliance_client, "people")
    assert rows[0][:4] == ["username", "name", "roles", "kind"]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["test-ml_engineer"][2] == "ml_engineer"
    assert by_name["test-viewer"][6] != ""  # locked until


def test_service_tokens_appear_as_such_but_never_their_token(compliance_client, gate_setup):
    body = compliance_client.get(page_url()).content.decode()
    assert "svc-sepsis-scorer" in body and "service token" in body
    assert gate_setup.token not in body
    assert gate_setup.token not in "".join(",".join(r) for r in export(compliance_client, "people"))


def test_it_lists_who_opened_which_case_and_break_glass(
    compliance_client, client_for, north_reviewer, south_case
):
    client_for("medical_director").get(case_url(south_case))
    break_in(north_reviewer, south_case)
    north_reviewer.get(case_url(south_case))
    shown = compliance_client.get(page_url()).context["sections"]["case_views"]
    assert [(e.actor_label, e.object_id, bool(e.payload.get("break_glass"))) for e in shown] == [
        ("test-reviewer", str(south_case.pk), True),
        ("test-medical_director", str(south_case.pk), False),
    ]
    assert "break-glass</span>" in compliance_client.get(page_url()).content.decode()

    rows = export(compliance_client, "case_views", user="test-reviewer")
    assert rows[0] == ["time_utc", "user", "roles", "case_id", "model", "site", "break_glass",
                       "audit_seq"]  # fmt: skip
    assert [r[1:7] for r in rows[1:]] == [
        ["test-reviewer", "reviewer", str(south_case.pk), "sepsis-ews", "SOUTH", "yes"]
    ]


def test_case_views_filter_by_date_and_user(compliance_client, client_for, south_case):
    client_for("medical_director").get(case_url(south_case))
    today = timezone.now().date()
    tomorrow = (today + timedelta(days=1)).isoformat()

    def shown(**params: str) -> int:
        return len(compliance_client.get(page_url(), params).context["sections"]["case_views"])

    assert shown(date_from=today.isoformat(), date_to=today.isoformat()) == 1
    assert shown(date_from=tomorrow) == 0
    assert shown(user="test-medical_director") == 1
    assert shown(user="test-compliance_officer") == 0


def test_bad_filters_are_field_errors_and_show_no_rows(compliance_client, client_for, south_case):
    client_for("medical_director").get(case_url(south_case))
    response = compliance_client.get(page_url(), {"date_from": "yesterday"})
    assert response.status_code == 400
    assert "Enter a valid date." in response.content.decode()
    assert list(response.context["sections"]["case_views"]) == []
    backwards = compliance_client.get(
        page_url(), {"date_from": "2026-02-02", "date_to": "2026-01-01"}
    )
    assert backwards.status_code == 400
    assert "start date is after the end date" in backwards.content.decode()
    bad_export = compliance_client.get(page_url(), {"export": "csv", "section": "people",
                                                    "date_from": "soon"})  # fmt: skip
    assert bad_export.status_code == 400 and "Invalid filters" in bad_export.content.decode()


def test_denied_page_and_api_requests_are_recorded_without_query_values(
    denied_audit, compliance_client, client_for, api_for
):
    client_for("viewer").get("/audit/", {"object_id": "MRN-0042317"})
    api_for("data_engineer").get("/api/v1/audit-events/")
    denied = list(AuditEvent.objects.filter(action="access.denied").order_by("seq"))
    assert [(e.actor_label, e.payload["method"], e.payload["path"]) for e in denied] == [
        ("test-viewer", "GET", "/audit/"),
        ("test-data_engineer", "GET", "/api/v1/audit-events/"),
    ]
    assert denied[0].payload["query_keys"] == ["object_id"]
    assert denied[0].payload["missing_permissions"] == ["audit.view_auditevent"]
    assert denied[1].payload["missing_permissions"] == ["audit.view_auditevent"]
    assert denied[1].payload["detail"] == "Your role does not allow this action."
    assert not AuditEvent.objects.filter(payload__icontains="MRN-0042317").exists()
    assert all("MRN-0042317" not in e.summary for e in denied)

    body = compliance_client.get(page_url()).content.decode()
    assert "GET /audit/" in body and "audit.view_auditevent" in body
    rows = export(compliance_client, "denied")
    assert {r[1] for r in rows[1:]} == {"test-viewer", "test-data_engineer"}


def test_a_refusal_for_another_reason_keeps_its_message(denied_audit, client_for):
    # The medical director has the page permission, but only compliance may verify the chain.
    client_for("medical_director").post(reverse("audit:verify"))
    denied = AuditEvent.objects.get(action="access.denied")
    assert denied.payload["missing_permissions"] == ["audit.verify_auditevent"]
    assert denied.payload["method"] == "POST"


def test_anonymous_and_allowed_requests_are_not_denials(denied_audit, client_for):
    Client().get("/audit/")
    client_for("compliance_officer").get("/audit/")
    assert not AuditEvent.objects.filter(action="access.denied").exists()


def test_it_lists_failed_signatures_and_signing_locks(compliance_client, user_for):
    attempt = apps.get_model("governance", "SigningAttempt")
    signer = user_for("quality_safety")
    attempt.objects.create(user=signer, outcome="failed", detail="wrong password")
    attempt.objects.create(user=signer, outcome="locked", detail="3 failures")
    attempt.objects.create(user=signer, outcome="signed", detail="approval")
    shown = compliance_client.get(page_url()).context["sections"]["signing"]
    assert [a.outcome for a in shown] == ["locked", "failed"]
    rows = export(compliance_client, "signing")
    assert [r[1:3] for r in rows[1:]] == [["test-quality_safety", "locked"],
                                          ["test-quality_safety", "failed"]]  # fmt: skip


def test_it_lists_failed_logins_and_lockouts(compliance_client, settings):
    for _ in range(settings.VIGIL_LOCKOUT_THRESHOLD):
        services.login_failed(username="mallory")
    assert LoginThrottle.objects.get(username="mallory").is_locked()
    actions = [e.action for e in compliance_client.get(page_url()).context["sections"]["logins"]]
    assert actions[0] == "auth.lockout"
    assert actions.count("auth.login_failed") == settings.VIGIL_LOCKOUT_THRESHOLD
    assert "lock-out</span>" in compliance_client.get(page_url()).content.decode()
    rows = export(compliance_client, "logins", user="mallory")
    assert rows[1][1:3] == ["mallory", "auth.lockout"]


# --- Break-glass review ---------------------------------------------------------------------


def test_break_glass_grants_wait_for_review_and_are_marked_reviewed(
    compliance_client, north_reviewer, south_case
):
    break_in(north_reviewer, south_case)
    grant = BreakGlassGrant.objects.get()
    page = compliance_client.get(page_url())
    assert [g.pk for g, _form in page.context["pending"]] == [grant.pk]
    assert escape(REASON) in page.content.decode()
    url = reverse("access:grant_reviewed", args=[grant.pk])

    refused = compliance_client.post(url, {"note": ""})
    assert refused.status_code == 400
    assert "Say what you checked" in refused.content.decode()
    grant.refresh_from_db()
    assert grant.reviewed_at is None

    done = compliance_client.post(url, {"note": "Confirmed with the ED charge nurse"})
    assert done.status_code == 302
    grant.refresh_from_db()
    assert grant.review_note == "Confirmed with the ED charge nurse"
    assert compliance_client.get(page_url()).context["pending"] == []
    again = compliance_client.post(url, {"note": "twice"})
    assert again.status_code == 400 and "Already reviewed" in again.content.decode()

    rows = export(compliance_client, "break_glass")
    assert rows[1][2:5] == ["test-reviewer", str(south_case.pk), REASON]
    assert rows[1][6] == "test-compliance_officer"


def test_only_compliance_marks_a_grant_reviewed(review_access, client_for, north_reviewer,
                                                south_case):  # fmt: skip
    break_in(north_reviewer, south_case)
    grant = BreakGlassGrant.objects.get()
    url = reverse("access:grant_reviewed", args=[grant.pk])
    assert client_for("medical_director").post(url, {"note": "fine"}).status_code == 403
    assert compliance_get(client_for, url).status_code == 405
    grant.refresh_from_db()
    assert grant.reviewed_at is None


def compliance_get(client_for: Any, url: str) -> Any:
    return client_for("compliance_officer").get(url)


# --- Export ---------------------------------------------------------------------------------


@pytest.mark.parametrize("section", ["people", "case_views", "denied", "signing", "logins",
                                     "break_glass"])  # fmt: skip
def test_every_section_exports_and_the_export_is_audited(compliance_client, section):
    rows = export(compliance_client, section, user="test-compliance_officer")
    assert rows[0]  # the header, even when there are no rows
    event = AuditEvent.objects.get(action="access_review.export")
    assert event.payload["section"] == section and event.payload["format"] == "csv"
    assert event.payload["filters"]["user"] == "test-compliance_officer"
    assert event.actor.username == "test-compliance_officer"


def test_unknown_sections_and_formats_are_refused_clearly(compliance_client):
    unknown = compliance_client.get(page_url(), {"export": "csv", "section": "secrets"})
    assert unknown.status_code == 400 and "Unknown section" in unknown.content.decode()
    xml = compliance_client.get(page_url(), {"export": "xml", "section": "people"})
    assert xml.status_code == 400 and "export=csv" in xml.content.decode()
    assert not AuditEvent.objects.filter(action="access_review.export").exists()


def test_cells_that_a_spreadsheet_would_run_are_neutralised(compliance_client, user_for):
    from accounts.break_glass import break_glass_grant

    reviewer = user_for("reviewer")
    break_glass_grant(actor=reviewer, case_id=1, reason="=HYPERLINK(\"http://x\") urgent call",
                      model_slug="m", site_code="S")  # fmt: skip
    rows = export(compliance_client, "break_glass")
    assert rows[1][4].startswith("'=HYPERLINK")
