"""Alerts and incidents: what monitoring found worth a human's attention, and its handling.

An ``Alert`` is one fingerprint (model, slice, metric) that is, or was, worse than green with
confidence or persistence; recurring results add ``AlertOccurrence`` rows to the open alert
instead of new alerts. Alerts group into an ``Incident`` per model and site (or cohort slice),
worked through a lifecycle whose every change is a ``TimelineEntry`` and an audit event.
Alert and notification payloads are aggregates only: never a case key or a feature value.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from governance.audit.governed import GovernedManager


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    """One fingerprint's alert. ``band`` is the latest result's band, ``worst_band`` the worst
    seen while open; ``green_since`` is set when results returned to green (resolution is then
    suggested, never automatic for orange or red)."""

    model = models.ForeignKey("registry.ClinicalModel", on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey(
        "registry.Site", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    slice_key = models.CharField(max_length=200)
    metric = models.CharField(max_length=160)
    layer = models.CharField(max_length=20)
    fingerprint = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=10, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    band = models.CharField(max_length=12)
    worst_band = models.CharField(max_length=12)
    reason = models.CharField(max_length=20, help_text="confident | sustained | sequential")
    #: what changed, by how much, for whom, how sure, and what to do (aggregates only)
    payload = models.JSONField()
    routed_role = models.CharField(max_length=40)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    green_since = models.DateField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    incident = models.ForeignKey(
        "Incident", null=True, blank=True, on_delete=models.PROTECT, related_name="alerts"
    )
    is_drill = models.BooleanField(default=False)

    objects = GovernedManager()
    history = HistoricalRecords(excluded_fields=["payload"])

    class Meta:
        ordering = ["-last_seen_at"]
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=models.Q(status="open"),
                name="incidents_one_open_alert_per_fingerprint",
            ),
        ]
        permissions = [("suppress_alert", "Can suppress an alert fingerprint as noise")]

    def __str__(self) -> str:
        return f"{self.model_id} {self.slice_key} {self.metric}: {self.band}"


class AlertOccurrence(models.Model):
    """One evaluated window that kept an alert alive (append-only)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="occurrences")
    window_end = models.DateField()
    window_days = models.PositiveIntegerField()
    band = models.CharField(max_length=12)
    value = models.FloatField(null=True)
    low = models.FloatField(null=True)
    high = models.FloatField(null=True)
    n = models.PositiveIntegerField()
    confident = models.BooleanField()
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["alert", "window_end", "window_days"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "window_end", "window_days"], name="incidents_occurrence_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.alert_id} {self.window_end} {self.band}"


class Suppression(models.Model):
    """An owner validated a fingerprint as noise: no alert for it until ``expires_at``."""

    model = models.ForeignKey("registry.ClinicalModel", on_delete=models.PROTECT, related_name="+")
    slice_key = models.CharField(max_length=200)
    metric = models.CharField(max_length=160)
    fingerprint = models.CharField(max_length=64, db_index=True)
    reason = models.CharField(max_length=500)
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    lifted_at = models.DateTimeField(null=True, blank=True)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"suppress {self.fingerprint} until {self.expires_at:%Y-%m-%d %H:%M}"


class Severity(models.TextChoices):
    SEV1 = "SEV1", "SEV1 — patient harm likely, act now"
    SEV2 = "SEV2", "SEV2 — serious degradation"
    SEV3 = "SEV3", "SEV3 — degradation to fix this week"
    SEV4 = "SEV4", "SEV4 — watch"


class IncidentStatus(models.TextChoices):
    TRIGGERED = "triggered", "Triggered"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    INVESTIGATING = "investigating", "Investigating"
    MITIGATED = "mitigated", "Mitigated"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled (false positive)"
    MERGED = "merged", "Merged into another"


class Incident(models.Model):
    """Alerts of one model at one site (or cohort slice), worked to resolution.

    Each lifecycle state has its timestamp; ``impact`` is the patient-impact assessment,
    ``review`` the post-incident review (corrective actions with owners and due dates).
    """

    number = models.PositiveIntegerField(unique=True)
    model = models.ForeignKey("registry.ClinicalModel", on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey(
        "registry.Site", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    slice_key = models.CharField(max_length=200)
    title = models.CharField(max_length=300)
    severity = models.CharField(max_length=4, choices=Severity.choices)
    band = models.CharField(max_length=12)
    layer = models.CharField(max_length=20)
    status = models.CharField(
        max_length=14, choices=IncidentStatus.choices, default=IncidentStatus.TRIGGERED
    )
    routed_role = models.CharField(max_length=40)
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    scribe = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    clinical_lead = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    model_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_drill = models.BooleanField(default=False)
    triggered_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    investigating_at = models.DateTimeField(null=True, blank=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    merged_at = models.DateTimeField(null=True, blank=True)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged"
    )
    cancel_reason = models.CharField(max_length=500, blank=True)
    first_harmful_day = models.DateField(null=True, blank=True)
    ack_deadline = models.DateTimeField()
    escalation_level = models.PositiveSmallIntegerField(default=0)
    impact = models.JSONField(default=dict, blank=True)
    review = models.JSONField(default=dict, blank=True)
    remedy = models.CharField(max_length=300, blank=True)

    objects = GovernedManager()
    history = HistoricalRecords(excluded_fields=["impact", "review"])

    class Meta:
        ordering = ["-triggered_at"]
        base_manager_name = "objects"
        permissions = [
            ("work_incident", "Can acknowledge and work incidents"),
            ("close_incident", "Can resolve and close incidents"),
        ]

    def __str__(self) -> str:
        return f"INC-{self.number} {self.severity} {self.title}"


class TimelineEntry(models.Model):
    """The incident's append-only log; every entry is also an audit event."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="timeline")
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=40)
    text = models.CharField(max_length=1000)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["incident", "at", "pk"]

    def __str__(self) -> str:
        return f"INC {self.incident_id} {self.at:%Y-%m-%d %H:%M} {self.kind}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError("timeline entries are append-only")
        super().save(*args, **kwargs)


class Runbook(models.Model):
    """The steps for one alert type (a layer, optionally narrowed to a metric), each with the
    evidence it needs. Editable, with history; incidents check steps off with evidence."""

    layer = models.CharField(max_length=20)
    metric = models.CharField(max_length=60, blank=True, help_text="empty: the layer's default")
    title = models.CharField(max_length=200)
    steps = models.JSONField(help_text='[{"title": ..., "evidence": ...}, ...]')
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["layer", "metric"]
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["layer", "metric"], name="incidents_runbook_unique"),
        ]

    def __str__(self) -> str:
        return self.title


class RunbookCheck(models.Model):
    """A runbook step checked off on an incident, with its evidence (append-only)."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="checks")
    step = models.PositiveSmallIntegerField()
    step_title = models.CharField(max_length=300)
    evidence = models.TextField()
    checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["incident", "step"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "step"], name="incidents_check_once"),
        ]

    def __str__(self) -> str:
        return f"INC {self.incident_id} step {self.step}"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed, will retry"
    DEAD = "dead", "Failed for good (retries exhausted)"


class Notification(models.Model):
    """The outbox: every message to a person or a paging tool, delivered by Celery with
    retries. A failed delivery stays visible and is retried; nothing is dropped silently."""

    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    channel = models.CharField(max_length=10)  # email | webhook
    recipient = models.CharField(max_length=300)
    subject = models.CharField(max_length=300)
    body = models.JSONField()
    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    is_drill = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="incidents_outbox_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.recipient}: {self.status}"
