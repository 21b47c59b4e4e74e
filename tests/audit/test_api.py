"""The audit trail API: read-only events for auditors, filters, and chain verification."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import service_account_create
from governance.audit.models import AuditEvent
from governance.audit.services import record
from tests.conftest import ROLES
from tests.factories import ClinicalModelFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/audit-events/"
VIEWERS = {"compliance_officer", "medical_director"}
VERIFIERS = {"compliance_officer"}


@pytest.fixture
def trail(ml_engineer: Any, director: Any) -> SimpleNamespace:
    """Three events, with a moment recorded between the first and the others."""
    first = record(
        actor=ml_engineer,
        action="model.register",
        object_type="registry.clinicalmodel",
        object_id=1,
        summary="Registered model sepsis",
        payload={"slug": "sepsis"},
    )
    between = timezone.now()
    second = record(
        actor=director,
        action="deployment.freeze",
        object_type="registry.deployment",
        object_id=7,
        summary="sepsis 1.0.0 at NORTH frozen",
        payload={"reason": "red"},
    )
    third = record(
        actor=None,
        actor_label="mallory",
        action="auth.login_failed",
        object_type="auth.user",
        summary="Failed login for mallory",
    )
    return SimpleNamespace(
        events=[first, second, third], between=between, ml_engineer=ml_engineer, director=director
    )


def seqs(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [event["seq"] for event in response.data["results"]]


def tamper(seq: int) -> None:
    """Alter a stored event behind the application's back, as an attacker with SQL would."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER audit_event_no_update")
        else:
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(
            "UPDATE audit_auditevent SET summary = %s WHERE seq = %s", ["nothing happened", seq]
        )


def test_it_lists_events_oldest_first_with_their_hashes(trail, api_for):
    response = api_for("compliance_officer").get(URL)
    assert seqs(response) == [1, 2, 3]
    first = response.data["results"][0]
    assert first["actor"] == trail.ml_engineer.username and first["actor_role"] == "ml_engineer"
    assert first["action"] == "model.register" and first["object_id"] == "1"
    assert first["payload"] == {"slug": "sepsis"}
    assert first["hash"] == trail.events[0].hash and first["prev_hash"] == "0" * 64
    assert response.data["results"][1]["prev_hash"] == first["hash"]


@pytest.mark.parametrize("role", ROLES)
def test_it_shows_the_trail_only_to_auditing_roles(role, trail, api_for):
    client = api_for(role)
    expected = 200 if role in VIEWERS else 403
    assert client.get(URL).status_code == expected
    assert client.get(f"{URL}2/").status_code == expected
    assert client.get(f"{URL}verify/").status_code == (200 if role in VERIFIERS else 403)


def test_it_refuses_service_tokens_and_anonymous_clients(trail):
    ClinicalModelFactory(slug="sepsis")
    issued = service_account_create(actor=None, name="sepsis-svc", model_slugs=["sepsis"])
    service = APIClient()
    service.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    anonymous = APIClient()
    for url in (URL, f"{URL}1/", f"{URL}verify/"):
        assert service.get(url).status_code == 403
        assert anonymous.get(url).status_code == 401


def test_it_is_read_only(trail, api_for):
    client = api_for("compliance_officer")
    before = AuditEvent.objects.exclude(action="access.denied").count()
    assert client.post(URL, {"action": "x", "summary": "forged"}, format="json").status_code in (
        403,
        405,
    )
    assert client.patch(f"{URL}1/", {"summary": "forged"}, format="json").status_code in (403, 405)
    assert client.put(f"{URL}1/", {"summary": "forged"}, format="json").status_code in (403, 405)
    assert client.delete(f"{URL}1/").status_code in (403, 405)
    assert AuditEvent.objects.exclude(action="access.denied").count() == before
    assert AuditEvent.objects.get(seq=1).summary == "Registered model sepsis"


def test_it_retrieves_one_event_by_sequence_number(trail, api_for):
    client = api_for("medical_director")
    response = client.get(f"{URL}2/")
    assert response.status_code == 200
    assert response.data["action"] == "deployment.freeze" and response.data["payload"] == {
        "reason": "red"
    }
    assert client.get(f"{URL}99/").status_code == 404


def test_it_filters_events(trail, api_for):
    client = api_for("compliance_officer")
    assert seqs(client.get(URL, {"action": "deployment.freeze"})) == [2]
    assert seqs(client.get(URL, {"actor": trail.director.username})) == [2]
    assert seqs(client.get(URL, {"actor": str(trail.ml_engineer.pk)})) == [1]
    assert seqs(client.get(URL, {"actor": "mallory"})) == [3]
    assert seqs(client.get(URL, {"object_type": "registry.deployment", "object_id": "7"})) == [2]
    assert seqs(client.get(URL, {"object_type": "registry.deployment", "object_id": "8"})) == []
    since = trail.between.isoformat()
    assert seqs(client.get(URL, {"since": since})) == [2, 3]
    assert seqs(client.get(URL, {"until": since})) == [1]
    response = client.get(URL, {"since": "last tuesday"})
    assert response.status_code == 400 and "since" in response.data


def test_it_orders_and_paginates_events(trail, api_for):
    client = api_for("compliance_officer")
    assert seqs(client.get(URL, {"ordering": "-seq"})) == [3, 2, 1]
    page = client.get(URL, {"page_size": 2})
    assert seqs(page) == [1, 2] and page.data["count"] == 3
    assert seqs(client.get(page.data["next"])) == [3]


def test_it_verifies_an_intact_chain(trail, api_for):
    response = api_for("compliance_officer").get(f"{URL}verify/")
    assert response.status_code == 200
    assert response.data == {
        "ok": True,
        "count": 3,
        "broken_seq": None,
        "reason": "",
        "last_hash": trail.events[2].hash,
    }


def test_it_names_the_first_tampered_event(trail, api_for):
    tamper(2)
    response = api_for("compliance_officer").get(f"{URL}verify/")
    assert response.status_code == 200
    assert response.data["ok"] is False and response.data["broken_seq"] == 2
    assert response.data["count"] == 1
    assert "stored hash" in response.data["reason"]


def test_api_changes_show_in_the_trail_api(api_for, director):
    """A write made through the registry API can be found through the audit API."""
    from tests.factories import ModelVersionFactory, SiteFactory

    version = ModelVersionFactory(model=ClinicalModelFactory(slug="sepsis"), version="1.0.0")
    SiteFactory(code="NORTH")
    response = api_for("medical_director").post(
        "/api/v1/deployments/",
        {"version_id": version.pk, "site": "NORTH", "reason": "R-1"},
        format="json",
    )
    assert response.status_code == 201
    events = (
        api_for("compliance_officer")
        .get(URL, {"object_type": "registry.deployment", "object_id": str(response.data["id"])})
        .data["results"]
    )
    assert [(e["action"], e["actor"]) for e in events] == [("deployment.start", director.username)]
