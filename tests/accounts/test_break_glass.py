"""Break-glass: a person with the case role opens a case of another site after stating an
emergency reason; the access is time-limited, read-only, flagged and audited. Cases come from
the real gate (``tests.monitoring`` helpers)."""

# Fixtures are imported by name and then requested as arguments, which ruff reads as
# redefinitions.
# ruff: noqa: F401, F811

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import break_glass
from accounts.models import BreakGlassGrant
from governance.audit.models import AuditEvent
from monitoring import review
from tests.monitoring.conftest import gate_setup
from tests.monitoring.test_review import assign, defer, deploy_south

pytestmark = pytest.mark.django_db

REASON = "Sepsis call in the ED, the site's reviewer is in theatre"
DENIED_MIDDLEWARE = "accounts.middleware.AccessDeniedAuditMiddleware"


# --- Shared fixtures (imported by the other access tests) ------------------------------------


@pytest.fixture
def denied_audit(settings: Any) -> None:
    """The denied-attempt middleware, where settings.MIDDLEWARE should have it."""
    if DENIED_MIDDLEWARE not in settings.MIDDLEWARE:
        middleware = list(settings.MIDDLEWARE)
        middleware.insert(middleware.index("accounts.middleware.IdleTimeoutMiddleware") + 1,
                          DENIED_MIDDLEWARE)  # fmt: skip
        settings.MIDDLEWARE = middleware


@pytest.fixture
def review_access(db: None) -> None:
    """``accounts.review_access`` for compliance officers (as accounts.roles should grant it)."""
    perm = Permission.objects.get(content_type__app_label="accounts", codename="review_access")
    Group.objects.get(name="compliance_officer").permissions.add(perm)


# --- Helpers --------------------------------------------------------------------------------


@pytest.fixture
def south_case(gate_setup: Any) -> Any:
    deploy_south(gate_setup)
    return defer(gate_setup, site="SOUTH", case_key="south-1", score=0.77)


@pytest.fixture
def north_reviewer(user_for: Any, gate_setup: Any) -> Client:
    user = user_for("reviewer")
    assign(user, "NORTH")
    client = Client()
    client.force_login(user)
    return client


def case_url(case: Any) -> str:
    return reverse("review:case", args=[case.pk])


def events(action: str, case: Any) -> Any:
    return AuditEvent.objects.filter(action=action, object_id=str(case.pk))


def break_in(client: Client, case: Any, reason: str = REASON) -> Any:
    return client.post(case_url(case), {"reason": reason})


# --- The form -------------------------------------------------------------------------------


def test_it_offers_break_glass_instead_of_a_case_outside_ones_sites(north_reviewer, south_case):
    response = north_reviewer.get(case_url(south_case))
    assert response.status_code == 403
    body = response.content.decode()
    assert "outside your sites" in body and "SOUTH" in body
    assert 'name="reason"' in body
    # Nothing of the patient before the glass is broken.
    for secret in (south_case.event.case_key_hash[:8], "heart_rate", "400", "0.77"):
        assert secret not in body
    assert not events("review.case_view", south_case).exists()


def test_a_short_reason_is_refused_with_a_field_message(north_reviewer, south_case):
    response = break_in(north_reviewer, south_case, reason="emergency")
    assert response.status_code == 400
    assert "at least 20 characters" in response.content.decode()
    assert not BreakGlassGrant.objects.exists()
    assert not events("review.break_glass", south_case).exists()


def test_a_stated_reason_opens_the_case_flagged_and_read_only(north_reviewer, south_case):
    response = break_in(north_reviewer, south_case)
    assert response.status_code == 302 and response["Location"] == case_url(south_case)

    page = north_reviewer.get(case_url(south_case))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Break-glass access" in body and "reviewed by compliance" in body
    assert page.context["packet"].case == south_case
    assert page.context["form"] is None  # may read, not decide
    assert north_reviewer.post(
        reverse("review:decide", args=[south_case.pk]), {"decision": "agree"}
    ).status_code == 404  # fmt: skip

    grant = BreakGlassGrant.objects.get()
    assert grant.case_id == south_case.pk and grant.reason == REASON
    assert grant.expires_at - grant.granted_at == timedelta(minutes=60)
    flagged = events("review.break_glass", south_case).get()
    assert flagged.payload["flagged"] is True and flagged.payload["grant"] == grant.pk
    assert flagged.payload["site"] == "SOUTH" and "BREAK-GLASS" in flagged.summary
    assert REASON not in json.dumps(flagged.payload)  # the text stays in the grant
    view = events("review.case_view", south_case).get()
    assert view.payload["break_glass"] is True and view.payload["grant"] == grant.pk


def test_every_view_during_the_window_is_audited(north_reviewer, south_case):
    break_in(north_reviewer, south_case)
    for _ in range(3):
        assert north_reviewer.get(case_url(south_case)).status_code == 200
    views = events("review.case_view", south_case)
    assert views.count() == 3
    assert all(v.payload.get("break_glass") for v in views)


def test_the_trend_shows_the_case_itself_but_not_the_rest_of_the_other_site(
    north_reviewer, south_case
):
    break_in(north_reviewer, south_case)
    trend = north_reviewer.get(case_url(south_case)).context["packet"].trend
    assert [(p.site, p.is_this_case) for p in trend] == [("SOUTH", True)]


def test_the_grant_expires(north_reviewer, south_case, settings):
    settings.VIGIL_BREAK_GLASS_MINUTES = 5
    break_in(north_reviewer, south_case)
    grant = BreakGlassGrant.objects.get()
    assert grant.expires_at - grant.granted_at == timedelta(minutes=5)
    grant.expires_at = timezone.now() - timedelta(seconds=1)
    grant.save(update_fields=["expires_at"])
    response = north_reviewer.get(case_url(south_case))
    assert response.status_code == 403 and 'name="reason"' in response.content.decode()


def test_a_grant_opens_one_case_only(gate_setup, north_reviewer, south_case):
    other = defer(gate_setup, site="SOUTH", case_key="south-2")
    break_in(north_reviewer, south_case)
    assert north_reviewer.get(case_url(other)).status_code == 403


@pytest.mark.parametrize("role", ["viewer", "data_engineer", "compliance_officer"])
def test_roles_without_case_access_cannot_break_the_glass(client_for, south_case, role):
    client = client_for(role)
    response = client.get(case_url(south_case))
    assert response.status_code == 403 and 'name="reason"' not in response.content.decode()
    assert break_in(client, south_case).status_code == 403
    assert not BreakGlassGrant.objects.exists()


def test_people_at_the_site_are_unchanged(client_for, south_case):
    director = client_for("medical_director")  # every site
    response = director.get(case_url(south_case))
    assert response.status_code == 200 and response.context["form"] is not None
    assert "break_glass" not in events("review.case_view", south_case).get().payload
    assert not BreakGlassGrant.objects.exists()


def test_a_case_that_does_not_exist_is_still_404(north_reviewer, south_case):
    assert north_reviewer.get(reverse("review:case", args=[south_case.pk + 999])).status_code == 404


def test_the_refusal_is_a_denied_attempt(denied_audit, north_reviewer, south_case):
    north_reviewer.get(case_url(south_case))
    denied = AuditEvent.objects.get(action="access.denied")
    assert denied.payload["path"] == case_url(south_case)
    assert denied.payload["missing_permissions"] == []
    assert denied.payload["detail"] == "Case outside the user's sites; break-glass offered."


# --- Services -------------------------------------------------------------------------------


def test_the_service_refuses_a_case_at_ones_own_site(gate_setup, user_for):
    reviewer = user_for("reviewer")
    assign(reviewer, "NORTH")
    case = defer(gate_setup)
    with pytest.raises(ValidationError, match="one of your sites"):
        review.case_break_glass(actor=reviewer, case=case, reason=REASON)


def test_the_service_refuses_the_system_and_roles_without_case_access(user_for, south_case):
    with pytest.raises(PermissionDenied):
        break_glass.break_glass_grant(
            actor=None, case_id=south_case.pk, reason=REASON, model_slug="m", site_code="S"
        )
    with pytest.raises(PermissionDenied):
        break_glass.break_glass_grant(
            actor=user_for("viewer"), case_id=south_case.pk, reason=REASON, model_slug="m",
            site_code="S",
        )  # fmt: skip


def test_compliance_reviews_a_grant_once_with_a_note(
    review_access, user_for, north_reviewer, south_case
):
    break_in(north_reviewer, south_case)
    grant = BreakGlassGrant.objects.get()
    compliance = user_for("compliance_officer")
    assert list(break_glass.grants_awaiting_review()) == [grant]
    with pytest.raises(ValidationError, match="what you checked"):
        break_glass.break_glass_review(actor=compliance, grant=grant, note="  ")
    with pytest.raises(PermissionDenied):
        break_glass.break_glass_review(actor=user_for("viewer"), grant=grant, note="ok")
    break_glass.break_glass_review(actor=compliance, grant=grant, note="Confirmed with ED lead")
    grant.refresh_from_db()
    assert grant.reviewed_by == compliance and grant.review_note == "Confirmed with ED lead"
    assert list(break_glass.grants_awaiting_review()) == []
    with pytest.raises(ValidationError, match="Already reviewed"):
        break_glass.break_glass_review(actor=compliance, grant=grant, note="again")
    reviewed = AuditEvent.objects.get(action="review.break_glass_reviewed")
    assert reviewed.payload == {"case": south_case.pk, "grant": grant.pk, "note_length": 22}
