"""Governance records: who is responsible (RACI), how a change reaches patients (releases,
their evidence and Part 11 signatures), when to recalibrate or retrain, and the regular review.

Every record here is governed: history on every change and writes only through the services
(``governance.raci``, ``governance.releases``, ``governance.signing``, ``governance.recalibration``,
``governance.reviews``), each appending its audit event.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from governance.audit.governed import GovernedManager

# --- RACI -----------------------------------------------------------------------------------


class RaciMatrix(models.Model):
    """Who is Responsible, Accountable, Consulted and Informed for each governed activity.

    ``model`` empty is the health system's default, which every model inherits row by row.
    ``entries`` maps an activity (``governance.raci.ACTIVITIES``) to
    ``{"A": party, "R": [party, ...], "C": [...], "I": [...]}`` where a party is
    ``"role:<role>"`` or ``"user:<username>"``. ``governance.raci.matrix_errors`` is the one
    validator.
    """

    model = models.OneToOneField(
        "registry.ClinicalModel",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="raci_matrix",
    )
    entries = models.JSONField(default=dict)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(
                fields=["model"],
                condition=Q(model__isnull=True),
                name="governance_one_default_raci",
            ),
        ]

    def __str__(self) -> str:
        return f"RACI for {self.model or 'the health system'}"


# --- Releases -------------------------------------------------------------------------------


class ReleaseKind(models.TextChoices):
    NEW_MODEL = "new_model", "New model"
    RETRAIN = "retrain", "Retrain"
    RECALIBRATION = "recalibration", "Recalibration"
    THRESHOLD = "threshold", "Threshold change"
    DEFERRAL_POLICY = "deferral_policy", "Deferral-policy change"
    ROLLBACK = "rollback", "Rollback"


class ReleaseStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    DEPLOYED = "deployed", "Deployed"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


class Release(models.Model):
    """One proposed change for one model, with its evidence, until it reaches patients.

    The configuration it deploys is ``version`` at ``sites`` with ``score_mapping`` (empty: the
    model's scores as sent; else ``{"method": "intercept"|"logistic", "intercept", "slope"}``
    applied on the logit scale), ``thresholds`` (empty: the version's own) and
    ``deferral_policy_number`` (empty: the version's policy in force). A rollback carries in
    ``restores`` the deployment it brings back at each site: ``{site_code: deployment_id}``.
    ``content_sha256`` is the hash of ``governance.releases.canonical_content``; a signature is
    valid only while it matches.
    """

    model = models.ForeignKey(
        "registry.ClinicalModel", on_delete=models.PROTECT, related_name="releases"
    )
    kind = models.CharField(max_length=20, choices=ReleaseKind.choices)
    status = models.CharField(
        max_length=12, choices=ReleaseStatus.choices, default=ReleaseStatus.DRAFT
    )
    title = models.CharField(max_length=200)
    rationale = models.TextField()
    version = models.ForeignKey(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="releases",
    )
    sites = models.ManyToManyField("registry.Site", related_name="releases", blank=True)
    score_mapping = models.JSONField(default=dict, blank=True)
    thresholds = models.JSONField(null=True, blank=True)
    deferral_policy_number = models.PositiveIntegerField(null=True, blank=True)
    restores = models.JSONField(default=dict, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    #: where the change came from: {"incident": id, "recommendation": id}
    origin = models.JSONField(default=dict, blank=True)
    content_sha256 = models.CharField(max_length=64, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    review_started_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    deployed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="rejected or withdrawn")
    closed_reason = models.CharField(max_length=500, blank=True)
    #: deployments this release started (one per site), and how long deploying took
    deployments = models.ManyToManyField("registry.Deployment", related_name="releases", blank=True)
    deploy_seconds = models.FloatField(null=True, blank=True)

    objects = GovernedManager()
    history = HistoricalRecords(excluded_fields=["evidence"])

    class Meta:
        ordering = ["-created_at"]
        base_manager_name = "objects"
        permissions = [
            ("sign_release", "Can sign a release"),
            ("deploy_release", "Can deploy an approved release"),
            ("unlock_signing", "Can unlock signing and void signatures (compliance)"),
        ]

    def __str__(self) -> str:
        return f"R-{self.pk} {self.get_kind_display()} of {self.model.slug}"

    @property
    def number(self) -> str:
        return f"R-{self.pk}"


class EvidenceFile(models.Model):
    """A file attached to a release as evidence (validation report, validation set ...). Kept in
    the database with its sha256 so the evidence travels with every backup and export."""

    class Kind(models.TextChoices):
        VALIDATION_REPORT = "validation_report", "Validation report"
        VALIDATION_SET = "validation_set", "Validation set"
        SHADOW_RESULTS = "shadow_results", "Shadow results"
        OTHER = "other", "Other"

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="files")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    data = models.BinaryField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["release", "uploaded_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"


class SignatureMeaning(models.TextChoices):
    AUTHORSHIP = "authorship", "Authorship"
    REVIEW = "review", "Review"
    APPROVAL = "approval", "Approval"
    RESPONSIBILITY = "responsibility", "Responsibility"


class Signature(models.Model):
    """A 21 CFR Part 11 electronic signature: who (printed name), when, what it means, and the
    sha256 of exactly what was signed. Never edited; only voided, visibly, with the reason."""

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="signatures")
    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    printed_name = models.CharField(max_length=300)
    role = models.CharField(max_length=40, help_text="the role the signature fills")
    meaning = models.CharField(max_length=20, choices=SignatureMeaning.choices)
    signed_at = models.DateTimeField(default=timezone.now)
    content_sha256 = models.CharField(max_length=64)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=300, blank=True)

    objects = GovernedManager()
    history = HistoricalRecords()

    MUTABLE_FIELDS = frozenset({"voided_at", "void_reason"})

    class Meta:
        ordering = ["release", "signed_at"]
        base_manager_name = "objects"

    def __str__(self) -> str:
        when = f"{self.signed_at:%Y-%m-%d %H:%M:%S %Z}"
        return f"{self.printed_name} — {self.get_meaning_display()} — {when}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            fields = kwargs.get("update_fields")
            if fields is None or not set(fields) <= self.MUTABLE_FIELDS:
                raise TypeError("A signature is never edited; it can only be voided.")
        super().save(*args, **kwargs)

    @property
    def is_valid(self) -> bool:
        return self.voided_at is None and self.content_sha256 == self.release.content_sha256


class SigningAttempt(models.Model):
    """Every failed signing attempt, and the unlocks: repeated failures lock signing."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    release = models.ForeignKey(
        Release, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=20, help_text="failed | locked | unlocked | signed")
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["user", "at"], name="governance_attempt_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.outcome} at {self.at:%Y-%m-%d %H:%M}"


# --- Recalibration and retraining -----------------------------------------------------------


class UpdatePolicy(models.Model):
    """A model's written recalibration and retraining policy."""

    model = models.OneToOneField(
        "registry.ClinicalModel", on_delete=models.PROTECT, related_name="update_policy"
    )
    #: which of governance.recalibration.TRIGGERS apply, each with a note
    triggers = models.JSONField(default=dict)
    retraining_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    validation_requirements = models.TextField()
    approval_gates = models.TextField()
    permitted_data = models.TextField()
    leakage_controls = models.TextField()
    min_window_events = models.PositiveIntegerField(
        default=100, help_text="labelled cases a recommendation needs in its window"
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"update policy of {self.model.slug}"


class Recommendation(models.Model):
    """The update ladder's answer for one labelled window, with the statistics that chose it."""

    class Level(models.TextChoices):
        NO_CHANGE = "no_change", "No change"
        INTERCEPT = "intercept", "Recalibration-in-the-large (intercept)"
        LOGISTIC = "logistic", "Logistic recalibration (intercept and slope)"
        REFIT = "refit", "Refit (retrain)"
        INSUFFICIENT = "insufficient", "Too few labelled cases to say"

    model = models.ForeignKey(
        "registry.ClinicalModel", on_delete=models.PROTECT, related_name="recommendations"
    )
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey(
        "registry.Site", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    window_start = models.DateField()
    window_end = models.DateField()
    n = models.PositiveIntegerField()
    events = models.PositiveIntegerField()
    level = models.CharField(max_length=12, choices=Level.choices)
    statistics = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    release = models.ForeignKey(
        Release, null=True, blank=True, on_delete=models.PROTECT, related_name="recommendations"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return (
            f"{self.model.slug}: {self.get_level_display()} ({self.window_start}–{self.window_end})"
        )


# --- Review meetings ------------------------------------------------------------------------


class ReviewSchedule(models.Model):
    """How often a model's governance review meets, and when the next one is due."""

    model = models.OneToOneField(
        "registry.ClinicalModel", on_delete=models.PROTECT, related_name="review_schedule"
    )
    cadence_days = models.PositiveIntegerField()
    next_due = models.DateField()

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"{self.model.slug} review every {self.cadence_days} days"


class ReviewMeeting(models.Model):
    """One review meeting: the pack assembled before it, and its minutes after."""

    model = models.ForeignKey(
        "registry.ClinicalModel", on_delete=models.PROTECT, related_name="review_meetings"
    )
    scheduled_for = models.DateField()
    period_start = models.DateField(help_text="the pack covers from here (the last meeting)")
    pack = models.JSONField(default=dict, blank=True)
    pack_generated_at = models.DateTimeField(null=True, blank=True)
    held_at = models.DateTimeField(null=True, blank=True)
    attendees = models.TextField(blank=True)
    minutes = models.TextField(blank=True)
    decisions = models.JSONField(default=list, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = GovernedManager()
    history = HistoricalRecords(excluded_fields=["pack"])

    class Meta:
        ordering = ["-scheduled_for"]
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(
                fields=["model", "scheduled_for"],
                condition=Q(held_at__isnull=True),
                name="governance_one_planned_meeting_per_day",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.slug} review {self.scheduled_for}"


class ActionItem(models.Model):
    """An action a review meeting decided, with its owner and due date."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    meeting = models.ForeignKey(ReviewMeeting, on_delete=models.PROTECT, related_name="actions")
    model = models.ForeignKey("registry.ClinicalModel", on_delete=models.PROTECT, related_name="+")
    text = models.CharField(max_length=500)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    due = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_note = models.CharField(max_length=500, blank=True)
    overdue_flagged_at = models.DateTimeField(null=True, blank=True)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["due"]
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"{self.text} ({self.owner}, due {self.due})"


# --- Retention ------------------------------------------------------------------------------


class LegalHold(models.Model):
    """Keeps prediction events past their retention period: the purge skips every event of
    ``model`` at ``site`` while the hold is active (not released). An empty ``model`` holds
    every model; an empty ``site`` holds every site. Released holds stay on record."""

    model = models.ForeignKey(
        "registry.ClinicalModel", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    site = models.ForeignKey(
        "registry.Site", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=500)
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    placed_at = models.DateTimeField(default=timezone.now)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.CharField(max_length=500, blank=True)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-placed_at"]
        base_manager_name = "objects"
        permissions = [("manage_legal_hold", "Can place and release legal holds")]
        constraints = [
            models.CheckConstraint(
                condition=Q(released_at__isnull=True) | Q(released_by__isnull=False),
                name="governance_hold_release_named",
            ),
        ]

    def __str__(self) -> str:
        return f"legal hold on {self.scope}"

    @property
    def is_active(self) -> bool:
        return self.released_at is None

    @property
    def scope(self) -> str:
        model = self.model.name if self.model_id else "every model"
        site = self.site.code if self.site_id else "every site"
        return f"{model} at {site}"
