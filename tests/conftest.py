"""Shared fixtures: one named user per role, logged-in clients, a service token."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.roles import Role
from tests.factories import PASSWORD, UserFactory

ROLES = [str(role) for role in Role]


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture(autouse=True)
def fast_password_hasher(settings: object) -> None:
    # The production hasher costs ~0.3 s per password by design; tests don't need that.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]


@pytest.fixture
def user_for(db: None) -> Callable[[str], object]:
    """``user_for("ml_engineer")`` → the test's one user holding exactly that role."""
    made: dict[str, object] = {}

    def make(role: str) -> object:
        if role not in made:
            made[role] = UserFactory(username=f"test-{role}", role=role)
        return made[role]

    return make


@pytest.fixture
def client_for(user_for: Callable[[str], object]) -> Callable[[str], Client]:
    def make(role: str) -> Client:
        client = Client()
        client.force_login(user_for(role))
        return client

    return make


@pytest.fixture
def api_for(user_for: Callable[[str], object]) -> Callable[[str], APIClient]:
    def make(role: str) -> APIClient:
        client = APIClient()
        client.force_authenticate(user_for(role))
        return client

    return make


@pytest.fixture
def ml_engineer(user_for: Callable[[str], object]) -> object:
    return user_for("ml_engineer")


@pytest.fixture
def director(user_for: Callable[[str], object]) -> object:
    return user_for("medical_director")


@pytest.fixture
def compliance(user_for: Callable[[str], object]) -> object:
    return user_for("compliance_officer")


@pytest.fixture
def viewer(user_for: Callable[[str], object]) -> object:
    return user_for("viewer")
