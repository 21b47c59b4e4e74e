"""Release API serializers. Output serializers show a release with its signature
manifestations (printed name, time, meaning, content hash) wherever it is shown; input
serializers never save: the views call the services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from governance import releases
from governance.models import EvidenceFile, Release, ReleaseKind, Signature
from registry.api.serializers import ModelSlugField, StrictFieldsMixin
from registry.models import ModelVersion, Site


class SignatureSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    signer = serializers.SlugRelatedField(slug_field="username", read_only=True)
    valid = serializers.SerializerMethodField()

    class Meta:
        model = Signature
        fields = ["id", "signer", "printed_name", "role", "meaning", "signed_at",
                  "content_sha256", "voided_at", "void_reason", "valid"]  # fmt: skip
        read_only_fields = fields

    def get_valid(self, obj: Signature) -> bool:
        return obj.voided_at is None and obj.content_sha256 == self.context.get("content_hash")


class EvidenceFileSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = EvidenceFile
        fields = ["id", "kind", "name", "content_type", "size", "sha256", "uploaded_by",
                  "uploaded_at"]  # fmt: skip
        read_only_fields = fields


class ReleaseSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    version = serializers.CharField(source="version.version", read_only=True, allow_null=True)
    sites = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)
    # plain strings: an enum here would collide with other apps' "status" enums in the schema
    status = serializers.CharField(read_only=True)
    kind = serializers.CharField(read_only=True)
    number = serializers.CharField(read_only=True)
    signatures = serializers.SerializerMethodField()
    files = EvidenceFileSerializer(many=True, read_only=True)
    required_signatures = serializers.SerializerMethodField()
    missing_signatures = serializers.SerializerMethodField()
    current_content_sha256 = serializers.SerializerMethodField()
    deployments = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Release
        fields = [
            "id", "number", "model", "kind", "status", "title", "rationale", "version", "sites",
            "score_mapping", "thresholds", "deferral_policy_number", "restores", "evidence",
            "origin", "author", "created_at", "submitted_at", "review_started_at",
            "approved_at", "deployed_at", "closed_at", "closed_reason", "content_sha256",
            "current_content_sha256", "signatures", "required_signatures",
            "missing_signatures", "files", "deployments", "deploy_seconds",
        ]  # fmt: skip
        read_only_fields = fields

    def _hash(self, obj: Release) -> str:
        cache = self.context.setdefault("_hashes", {})
        if obj.pk not in cache:
            cache[obj.pk] = releases.content_hash(obj)
        return cache[obj.pk]

    @extend_schema_field(SignatureSerializer(many=True))
    def get_signatures(self, obj: Release) -> list[dict[str, Any]]:
        return SignatureSerializer(
            obj.signatures.select_related("signer"), many=True,
            context={"content_hash": self._hash(obj)},
        ).data  # fmt: skip

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_required_signatures(self, obj: Release) -> list[dict[str, str]]:
        return [{"role": r, "meaning": m} for r, m in releases.required_signers(obj)]

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_missing_signatures(self, obj: Release) -> list[dict[str, str]]:
        return [{"role": r, "meaning": m} for r, m in releases.missing_signers(obj)]

    def get_current_content_sha256(self, obj: Release) -> str:
        return self._hash(obj)


class SitesField(serializers.SlugRelatedField):  # type: ignore[type-arg]
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="code", queryset=Site.objects.all(), **kwargs)


class ReleaseInputSerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    model = ModelSlugField()
    kind = serializers.ChoiceField(
        choices=ReleaseKind.choices, help_text="rollback: use POST /releases/rollback/."
    )
    title = serializers.CharField(max_length=200)
    rationale = serializers.CharField()
    version = serializers.CharField(
        required=False, allow_null=True, help_text="Version string; default: the live one "
        "(recalibration, threshold and deferral-policy changes)."
    )  # fmt: skip
    sites = SitesField(many=True, required=False)
    score_mapping = serializers.DictField(required=False, allow_null=True)
    thresholds = serializers.DictField(
        child=serializers.FloatField(), required=False, allow_null=True
    )
    deferral_policy_number = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    origin = serializers.DictField(required=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        name = data.get("version")
        if name:
            version = ModelVersion.objects.filter(model=data["model"], version=name).first()
            if version is None:
                raise serializers.ValidationError(
                    {"version": f"{data['model'].slug} has no version {name!r}."}
                )
            data["version"] = version
        return data


class ReleaseChangeSerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    title = serializers.CharField(max_length=200, required=False)
    rationale = serializers.CharField(required=False)
    sites = SitesField(many=True, required=False)
    score_mapping = serializers.DictField(required=False, allow_null=True)
    thresholds = serializers.DictField(
        child=serializers.FloatField(), required=False, allow_null=True
    )
    deferral_policy_number = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class CredentialsSerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    """Every component of the signature: the API has no signing session."""

    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class RollbackInputSerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    model = ModelSlugField()
    sites = SitesField(many=True)
    rationale = serializers.CharField()
    incident = serializers.IntegerField(required=False, help_text="INC number it answers.")


class EvidenceUploadSerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    kind = serializers.ChoiceField(choices=EvidenceFile.Kind.choices)
    file = serializers.FileField(help_text="A validation set (CSV / Parquet) is evaluated.")
