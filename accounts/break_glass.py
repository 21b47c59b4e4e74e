"""Break-glass access: in an emergency, a person who may view review cases opens one outside
their sites after stating why. The access lasts ``VIGIL_BREAK_GLASS_MINUTES`` (60 by default),
is flagged in the audit trail (``review.break_glass``) and waits in compliance's access review
until someone with ``accounts.review_access`` marks it reviewed with a note.

Deciding *whether* a case is outside someone's sites is monitoring's business
(``monitoring.review``, which calls ``break_glass_grant``); accounts sits below monitoring, so
a case is known here by its id only.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import BreakGlassGrant
from accounts.permissions import is_service_account, require_perms
from governance.audit.services import record

VIEW_CASES = "monitoring.view_reviewcase"
REVIEW_ACCESS = "accounts.review_access"
REASON_MIN_LENGTH = 20
REASON_MAX_LENGTH = 1000
NOTE_MAX_LENGTH = 1000
DEFAULT_MINUTES = 60
CASE_OBJECT_TYPE = "monitoring.reviewcase"


def grant_minutes() -> int:
    return int(getattr(settings, "VIGIL_BREAK_GLASS_MINUTES", DEFAULT_MINUTES))


def grant_duration() -> timedelta:
    return timedelta(minutes=grant_minutes())


def active_grant(*, user: Any, case_id: int) -> BreakGlassGrant | None:
    """``user``'s live grant for the case, or ``None`` (expired grants open nothing)."""
    if user is None or not user.is_authenticated:
        return None
    return (
        BreakGlassGrant.objects.filter(user=user, case_id=case_id, expires_at__gt=timezone.now())
        .order_by("-expires_at")
        .first()
    )


def grants_awaiting_review() -> QuerySet[BreakGlassGrant]:
    return BreakGlassGrant.objects.filter(reviewed_at__isnull=True).select_related("user")


def _reason_errors(reason: str) -> dict[str, str]:
    text = reason.strip()
    if len(text) < REASON_MIN_LENGTH:
        return {
            "reason": f"State the emergency in at least {REASON_MIN_LENGTH} characters "
            f"(you wrote {len(text)})."
        }
    if len(text) > REASON_MAX_LENGTH:
        return {"reason": f"Keep the reason within {REASON_MAX_LENGTH:,} characters."}
    return {}


@transaction.atomic
def break_glass_grant(
    *, actor: Any, case_id: int, reason: str, model_slug: str, site_code: str
) -> BreakGlassGrant:
    """Let ``actor`` into one case for ``grant_duration()``. The caller has established that
    the case is outside ``actor``'s sites.

    The audit payload carries the reason's length and sha256, not its text: a reason typed in
    a hurry may name the patient, so the text stays in the grant (shown to compliance only)
    while the trail still proves it was not edited afterwards.
    """
    if actor is None or not actor.is_authenticated or is_service_account(actor):
        raise PermissionDenied("Break-glass access is for a signed-in person.")
    require_perms(actor, VIEW_CASES)
    errors = _reason_errors(reason)
    if errors:
        raise ValidationError(errors)
    text = reason.strip()
    now = timezone.now()
    grant = BreakGlassGrant.objects.create(
        user=actor, case_id=case_id, reason=text, granted_at=now, expires_at=now + grant_duration()
    )
    record(
        actor=actor,
        action="review.break_glass",
        object_type=CASE_OBJECT_TYPE,
        object_id=case_id,
        summary=(
            f"BREAK-GLASS: {actor.get_username()} opened review case #{case_id} outside their "
            f"sites ({model_slug} at {site_code}) until {grant.expires_at:%H:%M} UTC"
        ),
        payload={
            "flagged": True,
            "grant": grant.pk,
            "model": model_slug,
            "site": site_code,
            "minutes": grant_minutes(),
            "reason_length": len(text),
            "reason_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        },
    )
    return grant


@transaction.atomic
def break_glass_review(*, actor: Any, grant: BreakGlassGrant, note: str) -> BreakGlassGrant:
    """Compliance's review of one grant: the note says what was checked (e.g. "confirmed
    with the ED charge nurse: sepsis call at 02:10"). Once per grant; never one's own."""
    require_perms(actor, REVIEW_ACCESS)
    grant = BreakGlassGrant.objects.select_for_update().get(pk=grant.pk)
    if grant.reviewed_at is not None:
        when = f"{grant.reviewed_at:%Y-%m-%d %H:%M} UTC"
        raise ValidationError({"note": f"Already reviewed by {grant.reviewed_by} at {when}."})
    if actor is not None and grant.user_id == actor.pk:
        raise PermissionDenied("You cannot review your own break-glass access.")
    text = note.strip()
    if not text:
        raise ValidationError({"note": "Say what you checked before marking this reviewed."})
    if len(text) > NOTE_MAX_LENGTH:
        raise ValidationError({"note": f"Keep the note within {NOTE_MAX_LENGTH:,} characters."})
    grant.reviewed_by, grant.reviewed_at, grant.review_note = actor, timezone.now(), text
    grant._change_reason = "break-glass reviewed"  # type: ignore[attr-defined]
    grant.save(update_fields=["reviewed_by", "reviewed_at", "review_note"])
    record(
        actor=actor,
        action="review.break_glass_reviewed",
        target=grant,
        summary=(f"Break-glass access of {grant.user} to review case #{grant.case_id} reviewed"),
        payload={"case": grant.case_id, "grant": grant.pk, "note_length": len(text)},
    )
    return grant
