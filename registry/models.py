"""The model registry: what each clinical model is for, its versions, inputs, feeds, sites and
where it is deployed. Every model here is governed: history on every change, no unrecorded
bulk writes (see ``governance.audit.governed``)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from governance.audit.governed import GovernedManager

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
sha256_validator = RegexValidator(SHA256_RE, "Enter a sha256 as 64 lowercase hex characters.")
code_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$", "Use letters, digits, '-' or '_' (max 40)."
)
identifier_validator = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_]{0,99}$",
    "Use a column-style name: letters, digits and '_', not starting with a digit.",
)


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MODERATE = "moderate", "Moderate"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class ModelStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    IN_DEVELOPMENT = "in_development", "In development"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    RETIRED = "retired", "Retired"


class DecisionRole(models.TextChoices):
    INFORMS = "informs", "Informs clinical management"
    AUGMENTS = "augments", "Augments (drives) clinical management"
    REPLACES = "replaces", "Replaces a clinical decision (treat / diagnose)"


class OutputType(models.TextChoices):
    PREDICTION = "prediction", "Prediction (risk score)"
    CLASSIFICATION = "classification", "Classification"
    RECOMMENDATION = "recommendation", "Recommendation"


#: Slugs that would clash with the registry's own page URLs (/models/new/, /models/live/ ...).
RESERVED_SLUGS = frozenset({"new", "live", "sites", "feeds", "api", "edit"})


class ClinicalModel(models.Model):
    """A clinical ML model and its scope: the facts its model card is rendered from."""

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    summary = models.TextField(help_text="Purpose, in one paragraph (CHAI Summary).")
    keywords = models.CharField(max_length=300, blank=True)
    intended_use = models.TextField(help_text="Intended use and place in the workflow.")
    intended_users = models.TextField(blank=True)
    decision_role = models.CharField(max_length=20, choices=DecisionRole.choices, blank=True)
    how_to_use = models.TextField(blank=True)
    intended_population = models.TextField()
    intended_setting = models.TextField(help_text="Care setting (e.g. adult inpatient wards).")
    exclusions = models.TextField(blank=True, help_text="Out-of-scope populations and uses.")
    known_limitations = models.TextField(blank=True)
    known_biases = models.TextField(blank=True)
    risk_tier = models.CharField(max_length=10, choices=RiskTier.choices)
    status = models.CharField(
        max_length=20, choices=ModelStatus.choices, default=ModelStatus.PROPOSED
    )
    clinical_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="clinical_models_owned"
    )
    technical_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="technical_models_owned"
    )
    contact = models.EmailField(help_text="Where users report problems.")
    developer = models.CharField(max_length=200, blank=True)
    funding_source = models.CharField(max_length=300, blank=True)
    regulatory_status = models.CharField(max_length=300, blank=True)
    ehr_compatibility = models.CharField(max_length=300, blank=True)
    output_type = models.CharField(max_length=20, choices=OutputType.choices, blank=True)
    output_description = models.TextField(blank=True)
    model_type = models.CharField(max_length=200, blank=True)
    foundation_models = models.CharField(max_length=300, blank=True)
    fairness_approach = models.TextField(blank=True)
    bias_mitigation = models.TextField(blank=True)
    monitoring_process = models.TextField(blank=True)
    update_process = models.TextField(blank=True)
    change_control_plan = models.TextField(blank=True)
    required_expertise = models.TextField(blank=True)
    missing_input_handling = models.TextField(blank=True)
    publications = models.TextField(blank=True)
    clinical_trials = models.TextField(blank=True)
    patient_disclosure = models.TextField(blank=True)
    stakeholders_consulted = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        base_manager_name = "objects"

    def __str__(self) -> str:
        return self.name

    def current_version(self) -> ModelVersion | None:
        return self.versions.order_by("-created_at").first()


class VersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    CANDIDATE = "candidate", "Candidate"
    APPROVED = "approved", "Approved"
    DEPLOYED = "deployed", "Deployed"
    RETIRED = "retired", "Retired"


#: Allowed status moves. Deployment itself sets ``deployed`` (registry.services).
VERSION_TRANSITIONS: dict[str, set[str]] = {
    VersionStatus.DRAFT: {VersionStatus.CANDIDATE, VersionStatus.RETIRED},
    VersionStatus.CANDIDATE: {VersionStatus.APPROVED, VersionStatus.DRAFT, VersionStatus.RETIRED},
    VersionStatus.APPROVED: {VersionStatus.DEPLOYED, VersionStatus.RETIRED},
    VersionStatus.DEPLOYED: {VersionStatus.RETIRED, VersionStatus.APPROVED},
    VersionStatus.RETIRED: set(),
}


class ModelVersion(models.Model):
    """One trained artifact of a model, with its lineage and validation evidence.

    ``validation_results`` is ``{"overall": {metric: {"value", "ci_low", "ci_high", "n"}},
    "subgroups": {"<cohort>=<value>": {metric: {...}}}, "process": str, "dataset": str}``.
    ``decision_thresholds`` maps a threshold name to a number in [0, 1].
    """

    model = models.ForeignKey(ClinicalModel, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(
        max_length=40,
        validators=[RegexValidator(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$", "Use e.g. 1.0.0 or 2024-03.")],
    )
    status = models.CharField(
        max_length=12, choices=VersionStatus.choices, default=VersionStatus.DRAFT
    )
    artifact_uri = models.CharField(max_length=500)
    artifact_sha256 = models.CharField(max_length=64, validators=[sha256_validator])
    training_data_source = models.TextField()
    training_window_start = models.DateField()
    training_window_end = models.DateField()
    training_set_size = models.PositiveIntegerField()
    demographics_summary = models.JSONField(default=dict, blank=True)
    inclusion_criteria = models.TextField(blank=True)
    exclusion_criteria = models.TextField(blank=True)
    label_definition = models.TextField()
    code_ref = models.CharField(max_length=300, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    decision_thresholds = models.JSONField(default=dict, blank=True)
    validation_results = models.JSONField(default=dict, blank=True)
    sensitive_variables = models.TextField(
        blank=True, help_text="Sensitive attributes used as inputs (race, sex, age, SDOH ...)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["model", "-created_at"]
        base_manager_name = "objects"
        permissions = [
            # Approval makes a version deployable; until signed releases (governance) carry it,
            # only a medical director may give it.
            ("approve_modelversion", "Can approve a model version for deployment"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="registry_version_unique"),
            models.CheckConstraint(
                condition=Q(training_window_start__lte=models.F("training_window_end")),
                name="registry_version_training_window_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.slug} {self.version}"

    def is_deployable(self) -> bool:
        return self.status in (VersionStatus.APPROVED, VersionStatus.DEPLOYED)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if (
            self.training_window_start
            and self.training_window_end
            and self.training_window_start > self.training_window_end
        ):
            errors["training_window_end"] = "The training window ends before it starts."
        for name, value in (self.decision_thresholds or {}).items():
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
                errors["decision_thresholds"] = f"Threshold {name!r} must be a number in [0, 1]."
        if errors:
            raise ValidationError(errors)


class FeatureType(models.TextChoices):
    NUMERIC = "numeric", "Numeric"
    CATEGORICAL = "categorical", "Categorical"
    BOOLEAN = "boolean", "Boolean"


class DataFeed(models.Model):
    """An upstream feed a model depends on; features link to the feed they come from."""

    class SourceSystem(models.TextChoices):
        EHR_VITALS = "ehr_vitals", "EHR vitals"
        EHR_ORDERS = "ehr_orders", "EHR orders / ADT"
        LABS = "labs", "Laboratory results"
        CLAIMS = "claims", "Claims"
        WEARABLES = "wearables", "Wearables / remote monitoring"
        PRO = "patient_reported", "Patient-reported outcomes"
        SCHEDULING = "scheduling", "Scheduling"
        OTHER = "other", "Other"

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    source_system = models.CharField(max_length=20, choices=SourceSystem.choices)
    expected_cadence_minutes = models.PositiveIntegerField(
        help_text="How often data should arrive; silence beyond this is a stale feed."
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    description = models.TextField(blank=True)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        base_manager_name = "objects"

    def __str__(self) -> str:
        return self.name


class FeatureSpec(models.Model):
    """One input of a model version, and what a valid value looks like."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="features")
    name = models.CharField(max_length=100, validators=[identifier_validator])
    dtype = models.CharField(max_length=12, choices=FeatureType.choices)
    unit = models.CharField(max_length=40, blank=True)
    min_value = models.FloatField(null=True, blank=True)
    max_value = models.FloatField(null=True, blank=True)
    categories = models.JSONField(default=list, blank=True)
    required = models.BooleanField(default=True)
    missing_allowed = models.BooleanField(default=False)
    description = models.CharField(max_length=300, blank=True)
    feed = models.ForeignKey(
        DataFeed, null=True, blank=True, on_delete=models.PROTECT, related_name="features"
    )

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["version", "name"]
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["version", "name"], name="registry_feature_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.dtype})"

    def clean(self) -> None:
        errors = feature_spec_errors(
            dtype=self.dtype,
            min_value=self.min_value,
            max_value=self.max_value,
            categories=self.categories,
            required=self.required,
            missing_allowed=self.missing_allowed,
        )
        if errors:
            raise ValidationError(errors)


def feature_spec_errors(
    *,
    dtype: str,
    min_value: float | None,
    max_value: float | None,
    categories: Any,
    required: bool,
    missing_allowed: bool,
) -> dict[str, str]:
    """The invariants of a feature spec, shared by the model, the form and the API."""
    errors: dict[str, str] = {}
    if dtype not in FeatureType.values:
        errors["dtype"] = f"Unknown type {dtype!r}; use one of {', '.join(FeatureType.values)}."
        return errors
    if dtype == FeatureType.NUMERIC:
        if min_value is not None and max_value is not None and min_value > max_value:
            errors["max_value"] = "The allowed range is empty: max is below min."
        if categories:
            errors["categories"] = "A numeric feature has a range, not categories."
    else:
        if min_value is not None or max_value is not None:
            errors["min_value"] = f"A {dtype} feature has no numeric range."
    if dtype == FeatureType.CATEGORICAL:
        if not isinstance(categories, list) or not categories:
            errors["categories"] = "List the allowed categories of a categorical feature."
        elif not all(isinstance(c, str) and c.strip() for c in categories):
            errors["categories"] = "Categories must be non-empty text."
        elif len(set(categories)) != len(categories):
            errors["categories"] = "Categories must not repeat."
    if dtype == FeatureType.BOOLEAN and categories:
        errors["categories"] = "A boolean feature has no categories."
    if required and missing_allowed:
        errors["missing_allowed"] = "A required input cannot also be allowed to be missing."
    return errors


class CohortColumn(models.Model):
    """A cohort attribute this version is monitored by (age band, sex, payer, ...)."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="cohorts")
    name = models.CharField(max_length=60, validators=[identifier_validator])
    values = models.JSONField(default=list, blank=True, help_text="Known values; empty = any.")
    description = models.CharField(max_length=300, blank=True)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["version", "name"]
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["version", "name"], name="registry_cohort_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class Site(models.Model):
    """A hospital or clinic where models are deployed."""

    code = models.CharField(max_length=40, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"


class DeploymentMode(models.TextChoices):
    LIVE = "live", "Live"
    SHADOW = "shadow", "Shadow (logged, never acts)"


class DeploymentQuerySet(models.QuerySet["Deployment"]):
    def active(self) -> DeploymentQuerySet:
        return self.filter(ended_at__isnull=True)

    def live_at(self, *, site: Site, model: ClinicalModel, at: datetime) -> DeploymentQuerySet:
        """Deployments of ``model`` that were running at ``site`` at moment ``at``."""
        return self.filter(site=site, model=model, started_at__lte=at).filter(
            Q(ended_at__isnull=True) | Q(ended_at__gt=at)
        )

    def update(self, **kwargs: Any) -> int:
        raise TypeError("Deployment rows change only through registry.services")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise TypeError("Deployment rows change only through registry.services")

    def bulk_create(self, *args: Any, **kwargs: Any) -> list[Deployment]:
        raise TypeError("Deployment rows are created only through registry.services")


class Deployment(models.Model):
    """A version running at a site from ``started_at`` until ``ended_at``.

    Never overwritten: a new version at a site is a new row, and the old row only gets its
    ``ended_at``. So "which version was live at site S at time T" has an exact answer.
    ``frozen`` is the kill switch: the gate then defers every case to a human.
    """

    model = models.ForeignKey(ClinicalModel, on_delete=models.PROTECT, related_name="deployments")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="deployments")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="deployments")
    mode = models.CharField(
        max_length=10, choices=DeploymentMode.choices, default=DeploymentMode.LIVE
    )
    started_at = models.DateTimeField(default=timezone.now)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=300)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    end_reason = models.CharField(max_length=300, blank=True)
    frozen = models.BooleanField(default=False)
    frozen_at = models.DateTimeField(null=True, blank=True)
    frozen_reason = models.CharField(max_length=300, blank=True)
    #: The configuration the gate applies, pinned at deployment (a release sets it; a rollback
    #: copies it back). ``score_mapping`` empty: scores as sent; else ``{"method", "intercept",
    #: "slope"}`` on the logit scale. ``thresholds`` null: the version's own.
    #: ``deferral_policy_number`` null: the version's deferral policy in force.
    score_mapping = models.JSONField(default=dict, blank=True)
    thresholds = models.JSONField(null=True, blank=True)
    deferral_policy_number = models.PositiveIntegerField(null=True, blank=True)

    objects = DeploymentQuerySet.as_manager()
    history = HistoricalRecords()

    #: After creation only these may change; everything else is the permanent record.
    MUTABLE_FIELDS = frozenset(
        {"ended_at", "ended_by", "end_reason", "frozen", "frozen_at", "frozen_reason"}
    )

    class Meta:
        ordering = ["-started_at"]
        base_manager_name = "objects"
        permissions = [("freeze_deployment", "Can freeze / unfreeze a deployment (kill switch)")]
        constraints = [
            # The gate asks "what is live for model M at site S now": one answer at most.
            models.UniqueConstraint(
                fields=["model", "site"],
                condition=Q(ended_at__isnull=True, mode="live"),
                name="registry_one_live_deployment_per_site",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=models.F("started_at")),
                name="registry_deployment_ends_after_start",
            ),
        ]
        indexes = [
            # live_at(): by model and site, newest first.
            models.Index(fields=["model", "site", "started_at"], name="registry_dep_live_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.version} at {self.site.code} ({self.mode})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            fields = kwargs.get("update_fields")
            if fields is None or not set(fields) <= self.MUTABLE_FIELDS:
                raise TypeError(
                    "A deployment is never overwritten: pass update_fields limited to "
                    f"{sorted(self.MUTABLE_FIELDS)}"
                )
        super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


class SiteAssignment(models.Model):
    """Which sites a person works at: reviewers see the deferred cases of their sites only."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="site_assignments"
    )
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="assignments")
    assigned_at = models.DateTimeField(default=timezone.now)

    objects = GovernedManager()
    history = HistoricalRecords()

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(
                fields=["user", "site"], name="registry_site_assignment_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.site.code}"
