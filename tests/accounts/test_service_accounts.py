"""Service accounts: created by command, token printed once, only its hash stored."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ServiceAccount, hash_token
from governance.audit.models import AuditEvent
from tests.factories import ClinicalModelFactory

pytestmark = pytest.mark.django_db


def create(name: str, models: str) -> str:
    out = StringIO()
    call_command("create_service_account", name, "--models", models, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_it_prints_the_token_once_and_stores_only_its_hash():
    ClinicalModelFactory(slug="sepsis-ews")
    token = create("sepsis-scorer", "sepsis-ews")
    account = ServiceAccount.objects.get(name="sepsis-scorer")
    assert token.startswith("vgl_") and len(token) > 40
    assert account.token_hash == hash_token(token) and token not in account.token_hash
    assert list(account.clinical_models.values_list("slug", flat=True)) == ["sepsis-ews"]
    event = AuditEvent.objects.get(action="service_account.create")
    assert token not in str(event.payload) and token not in event.summary


def test_it_refuses_unknown_models_and_duplicates():
    ClinicalModelFactory(slug="sepsis-ews")
    with pytest.raises(CommandError, match="Unknown model"):
        create("scorer", "sepsis-ews,nope")
    create("scorer", "sepsis-ews")
    with pytest.raises(CommandError, match="already exists"):
        create("scorer", "sepsis-ews")
    with pytest.raises(CommandError, match="lowercase"):
        create("Bad Name!", "sepsis-ews")
    assert ServiceAccount.objects.count() == 1


def test_a_token_authenticates_but_opens_no_human_endpoint():
    ClinicalModelFactory(slug="sepsis-ews")
    token = create("scorer", "sepsis-ews")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/models/").status_code == 403
    client.credentials(HTTP_AUTHORIZATION="Bearer vgl_not-a-real-token")
    assert client.get("/api/v1/models/").status_code == 401


def test_a_service_account_cannot_log_in_to_pages():
    ClinicalModelFactory(slug="sepsis-ews")
    create("scorer", "sepsis-ews")
    from django.test import Client

    account = ServiceAccount.objects.get()
    client = Client()
    client.force_login(account.user)
    assert client.get("/models/").status_code == 403
