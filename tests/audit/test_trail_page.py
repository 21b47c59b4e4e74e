"""The audit trail page: a filtered, paged table with the chain's status for verifiers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.audit.services import record

pytestmark = pytest.mark.django_db

VERIFY_URL = "/audit/verify/"
URL = "/audit/"


@pytest.fixture
def events(ml_engineer: Any, director: Any) -> list[AuditEvent]:
    return [
        record(
            actor=ml_engineer,
            action="model.register",
            object_type="registry.clinicalmodel",
            object_id=1,
            summary="Registered model sepsis",
        ),
        record(
            actor=director,
            action="deployment.freeze",
            object_type="registry.deployment",
            object_id=7,
            summary="sepsis 1.0.0 at NORTH frozen",
        ),
        record(
            actor=None,
            actor_label="mallory",
            action="auth.login_failed",
            object_type="auth.user",
            summary="Failed login for mallory",
        ),
    ]


def rows(html: str) -> list[str]:
    """The summary cell of each table row, in page order."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.sub(r"\s+", " ", row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def summaries(response: Any) -> list[str]:
    assert response.status_code == 200
    found = []
    for row in rows(response.content.decode()):
        for summary in (
            "Registered model sepsis",
            "sepsis 1.0.0 at NORTH frozen",
            "Failed login for mallory",
        ):
            if summary in row:
                found.append(summary)
    return found


def test_it_shows_events_newest_first_with_hash_prefix(events, client_for):
    response = client_for("compliance_officer").get(URL)
    html = response.content.decode()
    assert summaries(response) == [
        "Failed login for mallory",
        "sepsis 1.0.0 at NORTH frozen",
        "Registered model sepsis",
    ]
    freeze = next(row for row in rows(html) if "frozen" in row)
    assert "deployment.freeze" in freeze and "registry.deployment #7" in freeze
    assert "test-medical_director" in freeze and "medical_director" in freeze
    assert events[1].hash[:12] in freeze and events[1].hash[12:20] not in freeze.split("title=")[0]
    stamp = events[1].occurred_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert stamp in freeze
    assert "Time (UTC)" in html
    assert "{% extends" not in html and "<footer" in html  # rendered inside base.html


def test_it_verifies_on_request_and_shows_the_stored_verdict(events, client_for):
    compliance = client_for("compliance_officer")
    assert "has not been verified yet" in compliance.get(URL).content.decode()
    response = compliance.post(VERIFY_URL, follow=True)
    html = response.content.decode()
    assert "Chain verified OK" in html and "Verify now" in html
    assert AuditEvent.objects.filter(action="audit.verify").count() == 1
    # A director reads the stored verdict but may not trigger a verification.
    director = client_for("medical_director")
    html = director.get(URL).content.decode()
    assert "Chain verified OK" in html and "Verify now" not in html
    assert director.post(VERIFY_URL).status_code == 403


def test_it_reports_where_the_chain_is_broken(events, client_for):
    client = client_for("compliance_officer")  # logs in: appends an auth.login event
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER audit_event_no_update")
        else:
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(
            "UPDATE audit_auditevent SET summary = 'nothing' WHERE seq = %s", [events[1].seq]
        )
    html = client.post(VERIFY_URL, follow=True).content.decode()
    assert f"Chain broken at #{events[1].seq}" in html
    assert "Chain verified OK" not in html


def test_it_refuses_roles_without_audit_access(events, client_for):
    for role in ("viewer", "ml_engineer", "reviewer", "data_engineer", "incident_commander"):
        assert client_for(role).get(URL).status_code == 403


def test_it_sends_anonymous_visitors_to_log_in(events):
    response = Client().get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_it_filters_by_action_actor_and_object(events, client_for, director):
    client = client_for("compliance_officer")
    assert summaries(client.get(URL, {"action": "deployment.freeze"})) == [
        "sepsis 1.0.0 at NORTH frozen"
    ]
    assert summaries(client.get(URL, {"actor": "mallory"})) == ["Failed login for mallory"]
    assert summaries(client.get(URL, {"actor": str(director.pk)})) == [
        "sepsis 1.0.0 at NORTH frozen"
    ]
    by_object = client.get(URL, {"object_type": "registry.clinicalmodel", "object_id": "1"})
    assert summaries(by_object) == ["Registered model sepsis"]
    assert "match these filters" in client.get(URL, {"action": "nothing.here"}).content.decode()


def test_it_filters_by_date_range(events, client_for):
    client = client_for("compliance_officer")
    today = timezone.now().astimezone(dt.UTC).date()
    yesterday = today - dt.timedelta(days=1)
    assert len(summaries(client.get(URL, {"date_from": today, "date_to": today}))) == 3
    assert summaries(client.get(URL, {"date_to": yesterday})) == []
    assert summaries(client.get(URL, {"date_from": today + dt.timedelta(days=1)})) == []


def test_it_shows_filter_errors_instead_of_the_unfiltered_trail(events, client_for):
    response = client_for("compliance_officer").get(URL, {"date_from": "someday"})
    assert response.status_code == 200
    assert summaries(response) == []
    assert "Enter a valid date" in response.content.decode()


def test_it_pages_through_a_long_trail_keeping_filters(client_for):
    for i in range(55):
        record(actor=None, action="test.bulk", summary=f"bulk event {i}")
    client = client_for("compliance_officer")
    first = client.get(URL, {"action": "test.bulk"}).content.decode()
    assert len(rows(first)) == 50 and "bulk event 54" in first and "page 1 of 2" in first
    assert "?action=test.bulk&amp;page=2" in first
    second = client.get(URL, {"action": "test.bulk", "page": 2}).content.decode()
    assert len(rows(second)) == 5 and "bulk event 0<" in second
    assert len(rows(client.get(URL, {"action": "test.bulk", "page": 99}).content.decode())) == 5
