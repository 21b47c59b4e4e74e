"""The gate's records: deferral policies, prediction events, outcomes, overrides, review cases.

Prediction events are immutable once stored (the record of what was decided, with which version
under which policy); outcomes and overrides arrive later and join by event. Patient identity is
never stored: the client's case key is kept only as a keyed hash (HMAC-SHA256).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from governance.audit.governed import GovernedManager
from monitoring import deferral


class DeferralPolicy(models.Model):
    """One version of a model version's deferral rules. Editing makes a new row with the next
    ``number``; the highest number is in force, and each event names the one it was judged by.

    ``population_exclusions`` and ``safety_rules`` are lists of ``{"code", "text", "condition"}``
    in the declarative language of ``monitoring.rules`` (never code).
    """

    version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.PROTECT, related_name="deferral_policies"
    )
    number = models.PositiveIntegerField()
    min_confidence = models.FloatField(null=True, blank=True)
    threshold_margin = models.FloatField(null=True, blank=True)
    population_exclusions = models.JSONField(default=list, blank=True)
    safety_rules = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=300)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["version", "-number"]
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["version", "number"], name="monitoring_policy_number"),
        ]

    def __str__(self) -> str:
        return f"{self.version} deferral policy v{self.number}"

    def as_policy(self, thresholds: dict[str, float]) -> deferral.Policy:
        def named(rows: list[dict[str, Any]]) -> tuple[deferral.NamedRule, ...]:
            return tuple(deferral.NamedRule(r["code"], r["text"], r["condition"]) for r in rows)

        return deferral.Policy(
            number=self.number,
            min_confidence=self.min_confidence,
            threshold_margin=self.threshold_margin,
            thresholds=thresholds,
            population_exclusions=named(self.population_exclusions),
            safety_rules=named(self.safety_rules),
        )


class Action(models.TextChoices):
    ACT = "act", "Act"
    DEFER = "defer", "Defer to a human"
    SHADOW = "shadow", "Shadow (logged only)"


class PredictionEventQuerySet(models.QuerySet["PredictionEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("prediction events are immutable")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise TypeError("prediction events are immutable")


class PredictionEvent(models.Model):
    """One prediction as the gate judged it. Never changed after it is stored."""

    event_id = models.UUIDField(unique=True)
    model = models.ForeignKey("registry.ClinicalModel", on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey("registry.Site", on_delete=models.PROTECT, related_name="+")
    deployment = models.ForeignKey(
        "registry.Deployment", on_delete=models.PROTECT, related_name="+"
    )
    mode = models.CharField(max_length=10)  # the deployment's: live | shadow
    occurred_at = models.DateTimeField(help_text="when the model predicted (client's clock)")
    received_at = models.DateTimeField(default=timezone.now)
    case_key_hash = models.CharField(max_length=64, db_index=True)
    features = models.JSONField()
    score = models.FloatField()
    confidence = models.FloatField(null=True, blank=True)
    top_factors = models.JSONField(default=list, blank=True)
    cohort = models.JSONField(default=dict, blank=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    reasons = models.JSONField(default=list, blank=True)
    problems = models.JSONField(default=list, blank=True)
    policy = models.ForeignKey(
        DeferralPolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    policy_number = models.PositiveIntegerField(help_text="0: built-in rules, no policy yet")
    body_hash = models.CharField(max_length=64, help_text="sha256 of the request, for replays")
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    objects = PredictionEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            # Daily profiles and windows: one model's events at a site over time.
            models.Index(fields=["model", "site", "occurred_at"], name="monitoring_event_time_idx"),
            # Profiles per version and day.
            models.Index(fields=["version", "occurred_at"], name="monitoring_event_version_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError("prediction events are immutable")
        super().save(*args, **kwargs)


class Outcome(models.Model):
    """The observed label of an event. Rows are only added: a correction is a new row that
    names the one it corrects, so the earlier value stays on record."""

    event = models.ForeignKey(PredictionEvent, on_delete=models.PROTECT, related_name="outcomes")
    label = models.FloatField()
    observed_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    corrects = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="corrected_by"
    )
    note = models.CharField(max_length=300, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["event", "received_at"]
        constraints = [
            # Only the first outcome of an event may stand without correcting another.
            models.UniqueConstraint(
                fields=["event"],
                condition=models.Q(corrects__isnull=True),
                name="monitoring_one_original_outcome",
            ),
        ]

    def __str__(self) -> str:
        return f"outcome {self.label} for {self.event_id}"


class OverrideReason(models.TextChoices):
    CLINICAL_JUDGEMENT = "clinical_judgement", "Clinical judgement differs"
    ALREADY_TREATED = "already_treated", "Already being treated / known"
    CONTRAINDICATION = "contraindication", "Contraindication"
    DATA_ERROR = "data_error", "Input data wrong or stale"
    PATIENT_PREFERENCE = "patient_preference", "Patient preference"
    NOT_APPLICABLE = "not_applicable", "Model not applicable to this patient"
    ALERT_FATIGUE = "alert_fatigue", "Alert not actionable"
    OTHER = "other", "Other (see note)"


class Override(models.Model):
    """A clinician disagreed with a model that acted, as reported by the model service."""

    event = models.ForeignKey(PredictionEvent, on_delete=models.PROTECT, related_name="overrides")
    clinician_role = models.CharField(max_length=60)
    clinician_ref = models.CharField(
        max_length=80, blank=True, help_text="only if the hospital chooses to identify clinicians"
    )
    reason_code = models.CharField(max_length=30, choices=OverrideReason.choices)
    final_action = models.CharField(max_length=200)
    note = models.CharField(max_length=500, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["event", "occurred_at"]

    def __str__(self) -> str:
        return f"override of {self.event_id}: {self.reason_code}"


class ReviewStatus(models.TextChoices):
    OPEN = "open", "Waiting for review"
    DECIDED = "decided", "Decided"


class ReviewDecision(models.TextChoices):
    AGREE = "agree", "Agree with the model"
    OVERRIDE = "override", "Override the model"


class ReviewCase(models.Model):
    """A deferred case waiting for a clinician. ``urgency`` orders the queue (higher first)."""

    event = models.OneToOneField(PredictionEvent, on_delete=models.PROTECT, related_name="review")
    model = models.ForeignKey("registry.ClinicalModel", on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey("registry.Site", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.OPEN
    )
    urgency = models.FloatField(help_text="the model's score: riskier cases first")
    opened_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(max_length=10, choices=ReviewDecision.choices, blank=True)
    reason_code = models.CharField(max_length=30, choices=OverrideReason.choices, blank=True)
    note = models.CharField(max_length=1000, blank=True)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-urgency", "opened_at"]
        base_manager_name = "objects"
        permissions = [
            ("decide_reviewcase", "Can decide a deferred case"),
            ("review_all_sites", "Can see deferred cases of every site, not only one's own"),
        ]
        indexes = [
            # The queue: open cases of a site, most urgent and oldest first.
            models.Index(
                fields=["site", "status", "-urgency", "opened_at"], name="monitoring_queue_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"review of {self.event_id} ({self.status})"

    @property
    def time_to_action(self) -> Any:
        return None if self.decided_at is None else self.decided_at - self.opened_at


# The monitoring engine's records live in their own module; importing them here registers them.
from monitoring.profile_models import (  # noqa: E402,F401
    BAND_RANK,
    Band,
    DailyProfile,
    Layer,
    MetricResult,
    MonitorPolicy,
    ReferenceProfile,
    StaleDay,
)
