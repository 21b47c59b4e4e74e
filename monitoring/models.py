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
    score = models.FloatField(help_text="the score the gate judged (after any recalibration)")
    raw_score = models.FloatField(
        null=True, blank=True, help_text="the model's score as sent, when a recalibration applied"
    )
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


# --- The monitoring engine: reference and daily profiles, policies, metric results ------------
# Profiles hold aggregates only (histogram counts and sums on the reference's bins, rates, score
# histograms split by label), never a patient's row: they add when a window merges them, and
# rebuilding a day from the same events gives the same content (``content_hash``).


class ReferenceProfile(models.Model):
    """A version's reference data set, reduced to its bins and baseline metrics.

    ``bins`` holds, per feature, what every later profile of the version is binned on:
    ``{"name": {"dtype": "numeric", "edges": [...], "min": .., "max": ..}}`` or
    ``{"dtype": "categorical", "categories": [...]}``. ``reference`` is the reference data's own
    profile in the daily-profile layout (``monitoring.profiles``), overall and per cohort value,
    and ``baseline`` the metrics computed on it. Uploading again makes a new ``number``; the
    highest is in force.
    """

    version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.PROTECT, related_name="reference_profiles"
    )
    number = models.PositiveIntegerField()
    file_name = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64)
    row_count = models.PositiveIntegerField()
    labelled_count = models.PositiveIntegerField()
    bins = models.JSONField()
    reference = models.JSONField()
    baseline = models.JSONField()
    note = models.CharField(max_length=300, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = GovernedManager()
    history = HistoricalRecords(excluded_fields=["bins", "reference", "baseline"])

    class Meta:
        ordering = ["version", "-number"]
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["version", "number"], name="monitoring_refprofile_no"),
        ]

    def __str__(self) -> str:
        return f"{self.version} reference profile #{self.number}"


class DailyProfile(models.Model):
    """One (version, day, slice) of aggregates. ``slice_key`` is ``all``, ``site=CODE`` or
    ``<cohort column>=<value>``. Rows of a (version, day) are replaced together by a rebuild."""

    version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    reference = models.ForeignKey(ReferenceProfile, on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    slice_key = models.CharField(max_length=200)
    site = models.ForeignKey(
        "registry.Site", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    n_events = models.PositiveIntegerField()
    data = models.JSONField()
    content_hash = models.CharField(max_length=64)
    built_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["version", "day", "slice_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "day", "slice_key"], name="monitoring_daily_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} {self.day} {self.slice_key}"


class StaleDay(models.Model):
    """A (version, day) whose profiles must be rebuilt: a late outcome, override or review
    arrived after they were built, or the day was never built."""

    version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    reason = models.CharField(max_length=60)
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["day"]
        constraints = [
            models.UniqueConstraint(fields=["version", "day"], name="monitoring_stale_day_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.version_id} {self.day} stale ({self.reason})"


class MonitorPolicy(models.Model):
    """A model's monitoring policy: bands per metric, minimum samples, windows.

    ``thresholds`` overrides the documented defaults (``monitoring.thresholds``) metric by
    metric: ``{"psi": {"yellow": 0.1, "orange": 0.2, "red": 0.25}}``; ``min_samples`` likewise
    (``{"auc": 100}``). Tightening for high and critical tiers and for the first days after a
    launch is applied on top when the band is decided.
    """

    model = models.OneToOneField(
        "registry.ClinicalModel", on_delete=models.PROTECT, related_name="monitor_policy"
    )
    windows = models.JSONField(default=list, help_text="window lengths in days, e.g. [7, 30]")
    thresholds = models.JSONField(default=dict, blank=True)
    min_samples = models.JSONField(default=dict, blank=True)
    launch_days = models.PositiveIntegerField(default=90)
    sustained_windows = models.PositiveSmallIntegerField(
        default=3, help_text="consecutive evaluations worse than green that page (k)"
    )
    reason = models.CharField(max_length=300)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["model"]
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"monitoring policy of {self.model}"


class Layer(models.TextChoices):
    DATA_QUALITY = "data_quality", "Data quality"
    PREDICTION_QUALITY = "prediction_quality", "Prediction quality"
    WORKFLOW = "workflow", "Workflow"
    OUTCOME = "outcome", "Outcome impact"


class Band(models.TextChoices):
    GREEN = "green", "Green"
    YELLOW = "yellow", "Yellow"
    ORANGE = "orange", "Orange"
    RED = "red", "Red"
    INSUFFICIENT = "insufficient", "Insufficient data"


#: Worst first; ``insufficient`` ranks below green (it never pages anyone).
BAND_RANK = {Band.RED: 4, Band.ORANGE: 3, Band.YELLOW: 2, Band.GREEN: 1, Band.INSUFFICIENT: 0}


class MetricResult(models.Model):
    """One metric of one slice over one window, with its interval, sample size and band.

    ``metric`` is the metric's key, with the feature after a colon where it has one
    (``psi:lactate``). ``clears_threshold`` says the whole interval lies beyond the green
    threshold: the result is confidently not green.
    """

    model = models.ForeignKey("registry.ClinicalModel", on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey(
        "registry.Site", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    slice_key = models.CharField(max_length=200)
    layer = models.CharField(max_length=20, choices=Layer.choices)
    metric = models.CharField(max_length=160)
    window_days = models.PositiveIntegerField()
    window_start = models.DateField()
    window_end = models.DateField(help_text="last day in the window (inclusive)")
    value = models.FloatField(null=True)
    low = models.FloatField(null=True)
    high = models.FloatField(null=True)
    n = models.PositiveIntegerField()
    baseline = models.FloatField(null=True)
    band = models.CharField(max_length=12, choices=Band.choices)
    clears_threshold = models.BooleanField(default=False)
    thresholds = models.JSONField(default=dict)
    details = models.JSONField(default=dict, blank=True)
    evaluated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "version", "slice_key", "metric", "-window_end"]
        permissions = [("run_evaluation", "Can build profiles and evaluate monitors now")]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "slice_key", "metric", "window_days", "window_end"],
                name="monitoring_result_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["model", "window_end", "band"], name="monitoring_result_band_idx"),
            models.Index(
                fields=["version", "metric", "slice_key", "window_days"],
                name="monitoring_result_trend_idx",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.metric} {self.slice_key} {self.window_days}d to {self.window_end}: {self.band}"
        )

    @property
    def feature(self) -> str:
        return self.metric.partition(":")[2]

    @property
    def metric_name(self) -> str:
        return self.metric.partition(":")[0]

    def as_estimate(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}
