"""Login, failed login, lock-out, automatic logoff and logout — each an audit event."""

from __future__ import annotations

import time

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from accounts.middleware import SESSION_KEY
from governance.audit.models import AuditEvent

pytestmark = pytest.mark.django_db
LOGIN = "/accounts/login/"


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))


def test_it_logs_in_and_records_it(user_for, password):
    user = user_for("viewer")
    response = Client().post(LOGIN, {"username": user.username, "password": password})
    assert response.status_code == 302 and response["Location"] == reverse("registry:inventory")
    assert actions() == ["auth.login"]
    assert AuditEvent.objects.get().actor == user


def test_it_rejects_a_wrong_password_and_records_it(user_for):
    user = user_for("viewer")
    response = Client().post(LOGIN, {"username": user.username, "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    event = AuditEvent.objects.get()
    assert event.action == "auth.login_failed" and event.actor_label == user.username
    assert "wrong" not in str(event.payload)


@override_settings(VIGIL_LOCKOUT_THRESHOLD=3)
def test_it_locks_out_after_repeated_failures_even_with_the_right_password(user_for, password):
    user = user_for("viewer")
    client = Client()
    for _ in range(3):
        client.post(LOGIN, {"username": user.username, "password": "wrong"})
    response = client.post(LOGIN, {"username": user.username, "password": password})
    assert "locked after repeated failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert actions() == ["auth.login_failed"] * 3 + ["auth.lockout", "auth.login_refused_locked"]


def test_a_success_resets_the_failure_count(user_for, password):
    user = user_for("viewer")
    client = Client()
    client.post(LOGIN, {"username": user.username, "password": "wrong"})
    client.post(LOGIN, {"username": user.username, "password": password})
    from accounts.models import LoginThrottle

    assert not LoginThrottle.objects.filter(username=user.username).exists()


def test_logout_is_a_post_and_is_recorded(client_for):
    client = client_for("viewer")
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert actions()[-1] == "auth.logout"
    assert client.get(reverse("registry:inventory")).status_code == 302


@override_settings(VIGIL_IDLE_TIMEOUT_SECONDS=60)
def test_an_idle_session_is_signed_out_and_recorded(client_for):
    client = client_for("viewer")
    assert client.get(reverse("registry:inventory")).status_code == 200
    session = client.session
    session[SESSION_KEY] = time.time() - 61
    session.save()
    response = client.get(reverse("registry:inventory"))
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert actions()[-1] == "auth.session_timeout"
    # and the user is really out
    assert client.get(reverse("registry:inventory")).status_code == 302


@override_settings(VIGIL_IDLE_TIMEOUT_SECONDS=60)
def test_an_active_session_stays_signed_in(client_for):
    client = client_for("viewer")
    session = client.session
    session[SESSION_KEY] = time.time() - 30
    session.save()
    assert client.get(reverse("registry:inventory")).status_code == 200


def test_the_login_page_states_the_idle_timeout():
    assert "after 15 minutes of inactivity" in Client().get(LOGIN).content.decode()
