"""The audit trail's storage: append-only events and the chain head that serialises appends."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from governance.audit import chain


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("audit events are append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("audit events are append-only")

    def for_object(self, object_type: str, object_id: str | int) -> AuditEventQuerySet:
        return self.filter(object_type=object_type, object_id=str(object_id))


class AuditEvent(models.Model):
    """One action, by whom, on what; linked to the previous event by ``prev_hash``.

    Rows are never updated or deleted: database triggers (see the migrations) refuse it, and
    ``seq`` and ``prev_hash`` are unique, so two appends can never claim the same predecessor.
    The payload carries no patient identifiers (``record()`` refuses known identifier keys).
    """

    seq = models.PositiveBigIntegerField(unique=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    actor_label = models.CharField(max_length=150, help_text="username at the time, or 'system'")
    actor_role = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=80, blank=True)
    object_id = models.CharField(max_length=80, blank=True)
    summary = models.CharField(max_length=300)
    payload = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, unique=True)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        indexes = [
            # The audit trail page and the per-record "history" panel filter by object.
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
        ]
        permissions = [
            ("export_auditevent", "Can export the audit trail"),
            ("verify_auditevent", "Can verify the audit chain"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_label}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError("audit events are append-only")

    def content(self) -> dict[str, Any]:
        """The hashed content of this event, exactly as ``chain.event_hash`` expects it."""
        return {
            "seq": self.seq,
            "occurred_at": chain.canonical_time(self.occurred_at),
            "actor": self.actor_label,
            "actor_role": self.actor_role,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "summary": self.summary,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
        }


class ChainHead(models.Model):
    """The single row naming the newest event. Appends lock it, so the chain never forks;
    verification compares against it, so deleting the newest events is caught."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=chain.GENESIS_HASH)

    def __str__(self) -> str:
        return f"chain head #{self.seq}"


class ChainVerification(models.Model):
    """One run of the chain verification, kept so pages show the latest verdict without
    re-reading the whole trail (which grows without bound)."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Scheduled"
        PAGE = "page", "Requested on the audit trail page"

    verified_at = models.DateTimeField()
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ok = models.BooleanField()
    event_count = models.PositiveBigIntegerField(help_text="events verified before any break")
    broken_seq = models.PositiveBigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    head_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-verified_at"]
        get_latest_by = "verified_at"

    def __str__(self) -> str:
        return f"{'OK' if self.ok else 'BROKEN'} at {self.verified_at:%Y-%m-%d %H:%M} UTC"
