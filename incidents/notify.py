"""The notification outbox: e-mail and a signed webhook, delivered by Celery with retries.

``notify_role`` / ``notify_user`` write ``Notification`` rows in the caller's transaction and,
once it commits, ask a worker to deliver them; beat runs ``deliver_notifications`` every minute
as well, so a row is delivered even if that first kick is lost. A failed delivery stays in the
table (status ``failed``, ``last_error``) and is retried after 1, 5, 15, 60 and 240 minutes;
after the sixth failed attempt it is ``dead`` and an audit event ``notification.dead`` says so.
Delivery is at least once: a worker that dies between sending and recording may send again, so
webhook receivers should de-duplicate on ``notification_id``.

Every subject and body passes ``check_aggregate_only``: notifications carry aggregates, never a
case key, a feature value or a patient identifier.

Drills: their rows are recorded (``is_drill``, recipient prefixed ``drill:``, subject prefixed
``[DRILL]``) so the drill shows who *would* have been told, but they are created already
settled — status ``sent`` with ``sent_at`` empty, ``attempts`` 0 and ``last_error`` saying
``drill: recorded, not delivered`` — and ``deliver_due`` never picks up a drill row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from governance.audit.services import FORBIDDEN_PAYLOAD_KEYS, record
from incidents.models import Alert, Incident, Notification, NotificationStatus

logger = logging.getLogger(__name__)

EMAIL = "email"
WEBHOOK = "webhook"
DRILL_PREFIX = "drill:"
DRILL_NOTE = "drill: recorded, not delivered"

#: Minutes to wait after the 1st, 2nd, ... failed attempt; the 6th failure is final.
BACKOFF_MINUTES = (1, 5, 15, 60, 240)
MAX_ATTEMPTS = len(BACKOFF_MINUTES) + 1
#: A claimed row is not picked up by another worker for this long (one delivery is far shorter).
CLAIM_LEASE = timedelta(minutes=5)
WEBHOOK_TIMEOUT_SECONDS = 10
EMAIL_TIMEOUT_SECONDS = 30

# --- aggregates only -----------------------------------------------------------------------

FORBIDDEN_KEYS = (
    frozenset(
        {
            "case_key",
            "case_ref",
            "case_key_hash",
            "features",
            "feature_values",
            "mrn",
            "name",
            "dob",
        }
    )
    | FORBIDDEN_PAYLOAD_KEYS
)
FORBIDDEN_PREFIXES = ("patient",)
#: A pseudonymous case key hash (sha256 / HMAC-SHA256 hex), alone or inside a longer string.
CASE_KEY_HASH = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")


class NotAggregate(ValueError):
    """A notification (or alert payload) would carry case-level or patient data."""


def check_aggregate_only(body: Any, path: str = "body") -> None:
    """Raise ``ValueError`` if ``body`` holds, at any depth, a key that names case or patient
    data (``case_key``, ``features``, ``patient*``, ``mrn``, ``name``, ``dob``, ...) or a string
    that looks like a case key hash (64 hex characters). Aggregates pass."""
    if isinstance(body, Mapping):
        for key, value in body.items():
            lowered = str(key).lower()
            if lowered in FORBIDDEN_KEYS or lowered.startswith(FORBIDDEN_PREFIXES):
                raise NotAggregate(
                    f"{path}.{key}: case or patient data; notifications carry aggregates only"
                )
            check_aggregate_only(value, f"{path}.{key}")
    elif isinstance(body, list | tuple | set | frozenset):
        for index, item in enumerate(body):
            check_aggregate_only(item, f"{path}[{index}]")
    elif isinstance(body, str) and CASE_KEY_HASH.search(body):
        raise NotAggregate(
            f"{path}: looks like a case key hash; notifications carry aggregates only"
        )


# --- writing the outbox --------------------------------------------------------------------


def _webhook_url() -> str:
    return getattr(settings, "VIGIL_ALERT_WEBHOOK_URL", "") or ""


def _webhook_secret() -> str:
    return getattr(settings, "VIGIL_ALERT_WEBHOOK_SECRET", "") or ""


def webhook_label(url: str) -> str:
    """The webhook as shown in the outbox: scheme and host only (paths often hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"webhook:{parts.scheme}://{host}{port}"


def _prepare(subject: str, body: Mapping[str, Any], is_drill: bool) -> tuple[str, dict]:
    if not isinstance(body, Mapping):
        raise TypeError("a notification body is a dict of aggregates")
    # Dates, decimals, UUIDs become their JSON form: what is checked is what is stored and sent.
    clean = json.loads(json.dumps(dict(body), cls=DjangoJSONEncoder))
    check_aggregate_only(subject, "subject")
    check_aggregate_only(clean)
    subject = " ".join(subject.split())  # one line: a mail header
    if is_drill and not subject.startswith("[DRILL]"):
        subject = f"[DRILL] {subject}"
    return subject[:300], clean


def _row(
    *,
    channel: str,
    recipient: str,
    subject: str,
    body: dict,
    incident: Incident | None,
    alert: Alert | None,
    is_drill: bool,
) -> Notification:
    if is_drill:
        return Notification.objects.create(
            incident=incident,
            alert=alert,
            channel=channel,
            recipient=(DRILL_PREFIX + recipient)[:300],
            subject=subject,
            body=body,
            status=NotificationStatus.SENT,
            last_error=DRILL_NOTE,
            is_drill=True,
        )
    return Notification.objects.create(
        incident=incident,
        alert=alert,
        channel=channel,
        recipient=recipient[:300],
        subject=subject,
        body=body,
    )


def _deliver_soon() -> None:
    try:
        deliver_notifications.delay()
    except Exception:  # the broker is down: beat delivers the rows within a minute of its return
        logger.warning("could not queue notification delivery; beat will retry", exc_info=True)


def _finish(
    rows: list[Notification],
    *,
    what: str,
    subject: str,
    payload: dict[str, Any],
    incident: Incident | None,
    alert: Alert | None,
    is_drill: bool,
) -> list[Notification]:
    if not rows:
        # Nobody can be reached: say so loudly rather than drop the message.
        logger.error("notification %r reaches nobody (%s)", subject, what)
        record(
            actor=None,
            action="notification.unroutable",
            summary=f"Nobody to notify ({what}): {subject}",
            target=incident or alert,
            payload={
                **payload,
                "subject": subject,
                "incident_id": incident.pk if incident else None,
                "alert_id": alert.pk if alert else None,
                "is_drill": is_drill,
            },
        )
    elif not is_drill:
        transaction.on_commit(_deliver_soon)
    return rows


def _addresses(users: Any) -> list[str]:
    seen: set[str] = set()
    addresses = []
    for address in users:
        address = (address or "").strip()
        if address and address.lower() not in seen:
            seen.add(address.lower())
            addresses.append(address)
    return addresses


def notify_role(
    *,
    role: str,
    subject: str,
    body: Mapping[str, Any],
    incident: Incident | None = None,
    alert: Alert | None = None,
    is_drill: bool = False,
) -> list[Notification]:
    """Queue one e-mail per active member of the ``role`` group with an address, plus one
    webhook call if ``VIGIL_ALERT_WEBHOOK_URL`` is set. Rows are written in the caller's
    transaction; delivery starts after it commits."""
    subject, clean = _prepare(subject, body, is_drill)
    users = (
        get_user_model()
        .objects.filter(groups__name=role, is_active=True)
        .exclude(email="")
        .order_by("username")
        .values_list("email", flat=True)
    )
    rows = [
        _row(
            channel=EMAIL,
            recipient=address,
            subject=subject,
            body=clean,
            incident=incident,
            alert=alert,
            is_drill=is_drill,
        )
        for address in _addresses(users)
    ]
    url = _webhook_url()
    if url:
        rows.append(
            _row(
                channel=WEBHOOK,
                recipient=webhook_label(url),
                subject=subject,
                body=clean,
                incident=incident,
                alert=alert,
                is_drill=is_drill,
            )
        )
    return _finish(
        rows,
        what=f"role {role}",
        subject=subject,
        payload={"role": role},
        incident=incident,
        alert=alert,
        is_drill=is_drill,
    )


def notify_user(
    *,
    user: Any,
    subject: str,
    body: Mapping[str, Any],
    incident: Incident | None = None,
    alert: Alert | None = None,
    is_drill: bool = False,
) -> list[Notification]:
    """Queue one e-mail to ``user`` (none if inactive or without an address: that is recorded
    as ``notification.unroutable``). Personal messages do not go to the webhook."""
    subject, clean = _prepare(subject, body, is_drill)
    rows = []
    if user.is_active and (user.email or "").strip():
        rows.append(
            _row(
                channel=EMAIL,
                recipient=user.email.strip(),
                subject=subject,
                body=clean,
                incident=incident,
                alert=alert,
                is_drill=is_drill,
            )
        )
    return _finish(
        rows,
        what=f"user {user.get_username()}",
        subject=subject,
        payload={"user_id": user.pk},
        incident=incident,
        alert=alert,
        is_drill=is_drill,
    )


# --- rendering -----------------------------------------------------------------------------


def _label(key: Any) -> str:
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _scalar(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _render(lines: list[str], key: Any, value: Any, indent: int) -> None:
    pad = "  " * indent
    if isinstance(value, Mapping):
        lines.append(f"{pad}{_label(key)}:")
        for child_key, child in value.items():
            _render(lines, child_key, child, indent + 1)
    elif isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
        lines.append(f"{pad}{_label(key)}:")
        for item in value:
            if isinstance(item, Mapping):
                lines.append(f"{pad}  -")
                for child_key, child in item.items():
                    _render(lines, child_key, child, indent + 2)
            else:
                lines.append(f"{pad}  - {_scalar(item)}")
    elif isinstance(value, list):
        lines.append(f"{pad}{_label(key)}: {', '.join(_scalar(v) for v in value) or '—'}")
    else:
        lines.append(f"{pad}{_label(key)}: {_scalar(value)}")


def render_text(subject: str, body: Mapping[str, Any]) -> str:
    """The e-mail text: the body's ``summary`` (or the subject), then every field."""
    summary = body.get("summary") or subject
    lines = [str(summary), ""]
    for key, value in body.items():
        if key != "summary":
            _render(lines, key, value, 0)
    lines += [
        "",
        "-- ",
        "Vigil. This message carries aggregates only, never patient identifiers or case data;",
        "open Vigil for the evidence and the runbook.",
    ]
    return "\n".join(lines) + "\n"


# --- delivery ------------------------------------------------------------------------------


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes POSTed and signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder
    ).encode("utf-8")


def sign(secret: str, raw: bytes) -> str:
    """The ``X-Vigil-Signature`` header value for ``raw``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would arrive as a bodiless GET and look like success: refuse it.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class DeliveryError(Exception):
    pass


def _send_email(row: Notification) -> None:
    timeout = getattr(settings, "EMAIL_TIMEOUT", None) or EMAIL_TIMEOUT_SECONDS
    message = EmailMessage(
        subject=row.subject,
        body=render_text(row.subject, row.body),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[row.recipient],
        connection=get_connection(timeout=timeout),
    )
    if message.send(fail_silently=False) != 1:
        raise DeliveryError("the mail backend accepted no message")


def _send_webhook(row: Notification, now: datetime) -> None:
    url, secret = _webhook_url(), _webhook_secret()
    if not url:
        raise DeliveryError("VIGIL_ALERT_WEBHOOK_URL is not set")
    if not secret:
        raise DeliveryError("VIGIL_ALERT_WEBHOOK_SECRET is not set: refusing to send unsigned")
    if urlsplit(url).scheme not in {"http", "https"}:
        raise DeliveryError("VIGIL_ALERT_WEBHOOK_URL must be an http(s) URL")
    raw = canonical_json(
        {
            "subject": row.subject,
            "body": row.body,
            "notification_id": row.pk,
            "sent_at": now.isoformat(),
        }
    )
    request = urllib.request.Request(
        url,
        data=raw,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Vigil-notifier",
            "X-Vigil-Signature": sign(secret, raw),
            "X-Vigil-Timestamp": str(int(now.timestamp())),
        },
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise DeliveryError(f"webhook unreachable: {exc.reason}") from None
    except TimeoutError:
        raise DeliveryError(f"webhook timed out after {WEBHOOK_TIMEOUT_SECONDS} s") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"webhook answered HTTP {status}")


def _redact(text: str) -> str:
    for secret in (
        _webhook_url(),
        _webhook_secret(),
        getattr(settings, "EMAIL_HOST_PASSWORD", "") or "",
    ):
        if secret:
            text = text.replace(secret, "[redacted]")
    return text[:500]


def _attempt(row: Notification, now: datetime) -> tuple[str | None, bool]:
    """Deliver one row: ``(None, False)`` on success, else the error text and whether retrying
    is pointless (a body that is not aggregate-only is never sent). Never raises."""
    try:
        check_aggregate_only(row.subject, "subject")
        check_aggregate_only(row.body)
    except NotAggregate as exc:
        return f"refused: {exc}"[:500], True
    try:
        if row.channel == EMAIL:
            _send_email(row)
        elif row.channel == WEBHOOK:
            _send_webhook(row, now)
        else:
            raise DeliveryError(f"unknown channel {row.channel!r}")
    except DeliveryError as exc:
        return _redact(str(exc)), False
    except Exception as exc:
        return _redact(f"{type(exc).__name__}: {exc}"), False
    return None, False


def _claim(now: datetime) -> Notification | None:
    """Take the next due row and lease it, in a short transaction of its own (no transaction
    stays open while a mail server or webhook is slow)."""
    with transaction.atomic():
        due = Notification.objects.filter(
            status__in=(NotificationStatus.PENDING, NotificationStatus.FAILED),
            next_attempt_at__lte=now,
            is_drill=False,
        ).order_by("next_attempt_at", "pk")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        row = due.first()
        if row is not None:
            row.next_attempt_at = now + CLAIM_LEASE
            row.save(update_fields=["next_attempt_at"])
        return row


def _settle(row: Notification, error: str | None, permanent: bool, now: datetime) -> str:
    with transaction.atomic():
        if error is None:
            row.status, row.sent_at, row.last_error = NotificationStatus.SENT, now, ""
            row.save(update_fields=["status", "sent_at", "last_error"])
            return "sent"
        row.attempts += 1
        row.last_error = error
        if row.attempts >= MAX_ATTEMPTS or permanent:
            row.status = NotificationStatus.DEAD
            row.save(update_fields=["status", "attempts", "last_error"])
            logger.error(
                "notification %s (%s to %s) is dead after %s attempts: %s",
                row.pk,
                row.channel,
                row.recipient,
                row.attempts,
                error,
            )
            record(
                actor=None,
                action="notification.dead",
                summary=(
                    f"Notification {row.pk} ({row.channel} to {row.recipient}) given up after "
                    f"{row.attempts} attempts: {error}"
                ),
                target=row,
                payload={
                    "notification_id": row.pk,
                    "channel": row.channel,
                    "recipient": row.recipient,
                    "subject": row.subject,
                    "attempts": row.attempts,
                    "last_error": error,
                    "incident_id": row.incident_id,
                    "alert_id": row.alert_id,
                },
            )
            return "dead"
        row.status = NotificationStatus.FAILED
        row.next_attempt_at = now + timedelta(minutes=BACKOFF_MINUTES[row.attempts - 1])
        row.save(update_fields=["status", "attempts", "last_error", "next_attempt_at"])
        logger.warning(
            "notification %s (%s) failed, attempt %s, retry at %s: %s",
            row.pk,
            row.channel,
            row.attempts,
            row.next_attempt_at.isoformat(),
            error,
        )
        return "failed"


def deliver_due(*, now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Deliver up to ``limit`` due rows (pending or failed, ``next_attempt_at <= now``).

    Returns counts ``{"sent", "failed", "dead", "errors"}``; ``errors`` counts rows whose
    outcome could not be recorded (they are retried when their lease ends). Never raises.
    """
    now = now or timezone.now()
    counts = {"sent": 0, "failed": 0, "dead": 0, "errors": 0}
    for _ in range(limit):
        try:
            row = _claim(now)
        except Exception:
            logger.exception("could not claim a due notification")
            counts["errors"] += 1
            break
        if row is None:
            break
        error, permanent = _attempt(row, now)
        try:
            counts[_settle(row, error, permanent, now)] += 1
        except Exception:
            logger.exception("could not record the delivery of notification %s", row.pk)
            counts["errors"] += 1
    return counts


@shared_task(name="incidents.deliver_notifications")
def deliver_notifications() -> dict[str, int]:
    return deliver_due()
