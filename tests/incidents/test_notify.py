"""The notification outbox: e-mail and the signed webhook, retries, dead letters, drills, and
the aggregates-only rule."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from governance.audit.models import AuditEvent
from incidents import notify
from incidents.models import Notification, NotificationStatus
from incidents.notify import (
    BACKOFF_MINUTES,
    DRILL_NOTE,
    check_aggregate_only,
    deliver_due,
    notify_role,
    notify_user,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SECRET = "s3cret-webhook-key"
TOKEN_PATH = "/hooks/T0KEN-in-path"

ALERT_BODY: dict[str, Any] = {
    "summary": "Calibration slope fell below the red threshold at North Campus (65+).",
    "metric": "calibration_slope",
    "value": 0.71,
    "baseline": 0.98,
    "band": "red",
    "thresholds": {"yellow": 0.9, "orange": 0.85, "red": 0.8},
    "slice": {"site": "north", "cohort": "age_65_plus"},
    "n": 1843,
    "interval": {"low": 0.64, "high": 0.78, "level": 0.95},
    "window": {"end": "2025-03-01", "days": 28},
    "confidence": "The 95% interval lies entirely below the red threshold.",
    "recommended_response": "Open the calibration runbook; consider recalibration.",
    "routed_role": "ml_engineer",
    "links": {"alert": "/incidents/alerts/12/", "dashboard": "/monitoring/models/3/"},
    "code_ref": "4f2a9c1e0b7d3a6f8e5c2b1a0d9e8f7c6b5a4d3e",  # a 40-hex git sha is fine
}


class Hook:
    """A tiny HTTP server on 127.0.0.1 that records every request and answers ``status``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append({"path": self.path, "headers": self.headers, "raw": raw})
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(settings, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = Hook()
    settings.VIGIL_ALERT_WEBHOOK_URL = server.url + TOKEN_PATH
    settings.VIGIL_ALERT_WEBHOOK_SECRET = SECRET
    yield server
    server.close()


@pytest.fixture
def no_webhook(settings):
    settings.VIGIL_ALERT_WEBHOOK_URL = ""
    settings.VIGIL_ALERT_WEBHOOK_SECRET = ""


@pytest.fixture
def refused_url() -> str:
    with socket.socket() as sock:  # a port that was free a moment ago: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


class BrokenMailServer(BaseEmailBackend):
    def send_messages(self, messages: Any) -> int:
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def later(seconds: float = 1) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


# --- e-mail ----------------------------------------------------------------------------------


def test_email_goes_to_every_active_member_of_the_role_with_an_address(mailoutbox, no_webhook):
    UserFactory(username="ann", role="data_engineer", email="ann@hospital.test")
    UserFactory(username="bob", role="data_engineer", email="bob@hospital.test")
    UserFactory(username="cy", role="data_engineer", email="cy@hospital.test", is_active=False)
    UserFactory(username="di", role="data_engineer", email="")
    UserFactory(username="ed", role="ml_engineer", email="ed@hospital.test")

    rows = notify_role(role="data_engineer", subject="Feed stale: lab_results", body=ALERT_BODY)

    assert sorted(r.recipient for r in rows) == ["ann@hospital.test", "bob@hospital.test"]
    assert {r.status for r in rows} == {NotificationStatus.PENDING}
    assert mailoutbox == []  # nothing leaves before delivery

    assert deliver_due(now=later()) == {"sent": 2, "failed": 0, "dead": 0, "errors": 0}
    assert sorted(m.to[0] for m in mailoutbox) == ["ann@hospital.test", "bob@hospital.test"]
    text = mailoutbox[0].body
    assert mailoutbox[0].subject == "Feed stale: lab_results"
    assert text.startswith(ALERT_BODY["summary"])
    assert "Metric: calibration_slope" in text
    assert "  Red: 0.8" in text and "Recommended response: Open the calibration" in text
    for row in Notification.objects.all():
        assert row.status == NotificationStatus.SENT and row.sent_at is not None
        assert row.attempts == 0


def test_notify_user_emails_that_user_only(mailoutbox, no_webhook):
    user = UserFactory(username="md", role="medical_director", email="md@hospital.test")
    UserFactory(username="md2", role="medical_director", email="md2@hospital.test")
    rows = notify_user(user=user, subject="Escalation: INC-4", body={"incident": 4, "sev": "SEV1"})
    deliver_due(now=later())
    assert [r.channel for r in rows] == ["email"]
    assert [m.to for m in mailoutbox] == [["md@hospital.test"]]


def test_rows_are_written_in_the_transaction_and_delivery_is_kicked_after_commit(
    django_capture_on_commit_callbacks, monkeypatch, no_webhook
):
    UserFactory(username="ann", role="data_engineer")
    with django_capture_on_commit_callbacks() as callbacks:
        notify_role(role="data_engineer", subject="s", body={"n": 3})
    assert len(callbacks) == 1

    kicked = []
    monkeypatch.setattr(notify.deliver_notifications, "delay", lambda: kicked.append(1))
    callbacks[0]()
    assert kicked == [1]

    def broker_down() -> None:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(notify.deliver_notifications, "delay", broker_down)
    callbacks[0]()  # logged, not raised: beat delivers the rows later


def test_nobody_to_notify_is_an_audit_event(no_webhook):
    assert notify_role(role="quality_safety", subject="Outcome drift", body={"n": 10}) == []
    event = AuditEvent.objects.get(action="notification.unroutable")
    assert event.actor is None and event.payload["role"] == "quality_safety"

    inactive = UserFactory(username="gone", role="quality_safety", is_active=False)
    assert notify_user(user=inactive, subject="x", body={}) == []
    assert AuditEvent.objects.filter(action="notification.unroutable").count() == 2


def test_one_bad_row_does_not_stop_the_others(settings, hook, mailoutbox):
    UserFactory(username="ann", role="data_engineer")
    notify_role(role="data_engineer", subject="s", body={"n": 3})
    settings.EMAIL_BACKEND = "tests.incidents.test_notify.BrokenMailServer"
    counts = deliver_due(now=later())
    assert counts == {"sent": 1, "failed": 1, "dead": 0, "errors": 0}
    email = Notification.objects.get(channel="email")
    assert email.status == NotificationStatus.FAILED and email.last_error == (
        "SMTPServerDisconnected: Connection unexpectedly closed"
    )
    assert len(hook.requests) == 1


# --- the webhook -----------------------------------------------------------------------------


def test_webhook_is_signed_and_carries_aggregates_only(hook):
    (row,) = notify_role(role="compliance_officer", subject="Calibration red", body=ALERT_BODY)
    assert row.channel == "webhook"
    assert row.recipient == f"webhook:{hook.url}"  # the path (often a token) is not stored
    now = later()

    assert deliver_due(now=now)["sent"] == 1

    (request,) = hook.requests
    assert request["path"] == TOKEN_PATH
    headers, raw = request["headers"], request["raw"]
    assert headers["Content-Type"] == "application/json"
    expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Vigil-Signature"], f"sha256={expected}")
    payload = json.loads(raw)
    assert set(payload) == {"subject", "body", "notification_id", "sent_at"}
    assert payload["notification_id"] == row.pk and payload["body"] == ALERT_BODY
    sent_at = datetime.fromisoformat(payload["sent_at"])
    assert int(headers["X-Vigil-Timestamp"]) == int(sent_at.timestamp()) == int(now.timestamp())
    check_aggregate_only(payload)
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT and row.sent_at == now


def test_webhook_is_never_sent_unsigned(settings, hook):
    settings.VIGIL_ALERT_WEBHOOK_SECRET = ""
    (row,) = notify_role(role="compliance_officer", subject="s", body={"n": 1})
    deliver_due(now=later())
    row.refresh_from_db()
    assert row.status == NotificationStatus.FAILED
    assert "VIGIL_ALERT_WEBHOOK_SECRET is not set" in row.last_error
    assert hook.requests == []


def test_failed_webhook_is_retried_after_backoff_and_then_succeeds(hook):
    hook.status = 500
    (row,) = notify_role(role="compliance_officer", subject="s", body=ALERT_BODY)
    t0 = later()

    assert deliver_due(now=t0) == {"sent": 0, "failed": 1, "dead": 0, "errors": 0}
    row.refresh_from_db()
    assert row.status == NotificationStatus.FAILED and row.attempts == 1
    assert row.next_attempt_at == t0 + timedelta(minutes=1)
    assert row.last_error == "webhook answered HTTP 500"
    assert SECRET not in row.last_error and "T0KEN" not in row.last_error

    assert deliver_due(now=t0 + timedelta(seconds=30)) == {
        "sent": 0,
        "failed": 0,
        "dead": 0,
        "errors": 0,
    }
    assert len(hook.requests) == 1  # not due yet

    hook.status = 200
    t1 = t0 + timedelta(minutes=1, seconds=1)
    assert deliver_due(now=t1)["sent"] == 1
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT and row.sent_at == t1 and row.attempts == 1
    assert len(hook.requests) == 2
    assert json.loads(hook.requests[1]["raw"])["notification_id"] == row.pk


def test_dead_after_six_failures_with_an_audit_event(settings, refused_url):
    settings.VIGIL_ALERT_WEBHOOK_URL = refused_url
    settings.VIGIL_ALERT_WEBHOOK_SECRET = SECRET
    (row,) = notify_role(role="compliance_officer", subject="s", body={"n": 1})
    now = later()
    waits = []
    for attempt in range(1, 7):
        counts = deliver_due(now=now)
        row.refresh_from_db()
        assert row.attempts == attempt
        assert "unreachable" in row.last_error
        if attempt < 6:
            assert counts["failed"] == 1 and row.status == NotificationStatus.FAILED
            waits.append(round((row.next_attempt_at - now).total_seconds() / 60))
            now = row.next_attempt_at
        else:
            assert counts["dead"] == 1 and row.status == NotificationStatus.DEAD
    assert waits == list(BACKOFF_MINUTES)

    assert deliver_due(now=now + timedelta(days=30))["dead"] == 0  # dead rows stay dead
    event = AuditEvent.objects.get(action="notification.dead")
    assert event.actor is None and event.actor_label == "system"
    assert event.object_type == "incidents.notification" and event.object_id == str(row.pk)
    assert event.payload["attempts"] == 6 and event.payload["channel"] == "webhook"


def test_a_stored_body_that_is_not_aggregate_is_refused_at_delivery(mailoutbox):
    row = Notification.objects.create(
        channel="email", recipient="x@hospital.test", subject="s", body={"case_key": "abc"}
    )
    assert deliver_due(now=later())["dead"] == 1
    row.refresh_from_db()
    assert row.status == NotificationStatus.DEAD and row.last_error.startswith("refused:")
    assert mailoutbox == []
    assert AuditEvent.objects.filter(action="notification.dead").count() == 1


# --- drills ----------------------------------------------------------------------------------


def test_a_drill_is_recorded_but_never_delivered(
    hook, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(username="ann", role="incident_commander", email="ann@hospital.test")
    with django_capture_on_commit_callbacks() as callbacks:
        rows = notify_role(
            role="incident_commander", subject="Drill: SEV1", body=ALERT_BODY, is_drill=True
        )
    assert callbacks == []
    assert sorted(r.recipient for r in rows) == [
        "drill:ann@hospital.test",
        f"drill:webhook:{hook.url}",
    ]
    for row in rows:
        assert row.is_drill and row.subject.startswith("[DRILL] ")
        assert row.status == NotificationStatus.SENT
        assert row.sent_at is None and row.attempts == 0 and row.last_error == DRILL_NOTE

    # Even a drill row put back in the queue is never picked up.
    Notification.objects.filter(is_drill=True).update(status=NotificationStatus.PENDING)
    assert deliver_due(now=later(86400)) == {"sent": 0, "failed": 0, "dead": 0, "errors": 0}
    assert mailoutbox == [] and hook.requests == []


# --- aggregates only -------------------------------------------------------------------------

CASE_KEY_HASH = hashlib.sha256(b"case 123").hexdigest()


@pytest.mark.parametrize(
    "body",
    [
        {"case_key": "MRN-0042"},
        {"case_ref": "3fa9c2"},
        {"case_key_hash": "abc"},
        {"features": {"lactate": 4.1}},
        {"feature_values": [4.1, 120]},
        {"patient_id": 17},
        {"Patient": {"age": 71}},
        {"patients": ["a"]},
        {"mrn": "0042"},
        {"name": "Jane Doe"},
        {"dob": "1950-01-01"},
        {"slice": {"site": "north", "worst": {"patient_name": "x"}}},
        {"examples": [{"n": 3}, {"features": {"hr": 130}}]},
        {"note": CASE_KEY_HASH},
        {"links": [f"/monitoring/cases/{CASE_KEY_HASH}/"]},
        {"top": {"deep": [[CASE_KEY_HASH.upper()]]}},
    ],
)
def test_check_aggregate_only_refuses_case_and_patient_data(body):
    with pytest.raises(ValueError, match="aggregates only"):
        check_aggregate_only(body)


def test_check_aggregate_only_accepts_a_realistic_alert_payload():
    check_aggregate_only(ALERT_BODY)


def test_notify_refuses_case_data_and_writes_nothing(no_webhook):
    UserFactory(username="ann", role="data_engineer")
    with pytest.raises(ValueError):
        notify_role(role="data_engineer", subject="s", body={"slice": {"case_key": "k"}})
    with pytest.raises(ValueError):
        notify_role(role="data_engineer", subject=f"case {CASE_KEY_HASH}", body={"n": 1})
    assert not Notification.objects.exists()


def test_bodies_are_stored_as_json(no_webhook):
    UserFactory(username="ann", role="data_engineer")
    (row,) = notify_role(
        role="data_engineer",
        subject="s",
        body={"window_end": datetime(2025, 3, 1, tzinfo=UTC).date(), "n": 5},
    )
    row.refresh_from_db()
    assert row.body == {"window_end": "2025-03-01", "n": 5}
