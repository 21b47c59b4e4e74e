"""The access review's reads: who holds which role, who opened which case, what was refused,
failed signatures, lock-outs and break-glass grants; and its one write, the audited export.

Everything here comes from Vigil's own records (users, groups, the audit trail, signing
attempts, break-glass grants): case ids, usernames and paths, never a patient's data. Signing
attempts belong to governance, which accounts may not import (tests/test_layers.py), so they
are read through the app registry.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import BreakGlassGrant, LoginThrottle, ServiceAccount
from accounts.permissions import require_perms
from governance.audit.models import AuditEvent
from governance.audit.services import record

REVIEW_ACCESS = "accounts.review_access"
CASE_VIEW_ACTIONS = ("review.case_view",)
DENIED_ACTIONS = ("access.denied",)
LOGIN_ACTIONS = ("auth.login_failed", "auth.lockout", "auth.login_refused_locked", "auth.unlock")
SIGNING_OUTCOMES = ("failed", "locked", "unlocked")


@dataclass(frozen=True)
class Filters:
    """The page's filters. ``None`` means unfiltered; dates are whole UTC days, inclusive."""

    date_from: date | None = None
    date_to: date | None = None
    username: str = ""

    def as_payload(self) -> dict[str, str]:
        return {
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
            "user": self.username,
        }


# --- Sections -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonRow:
    username: str
    full_name: str
    roles: tuple[str, ...]
    kind: str  # "person" or "service"
    last_login: datetime | None  # a service account's last token use
    is_active: bool
    locked_until: datetime | None  # a current login lock-out


def people() -> list[PersonRow]:
    """Every account with its roles, last login, and whether it is active or locked out."""
    now = timezone.now()
    locked = {
        t.username: t.locked_until
        for t in LoginThrottle.objects.filter(locked_until__gt=now).only("username", "locked_until")
    }
    services = {s.user_id: s for s in ServiceAccount.objects.all()}
    users = get_user_model().objects.prefetch_related("groups").order_by("username")
    rows = []
    for user in users:
        service = services.get(user.pk)
        rows.append(
            PersonRow(
                username=user.get_username(),
                full_name=user.get_full_name(),
                roles=tuple(sorted(g.name for g in user.groups.all())),
                kind="service" if service else "person",
                last_login=service.last_used_at if service else user.last_login,
                is_active=user.is_active and (service.is_active if service else True),
                locked_until=locked.get(user.get_username()),
            )
        )
    return rows


def _events(actions: Iterable[str], filters: Filters) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(action__in=tuple(actions)).order_by("-seq")
    if filters.date_from:
        events = events.filter(occurred_at__date__gte=filters.date_from)
    if filters.date_to:
        events = events.filter(occurred_at__date__lte=filters.date_to)
    if filters.username:
        events = events.filter(actor_label=filters.username)
    return events


def case_views(filters: Filters) -> QuerySet[AuditEvent]:
    """Every opening of a case page (``payload.break_glass`` marks break-glass openings)."""
    return _events(CASE_VIEW_ACTIONS, filters)


def denied_attempts(filters: Filters) -> QuerySet[AuditEvent]:
    return _events(DENIED_ACTIONS, filters)


def login_lockouts(filters: Filters) -> QuerySet[AuditEvent]:
    """Failed logins, lock-outs, logins refused while locked, and unlocks."""
    return _events(LOGIN_ACTIONS, filters)


def signing_attempts(filters: Filters) -> QuerySet[Any]:
    """Failed signatures, signing locks and unlocks (``governance.SigningAttempt``)."""
    attempt = apps.get_model("governance", "SigningAttempt")
    attempts = attempt.objects.filter(outcome__in=SIGNING_OUTCOMES).select_related("user")
    if filters.date_from:
        attempts = attempts.filter(at__date__gte=filters.date_from)
    if filters.date_to:
        attempts = attempts.filter(at__date__lte=filters.date_to)
    if filters.username:
        attempts = attempts.filter(user__username=filters.username)
    return attempts.order_by("-at", "-pk")


def break_glass_grants(filters: Filters, *, pending_only: bool) -> QuerySet[BreakGlassGrant]:
    grants = BreakGlassGrant.objects.select_related("user", "reviewed_by")
    if pending_only:
        grants = grants.filter(reviewed_at__isnull=True)
    if filters.date_from:
        grants = grants.filter(granted_at__date__gte=filters.date_from)
    if filters.date_to:
        grants = grants.filter(granted_at__date__lte=filters.date_to)
    if filters.username:
        grants = grants.filter(user__username=filters.username)
    return grants.order_by("granted_at", "pk") if pending_only else grants.order_by("-granted_at")


# --- CSV export -----------------------------------------------------------------------------


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def _person_rows(filters: Filters) -> Iterator[list[Any]]:
    for row in people():
        if filters.username and row.username != filters.username:
            continue
        yield [
            row.username, row.full_name, " ".join(row.roles), row.kind, _time(row.last_login),
            "active" if row.is_active else "inactive", _time(row.locked_until),
        ]  # fmt: skip


def _case_view_rows(filters: Filters) -> Iterator[list[Any]]:
    for e in case_views(filters).iterator(chunk_size=2000):
        yield [
            _time(e.occurred_at), e.actor_label, e.actor_role, e.object_id,
            e.payload.get("model", ""), e.payload.get("site", ""),
            "yes" if e.payload.get("break_glass") else "no", e.seq,
        ]  # fmt: skip


def _denied_rows(filters: Filters) -> Iterator[list[Any]]:
    for e in denied_attempts(filters).iterator(chunk_size=2000):
        p = e.payload
        yield [
            _time(e.occurred_at), e.actor_label, e.actor_role, p.get("method", ""),
            p.get("path", ""), " ".join(p.get("missing_permissions", ())), p.get("detail", ""),
            e.seq,
        ]  # fmt: skip


def _signing_rows(filters: Filters) -> Iterator[list[Any]]:
    for a in signing_attempts(filters).iterator(chunk_size=2000):
        yield [_time(a.at), a.user.get_username(), a.outcome, a.release_id or "", a.detail]


def _login_rows(filters: Filters) -> Iterator[list[Any]]:
    for e in login_lockouts(filters).iterator(chunk_size=2000):
        yield [_time(e.occurred_at), e.actor_label, e.action, e.summary, e.seq]


def _grant_rows(filters: Filters) -> Iterator[list[Any]]:
    for g in break_glass_grants(filters, pending_only=False).iterator(chunk_size=2000):
        yield [
            g.pk, _time(g.granted_at), g.user.get_username(), g.case_id, g.reason,
            _time(g.expires_at), g.reviewed_by.get_username() if g.reviewed_by else "",
            _time(g.reviewed_at), g.review_note,
        ]  # fmt: skip


@dataclass(frozen=True)
class Section:
    title: str
    header: tuple[str, ...]
    rows: Any  # Callable[[Filters], Iterator[list[Any]]]


SECTIONS: dict[str, Section] = {
    "people": Section(
        "People and roles",
        ("username", "name", "roles", "kind", "last_login_utc", "status", "locked_until_utc"),
        _person_rows,
    ),
    "case_views": Section(
        "Case views",
        ("time_utc", "user", "roles", "case_id", "model", "site", "break_glass", "audit_seq"),
        _case_view_rows,
    ),
    "denied": Section(
        "Denied attempts",
        (
            "time_utc",
            "user",
            "roles",
            "method",
            "path",
            "missing_permissions",
            "detail",
            "audit_seq",
        ),
        _denied_rows,
    ),  # fmt: skip
    "signing": Section(
        "Failed signatures and signing locks",
        ("time_utc", "user", "outcome", "release_id", "detail"),
        _signing_rows,
    ),
    "logins": Section(
        "Failed logins and lock-outs",
        ("time_utc", "username", "action", "summary", "audit_seq"),
        _login_rows,
    ),
    "break_glass": Section(
        "Break-glass grants",
        (
            "grant_id",
            "granted_at_utc",
            "user",
            "case_id",
            "reason",
            "expires_at_utc",
            "reviewed_by",
            "reviewed_at_utc",
            "review_note",
        ),
        _grant_rows,
    ),  # fmt: skip
}


def _cell(value: Any) -> str:
    # A cell a spreadsheet would read as a formula is prefixed with a quote (CSV injection).
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(section: str, filters: Filters) -> Iterator[str]:
    """The section as CSV lines, header first, streamed row by row."""
    spec = SECTIONS[section]
    writer = csv.writer(_Echo())
    yield writer.writerow(spec.header)
    for row in spec.rows(filters):
        yield writer.writerow([_cell(v) for v in row])


@transaction.atomic
def access_review_export(*, actor: Any, section: str, filters: Filters) -> Iterator[str]:
    """Record the export (who, which section, which filters), then hand back its lines."""
    require_perms(actor, REVIEW_ACCESS)
    if section not in SECTIONS:
        raise ValidationError(
            {"section": f"Unknown section {section!r}; use one of {', '.join(SECTIONS)}."}
        )
    record(
        actor=actor,
        action="access_review.export",
        object_type="accounts.access_review",
        object_id=section,
        summary=f"Access review exported: {SECTIONS[section].title} (CSV)",
        payload={"section": section, "format": "csv", "filters": filters.as_payload()},
    )
    return csv_lines(section, filters)
