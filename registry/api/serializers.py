"""Registry API serializers: input serializers validate shapes and types, output serializers
render records. None of them saves; every write goes through ``registry.services``, which owns
the invariants, the history and the audit event."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Model
from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.settings import api_settings

from registry import services
from registry.models import (
    ClinicalModel,
    CohortColumn,
    DataFeed,
    Deployment,
    DeploymentMode,
    FeatureSpec,
    ModelVersion,
    Site,
    VersionStatus,
    feature_spec_errors,
)

User = get_user_model()


def in_model_order(model: type[Model], names: Iterable[str]) -> list[str]:
    """``names`` in the order the model declares them, which is the order people read them."""
    wanted = set(names)
    return [field.name for field in model._meta.concrete_fields if field.name in wanted]


# --- Input plumbing -------------------------------------------------------------------------


class StrictFieldsMixin:
    """Reject fields the serializer does not know, instead of silently dropping them: a typo
    in a governed record ("risk_teir") must fail loudly. ``fixed_fields`` gives a clearer
    message for fields that exist but may not be set here."""

    fixed_fields: Mapping[str, str] = {}

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}  # type: ignore[attr-defined]
            for name in sorted(set(data) - writable):
                unknown[name] = [self.fixed_fields.get(name, "Unknown field.")]
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                exc.detail.update(unknown)
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


def _flatten(detail: Any, key: str = "") -> Iterator[tuple[str, list[str]]]:
    """DRF's nested errors as flat keys, the shape the services use: ``features[2].max_value``."""
    if isinstance(detail, Mapping):
        for name, sub in detail.items():
            if name == api_settings.NON_FIELD_ERRORS_KEY and key:
                child = key
            elif isinstance(name, int):
                child = f"{key}[{name}]"
            else:
                child = f"{key}.{name}" if key else str(name)
            yield from _flatten(sub, child)
    elif isinstance(detail, list) and any(isinstance(sub, Mapping | list) for sub in detail):
        for index, sub in enumerate(detail):
            yield from _flatten(sub, f"{key}[{index}]")
    elif isinstance(detail, list):
        if detail:
            yield key or api_settings.NON_FIELD_ERRORS_KEY, [str(message) for message in detail]
    else:
        yield key or api_settings.NON_FIELD_ERRORS_KEY, [str(detail)]


def validate_input(
    serializer_class: type[serializers.Serializer], data: Any, **kwargs: Any
) -> dict[str, Any]:
    """Run an input serializer and return its validated data, or raise a 400 whose field
    errors have the same flat keys as the services' errors."""
    serializer = serializer_class(data=data, **kwargs)
    if not serializer.is_valid():
        raise serializers.ValidationError(dict(_flatten(serializer.errors)))
    return dict(serializer.validated_data)


class UsernameField(serializers.SlugRelatedField):
    """A person named by username: active, and not a model service's account."""

    default_error_messages = {
        "does_not_exist": "No active user named {value}.",
        "invalid": "Give a username.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            slug_field="username",
            queryset=User.objects.filter(is_active=True, service_account__isnull=True),
            **kwargs,
        )


class _ByKeyField(serializers.SlugRelatedField):
    default_error_messages = {
        "does_not_exist": "Unknown {what} {value!r}.",
        "invalid": "Invalid value.",
    }
    what = ""

    def to_internal_value(self, data: Any) -> Any:
        queryset = self.get_queryset()
        if not isinstance(data, str):
            self.fail("invalid")
        found = queryset.filter(**{self.slug_field: data}).first()
        if found is None:
            self.fail("does_not_exist", what=self.what, value=data)
        return found


class SiteCodeField(_ByKeyField):
    what = "site"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="code", queryset=Site.objects.all(), **kwargs)


class ModelSlugField(_ByKeyField):
    what = "model"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="slug", queryset=ClinicalModel.objects.all(), **kwargs)


class FeedSlugField(_ByKeyField):
    what = "data feed"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="slug", queryset=DataFeed.objects.all(), **kwargs)


class ReasonSerializer(StrictFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(
        max_length=300, help_text="Why; kept in history and the audit trail."
    )


# --- Clinical models ------------------------------------------------------------------------


class ClinicalModelInputSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    clinical_owner = UsernameField()
    technical_owner = UsernameField()

    class Meta:
        model = ClinicalModel
        fields = in_model_order(ClinicalModel, services.MODEL_FIELDS)


class ClinicalModelUpdateSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """A partial update of a model's record; ``reason`` is required and goes to its history."""

    fixed_fields = {"slug": "A model's slug never changes."}

    clinical_owner = UsernameField(required=False)
    technical_owner = UsernameField(required=False)
    reason = serializers.CharField(max_length=300, write_only=True)

    class Meta:
        model = ClinicalModel
        fields = [*in_model_order(ClinicalModel, services.MODEL_FIELDS - {"slug"}), "reason"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Partial validation skips "required", so the reason is checked here.
        if not attrs.get("reason", "").strip():
            raise serializers.ValidationError({"reason": ["Say why the model's record changes."]})
        return attrs


class ClinicalModelSerializer(serializers.ModelSerializer):
    clinical_owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    technical_owner = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ClinicalModel
        fields = ["id", *in_model_order(ClinicalModel, services.MODEL_FIELDS), "created_at"]
        read_only_fields = fields


# --- Versions -------------------------------------------------------------------------------


class FeatureSpecInputSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    feed = FeedSlugField(required=False, allow_null=True)

    class Meta:
        model = FeatureSpec
        fields = in_model_order(FeatureSpec, services.FEATURE_FIELDS)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # The same invariants the model enforces, checked here too so that a client sees them
        # in one answer together with any type errors elsewhere in the body.
        errors = feature_spec_errors(
            dtype=attrs["dtype"],
            min_value=attrs.get("min_value"),
            max_value=attrs.get("max_value"),
            categories=attrs.get("categories", []),
            required=attrs.get("required", True),
            missing_allowed=attrs.get("missing_allowed", False),
        )
        if errors:
            raise serializers.ValidationError({name: [message] for name, message in errors.items()})
        return attrs


class CohortColumnInputSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    values = serializers.ListField(child=serializers.CharField(max_length=100), required=False)

    class Meta:
        model = CohortColumn
        fields = in_model_order(CohortColumn, services.COHORT_FIELDS)


class ModelVersionInputSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    features = FeatureSpecInputSerializer(many=True, allow_empty=False)
    cohorts = CohortColumnInputSerializer(many=True, required=False)

    class Meta:
        model = ModelVersion
        fields = [*in_model_order(ModelVersion, services.VERSION_FIELDS), "features", "cohorts"]


class VersionTransitionSerializer(ReasonSerializer):
    status = serializers.ChoiceField(choices=VersionStatus.choices)


class FeatureSpecSerializer(serializers.ModelSerializer):
    feed = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = FeatureSpec
        fields = ["id", *in_model_order(FeatureSpec, services.FEATURE_FIELDS)]
        read_only_fields = fields


class CohortColumnSerializer(serializers.ModelSerializer):
    class Meta:
        model = CohortColumn
        fields = ["id", *in_model_order(CohortColumn, services.COHORT_FIELDS)]
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    features = FeatureSpecSerializer(many=True, read_only=True)
    cohorts = CohortColumnSerializer(many=True, read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "model",
            *in_model_order(ModelVersion, services.VERSION_FIELDS),
            "status",
            "created_by",
            "created_at",
            "features",
            "cohorts",
        ]
        read_only_fields = fields


# --- Sites and feeds ------------------------------------------------------------------------


class SiteInputSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["code", "name"]


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["id", "code", "name", "is_active"]
        read_only_fields = fields


class DataFeedInputSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    owner = UsernameField()

    class Meta:
        model = DataFeed
        fields = [
            "slug",
            "name",
            "source_system",
            "expected_cadence_minutes",
            "owner",
            "description",
        ]


class DataFeedSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = DataFeed
        fields = [
            "id",
            "slug",
            "name",
            "source_system",
            "expected_cadence_minutes",
            "owner",
            "description",
        ]
        read_only_fields = fields


# --- Deployments ----------------------------------------------------------------------------


class DeploymentInputSerializer(StrictFieldsMixin, serializers.Serializer):
    """Name the version either by ``version_id`` or by ``model`` slug plus ``version`` string."""

    version_id = serializers.IntegerField(required=False, min_value=1)
    model = ModelSlugField(required=False)
    version = serializers.CharField(required=False, max_length=40)
    site = SiteCodeField()
    mode = serializers.ChoiceField(choices=DeploymentMode.choices, default=DeploymentMode.LIVE)
    reason = serializers.CharField(max_length=300)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        version_id = attrs.pop("version_id", None)
        model, version = attrs.pop("model", None), attrs.pop("version", None)
        if version_id is not None and (model is not None or version is not None):
            raise serializers.ValidationError(
                {"version_id": ["Give either version_id, or model and version, not both."]}
            )
        if version_id is not None:
            found = ModelVersion.objects.filter(pk=version_id).first()
            if found is None:
                raise serializers.ValidationError(
                    {"version_id": [f"Unknown version id {version_id}."]}
                )
        elif model is None or version is None:
            raise serializers.ValidationError(
                {"version": ["Name the version: version_id, or model (slug) and version."]}
            )
        else:
            found = ModelVersion.objects.filter(model=model, version=version).first()
            if found is None:
                raise serializers.ValidationError(
                    {"version": [f"{model.slug} has no version {version!r}."]}
                )
        attrs["version"] = found
        return attrs


class LiveQuerySerializer(StrictFieldsMixin, serializers.Serializer):
    """The question "which version was live for model M at site S at moment T"."""

    model = ModelSlugField()
    site = SiteCodeField()
    at = serializers.DateTimeField(
        help_text="ISO 8601 with a timezone, e.g. 2024-05-01T12:00:00Z.",
        error_messages={
            "invalid": "Use ISO 8601 with a timezone, e.g. 2024-05-01T12:00:00Z "
            "(in a URL, write '+' as %2B)."
        },
    )

    def validate_at(self, value: datetime) -> datetime:
        # A naive time would silently be read in the server's zone; the answer depends on the
        # exact moment, so the client must say which zone it means.
        raw = self.initial_data.get("at")
        parsed = parse_datetime(raw) if isinstance(raw, str) else None
        if parsed is not None and parsed.tzinfo is None:
            raise serializers.ValidationError(
                "Give the timezone, e.g. 2024-05-01T12:00:00Z or 2024-05-01T14:00:00+02:00."
            )
        return value


class DeploymentSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    version = serializers.CharField(source="version.version", read_only=True)
    version_id = serializers.IntegerField(read_only=True)
    site = serializers.SlugRelatedField(slug_field="code", read_only=True)
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    ended_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    is_active = serializers.BooleanField(read_only=True)
    releases = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True, help_text="The signed release(s) that started it; empty: "
        "started outside the release workflow (a governance check flags it)."
    )

    class Meta:
        model = Deployment
        fields = [
            "id",
            "model",
            "version",
            "version_id",
            "site",
            "mode",
            "is_active",
            "started_at",
            "started_by",
            "reason",
            "ended_at",
            "ended_by",
            "end_reason",
            "frozen",
            "frozen_at",
            "frozen_reason",
            "score_mapping",
            "thresholds",
            "deferral_policy_number",
            "releases",
        ]
        read_only_fields = fields
