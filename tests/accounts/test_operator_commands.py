"""Operators manage people, roles, lock-outs and tokens from the shell; each change is audited."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from rest_framework.test import APIClient

from accounts.services import service_account_create
from governance.audit.models import AuditEvent
from tests.factories import ClinicalModelFactory

pytestmark = pytest.mark.django_db
STRONG = "an-adequately-long-passphrase"


def create_user(*args: str, password: str = STRONG) -> None:
    stdin = io.StringIO(password + "\n")
    import sys

    real, sys.stdin = sys.stdin, stdin
    try:
        call_command("create_user", *args, "--password-stdin", stdout=io.StringIO())
    finally:
        sys.stdin = real


def test_it_creates_a_person_who_can_log_in_with_their_role():
    create_user("jdoe", "--role", "reviewer,viewer", "--email", "jdoe@hospital.test")
    user = get_user_model().objects.get(username="jdoe")
    assert sorted(user.groups.values_list("name", flat=True)) == ["reviewer", "viewer"]
    assert Client().login(username="jdoe", password=STRONG)
    event = AuditEvent.objects.get(action="user.create")
    assert (
        event.payload["roles"] == ["reviewer", "viewer"] and "create_user" in event.payload["via"]
    )
    assert STRONG not in str(event.payload)


def test_it_refuses_weak_passwords_unknown_roles_and_duplicates():
    with pytest.raises(CommandError, match="password"):
        create_user("jdoe", "--role", "viewer", "--email", "j@h.test", password="short")
    with pytest.raises(CommandError, match="Unknown role"):
        create_user("jdoe", "--role", "superuser", "--email", "j@h.test")
    create_user("jdoe", "--role", "viewer", "--email", "j@h.test")
    with pytest.raises(CommandError, match="already exists"):
        create_user("jdoe", "--role", "viewer", "--email", "j@h.test")
    assert get_user_model().objects.filter(username="jdoe").count() == 1


def test_it_grants_and_revokes_a_role(user_for):
    user = user_for("viewer")
    call_command("grant_role", user.username, "ml_engineer", stdout=io.StringIO())
    assert user.groups.filter(name="ml_engineer").exists()
    with pytest.raises(CommandError, match="already holds"):
        call_command("grant_role", user.username, "ml_engineer")
    call_command("grant_role", user.username, "ml_engineer", "--revoke", stdout=io.StringIO())
    assert not user.groups.filter(name="ml_engineer").exists()
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="user.role")] == [
        "user.role_grant",
        "user.role_revoke",
    ]


@override_settings(VIGIL_LOCKOUT_THRESHOLD=2)
def test_it_unlocks_a_locked_out_person(user_for, password):
    user = user_for("viewer")
    client = Client()
    for _ in range(2):
        client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
    response = client.post("/accounts/login/", {"username": user.username, "password": password})
    assert "locked" in response.content.decode()
    call_command("unlock_login", user.username, stdout=io.StringIO())
    response = client.post("/accounts/login/", {"username": user.username, "password": password})
    assert response.status_code == 302
    with pytest.raises(CommandError, match="not locked"):
        call_command("unlock_login", user.username)


def test_a_revoked_token_stops_working_at_once():
    ClinicalModelFactory(slug="sepsis-ews")
    issued = service_account_create(actor=None, name="scorer", model_slugs=["sepsis-ews"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    assert client.get("/api/v1/models/").status_code == 403  # authenticated, no human endpoint
    call_command(
        "revoke_service_account", "scorer", "--reason", "leaked in a log", stdout=io.StringIO()
    )
    assert client.get("/api/v1/models/").status_code == 401
    assert AuditEvent.objects.filter(action="service_account.revoke").exists()
