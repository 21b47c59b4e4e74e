"""Operators assign people to sites (the review queue's scope) with ``manage.py assign_site``."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command

from accounts.services import service_account_create
from governance.audit.models import AuditEvent
from monitoring import review
from registry.assignments import site_assignment_set
from registry.models import SiteAssignment
from tests.factories import ClinicalModelFactory, SiteFactory

pytestmark = pytest.mark.django_db


def assign_site(*args: str) -> str:
    out = io.StringIO()
    call_command("assign_site", *args, stdout=out)
    return out.getvalue()


def test_it_assigns_and_removes_a_site_with_history_and_audit(user_for):
    reviewer = user_for("reviewer")
    north = SiteFactory(code="NORTH")
    assert "Assigned test-reviewer to NORTH" in assign_site("test-reviewer", "NORTH")
    assignment = SiteAssignment.objects.get(user=reviewer, site=north)
    assert list(review.visible_sites(reviewer)) == [north]
    assert "assign_site" in assignment.history.first().history_change_reason

    assert "Removed" in assign_site("test-reviewer", "NORTH", "--remove")
    assert not SiteAssignment.objects.filter(user=reviewer).exists()
    assert list(review.visible_sites(reviewer)) == []
    assert SiteAssignment.history.filter(history_type="-").count() == 1

    events = list(AuditEvent.objects.filter(action__startswith="site.").order_by("seq"))
    assert [e.action for e in events] == ["site.assign", "site.unassign"]
    assert events[0].object_id == events[1].object_id == str(assignment.pk)
    assert (
        events[0].payload["site"] == "NORTH" and events[0].payload["username"] == reviewer.username
    )
    assert "manage.py assign_site" in events[0].payload["via"]
    assert events[0].actor is None  # the operator, not a portal user


def test_it_refuses_unknown_people_sites_repeats_and_services(user_for):
    user_for("reviewer")
    SiteFactory(code="NORTH")
    SiteFactory(code="CLOSED", is_active=False)
    ClinicalModelFactory(slug="m")
    service_account_create(actor=None, name="scorer", model_slugs=["m"])
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        assign_site("nobody", "NORTH")
    with pytest.raises(CommandError, match="No site 'WEST'"):
        assign_site("test-reviewer", "WEST")
    with pytest.raises(CommandError, match="inactive"):
        assign_site("test-reviewer", "CLOSED")
    with pytest.raises(CommandError, match="not a person"):
        assign_site("svc-scorer", "NORTH")
    with pytest.raises(CommandError, match="not assigned"):
        assign_site("test-reviewer", "NORTH", "--remove")
    assign_site("test-reviewer", "NORTH")
    with pytest.raises(CommandError, match="already assigned"):
        assign_site("test-reviewer", "NORTH")
    assert SiteAssignment.objects.count() == 1
    assert AuditEvent.objects.filter(action__startswith="site.").count() == 1


def test_no_portal_role_may_change_assignments(user_for):
    SiteFactory(code="NORTH")
    reviewer = user_for("reviewer")
    for role in ("medical_director", "reviewer", "ml_engineer"):
        with pytest.raises(PermissionDenied):
            site_assignment_set(
                actor=user_for(role), username=reviewer.username, site_code="NORTH", assigned=True
            )
    assert not SiteAssignment.objects.exists()
