"""``record()``: the one function that appends to the audit trail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from governance.audit import chain
from governance.audit.models import AuditEvent, ChainHead, ChainVerification
from governance.audit.selectors import verify_stored_chain

# Keys that would carry direct patient identifiers. The audit trail holds aggregates, ids of
# Vigil's own records and pseudonymous keys only.
FORBIDDEN_PAYLOAD_KEYS = frozenset(
    {
        "mrn",
        "patient_id",
        "patient_name",
        "name_of_patient",
        "dob",
        "date_of_birth",
        "ssn",
        "address",
        "phone",
        "email_of_patient",
        "case_key",
        "raw_case_key",
    }
)


class IdentifierInPayload(ValueError):
    pass


def _check_payload(value: Any, path: str = "payload") -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).lower() in FORBIDDEN_PAYLOAD_KEYS:
                raise IdentifierInPayload(f"{path}.{key} looks like a patient identifier")
            _check_payload(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_payload(item, f"{path}[{index}]")


def actor_role_of(actor: AbstractBaseUser | AnonymousUser | None) -> str:
    if actor is None or not actor.is_authenticated:
        return ""
    names = sorted(actor.groups.values_list("name", flat=True))  # type: ignore[attr-defined]
    return ",".join(names)


def _locked_head() -> ChainHead:
    """Lock the head row: concurrent appends queue here, so each sees the true predecessor."""
    head = ChainHead.objects.select_for_update().filter(id=1).first()
    if head is None:  # a fresh (or flushed) database: the first writer creates it
        try:
            with transaction.atomic():
                ChainHead.objects.create(id=1)
        except IntegrityError:
            pass  # another writer created it first; its row is committed now
        head = ChainHead.objects.select_for_update().get(id=1)
    return head


@transaction.atomic
def record(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    summary: str,
    target: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    payload: Mapping[str, Any] | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction.

    ``actor`` is ``None`` for the system (beat tasks); ``actor_label`` overrides the name shown
    (e.g. the username tried in a failed login, where there is no user).
    """
    payload = dict(payload or {})
    _check_payload(payload)
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = object_id or str(target.pk)
    user = actor if actor is not None and actor.is_authenticated else None
    label = actor_label or (user.get_username() if user is not None else "system")

    head = _locked_head()
    event = AuditEvent(
        seq=head.seq + 1,
        occurred_at=timezone.now(),
        actor=user,
        actor_label=label[:150],
        actor_role=actor_role_of(user),
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        summary=summary[:300],
        payload=payload,
        prev_hash=head.hash,
    )
    # Normalise through JSON once so the hash covers exactly what the database will return.
    event.payload = chain.json_roundtrip(event.payload)
    event.hash = chain.event_hash(event.content())
    event.save(force_insert=True)
    head.seq, head.hash = event.seq, event.hash
    head.save(update_fields=["seq", "hash"])
    return event


@transaction.atomic
def chain_verify(*, actor: AbstractBaseUser | None, trigger: str) -> ChainVerification:
    """Verify the whole chain, keep the verdict, and record that it was checked.

    The verification event is appended after the walk, so it is covered by the next one.
    """
    if actor is not None and not actor.has_perm("audit.verify_auditevent"):  # type: ignore[attr-defined]
        raise PermissionDenied("Your role does not allow verifying the audit chain.")
    verdict = verify_stored_chain()
    verification = ChainVerification.objects.create(
        verified_at=timezone.now(),
        trigger=trigger,
        verified_by=actor,
        ok=verdict.ok,
        event_count=verdict.count,
        broken_seq=verdict.broken_seq,
        reason=verdict.reason[:300],
        head_hash=verdict.last_hash,
    )
    record(
        actor=actor,
        action="audit.verify",
        target=verification,
        summary=(
            f"Audit chain verified: {verdict.count} events intact"
            if verdict.ok
            else f"Audit chain BROKEN at event #{verdict.broken_seq}: {verdict.reason}"
        ),
        payload={"ok": verdict.ok, "count": verdict.count, "broken_seq": verdict.broken_seq},
    )
    return verification
