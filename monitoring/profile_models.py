"""Monitoring records: reference profiles, daily profiles, monitor policies and metric results.

Profiles hold aggregates only (histogram counts and sums on the reference's bins, rates,
score histograms split by label), never a patient's row: they add when a window merges them,
and rebuilding a day from the same events gives the same content (``content_hash``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from governance.audit.governed import GovernedManager


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
