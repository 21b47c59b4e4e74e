"""Electronic signatures in the manner of 21 CFR Part 11.

A signer re-enters their password for every signature, and their user name too on the first
signing of a session (and after an idle logout ends the session); the API, which has no
session, always asks for both. A signature records the printed name, the time, its meaning and
the sha256 of the release's canonical content. Each failed attempt is recorded and audited;
``MAX_FAILURES`` within ``FAILURE_WINDOW`` lock the signer out of signing and alert
compliance, until a compliance officer unlocks them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.permissions import require_perms
from governance import releases
from governance.audit.services import record
from governance.findings import Finding
from governance.models import (
    Release,
    ReleaseKind,
    ReleaseStatus,
    Signature,
    SignatureMeaning,
    SigningAttempt,
)

MAX_FAILURES = 3
FAILURE_WINDOW = timedelta(minutes=30)
#: The session key that says this session has signed once with every component.
SESSION_KEY = "vigil_signing_session"


def printed_name(user: Any) -> str:
    return (user.get_full_name() or user.get_username()).strip()


def is_locked(user: Any) -> bool:
    last = (
        SigningAttempt.objects.filter(user=user, outcome__in=("locked", "unlocked"))
        .order_by("-at", "-pk")
        .first()
    )
    return last is not None and last.outcome == "locked"


def _recent_failures(user: Any) -> int:
    since = timezone.now() - FAILURE_WINDOW
    unlocked = (
        SigningAttempt.objects.filter(user=user, outcome__in=("unlocked", "signed"))
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    if unlocked is not None and unlocked > since:
        since = unlocked
    return SigningAttempt.objects.filter(user=user, outcome="failed", at__gt=since).count()


def _fail(user: Any, release: Release | None, detail: str) -> None:
    """Record a failed attempt (committed even though the signing is refused) and lock
    signing after too many."""
    SigningAttempt.objects.create(user=user, release=release, outcome="failed", detail=detail)
    record(
        actor=user,
        action="signature.failed",
        target=release,
        summary=f"Failed signing attempt by {user.get_username()}: {detail}",
        payload={"release": release.pk if release else None, "detail": detail},
    )
    if _recent_failures(user) >= MAX_FAILURES and not is_locked(user):
        SigningAttempt.objects.create(
            user=user, release=release, outcome="locked",
            detail=f"{MAX_FAILURES} failed attempts within {FAILURE_WINDOW}",
        )  # fmt: skip
        record(
            actor=user,
            action="signature.locked",
            target=release,
            summary=f"Signing locked for {user.get_username()} after {MAX_FAILURES} failures",
            payload={"user": user.get_username(), "failures": MAX_FAILURES},
        )
        _announce_locks()


def locked_findings() -> list[Finding]:
    """One finding per user whose signing is locked now (for the model of the release the
    lock happened on)."""
    last: dict[int, SigningAttempt] = {}
    for attempt in (
        SigningAttempt.objects.filter(outcome__in=("locked", "unlocked"))
        .order_by("at", "pk")
        .select_related("release", "user")
    ):
        last[attempt.user_id] = attempt
    return [
        Finding(
            kind="signing_locked",
            model_id=a.release.model_id,
            key=f"user:{a.user_id}",
            summary=f"Signing locked for {a.user.get_username()} after {MAX_FAILURES} failed "
            f"attempts on {a.release.number}",
            details={"user": a.user.get_username(), "release": a.release_id},
        )
        for a in last.values()
        if a.outcome == "locked" and a.release is not None
    ]


def _announce_locks() -> None:
    """Tell incidents which users are locked now: new locks raise a compliance alert, lifted
    ones resolve theirs."""
    from governance import signals

    signals.checked.send(sender=Release, kinds=("signing_locked",), findings=locked_findings())


def check_credentials(
    *, actor: Any, password: str, username: str = "", require_username: bool = False,
    release: Release | None = None,
) -> None:  # fmt: skip
    """Re-authentication for a signature. Runs outside the signing transaction so that a
    failure stays on record when the signing is refused."""
    if actor is None or not actor.is_authenticated:
        raise PermissionDenied("Sign in to sign.")
    if is_locked(actor):
        raise PermissionDenied(
            "Signing is locked for your account after repeated failed attempts; "
            "a compliance officer must unlock it."
        )
    if require_username and not username:
        raise ValidationError({"username": "Enter your user name: the first signature of a "
                                           "session needs every component."})  # fmt: skip
    if not password:
        raise ValidationError({"password": "Re-enter your password to sign."})
    if username and username != actor.get_username():
        _fail(actor, release, "user name does not match the signed-in user")
        raise ValidationError({"username": "The user name is not yours: nothing was signed."})
    if authenticate(username=actor.get_username(), password=password) is None:
        _fail(actor, release, "wrong password")
        left = MAX_FAILURES - _recent_failures(actor)
        hint = f" {left} attempt(s) left before signing locks." if left > 0 else ""
        if is_locked(actor):
            hint = " Signing is now locked; compliance has been alerted."
        raise ValidationError({"password": "The password does not match: nothing was signed."
                                           + hint})  # fmt: skip


def sign(*, actor: Any, release: Release, meaning: str, role: str) -> Signature:
    """Append one signature. Private to the services: each public entry point runs
    ``check_credentials`` first, outside its transaction, so a failure stays on record."""
    digest = releases.content_hash(release)
    if release.content_sha256 and digest != release.content_sha256:
        raise ValidationError(
            {"release": "The release's content is not what was submitted: it was changed "
                        "outside Vigil's workflow. Nothing was signed; tell compliance."}
        )  # fmt: skip
    signature = Signature(
        release=release, signer=actor, printed_name=printed_name(actor), role=role,
        meaning=meaning, content_sha256=digest,
    )  # fmt: skip
    signature._history_user = actor  # type: ignore[attr-defined]
    signature.save()
    SigningAttempt.objects.create(user=actor, release=release, outcome="signed", detail=meaning)
    record(
        actor=actor,
        action="signature.sign",
        target=release,
        summary=f"{signature.printed_name} signed {release.number} ({meaning}, as {role})",
        payload={"release": release.pk, "meaning": meaning, "role": role,
                 "printed_name": signature.printed_name,
                 "signed_at": signature.signed_at.isoformat(), "content_sha256": digest},
    )  # fmt: skip
    return signature


def role_to_fill(release: Release, user: Any) -> tuple[str, str]:
    """The required (role, meaning) this user's signature fills, or why it cannot."""
    if release.author_id == user.pk:
        raise PermissionDenied("The author cannot sign their own release (separation of duties).")
    valid = releases.valid_signatures(release)
    if any(s.signer_id == user.pk for s in valid if s.meaning != SignatureMeaning.AUTHORSHIP):
        raise ValidationError({"release": "You have already signed this release."})
    held = set(user.groups.values_list("name", flat=True))
    missing = releases.missing_signers(release)
    for role, meaning in missing:
        if role in held:
            return role, meaning
    needed = ", ".join(f"{r.replace('_', ' ')} ({m})" for r, m in missing) or "none"
    raise PermissionDenied(f"Your roles fill none of the signatures still needed: {needed}.")


def release_sign(
    *, actor: Any, release: Release, password: str, username: str = "",
    require_username: bool = False,
) -> Signature:  # fmt: skip
    """A required signer signs. The last required signature approves the release; a
    rollback approved this way deploys at once (the fast path)."""
    require_perms(actor, "governance.sign_release")
    check_credentials(actor=actor, password=password, username=username,
                      require_username=require_username, release=release)  # fmt: skip
    with transaction.atomic():
        release = releases._locked(release)
        if release.status == ReleaseStatus.SUBMITTED:
            releases._move(
                release, ReleaseStatus.IN_REVIEW, actor=actor, stamp="review_started_at",
                reason="review started by signing",
            )  # fmt: skip
        if release.status != ReleaseStatus.IN_REVIEW:
            raise ValidationError(
                {"status": f"A {release.get_status_display().lower()} release cannot be signed."}
            )
        role, meaning = role_to_fill(release, actor)
        signature = sign(actor=actor, release=release, meaning=meaning, role=role)
        approved = releases.approve_if_complete(release, actor=actor)
        if approved and release.kind == ReleaseKind.ROLLBACK:
            from governance.deploy import release_deploy

            release_deploy(actor=actor, release=release)
    return signature


@transaction.atomic
def signature_void(*, actor: Any, signature: Signature, reason: str) -> Signature:
    """Compliance voids a signature (a compromised account, a signature given in error)."""
    require_perms(actor, "governance.unlock_signing")
    signature = Signature.objects.select_for_update().get(pk=signature.pk)
    if signature.voided_at is not None:
        raise ValidationError({"signature": "This signature is already void."})
    if not reason.strip():
        raise ValidationError({"reason": "Say why the signature is voided."})
    signature.voided_at, signature.void_reason = timezone.now(), reason.strip()[:300]
    signature._history_user = actor  # type: ignore[attr-defined]
    signature.save(update_fields=["voided_at", "void_reason"])
    record(
        actor=actor,
        action="signature.void",
        target=signature.release,
        summary=f"Signature of {signature.printed_name} on {signature.release.number} voided",
        payload={"release": signature.release_id, "signature": signature.pk, "reason": reason},
    )
    return signature


@transaction.atomic
def signing_unlock(*, actor: Any, user: Any, reason: str) -> None:
    require_perms(actor, "governance.unlock_signing")
    if not is_locked(user):
        raise ValidationError({"user": f"Signing is not locked for {user.get_username()}."})
    if not reason.strip():
        raise ValidationError({"reason": "Say why signing is unlocked (e.g. identity checked)."})
    SigningAttempt.objects.create(user=user, outcome="unlocked", detail=reason.strip()[:300])
    _announce_locks()
    record(
        actor=actor,
        action="signature.unlocked",
        target=None,
        summary=f"Signing unlocked for {user.get_username()}",
        payload={"user": user.get_username(), "reason": reason.strip()},
    )
