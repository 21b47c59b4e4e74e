"""Serializers of the monitoring engine's API: metric results, reference profiles, policies."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from monitoring.models import MetricResult, ReferenceProfile


class MetricResultSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    model = serializers.CharField(source="model.slug")
    version = serializers.CharField(source="version.version")
    site = serializers.CharField(source="site.code", allow_null=True)
    slice = serializers.CharField(source="slice_key")
    interval = serializers.SerializerMethodField()

    class Meta:
        model = MetricResult
        fields = [
            "id", "model", "version", "site", "slice", "layer", "metric", "window_days",
            "window_start", "window_end", "value", "interval", "n", "baseline", "band",
            "clears_threshold", "thresholds", "details", "evaluated_at",
        ]  # fmt: skip

    def get_interval(self, obj: MetricResult) -> list[float | None]:
        return [obj.low, obj.high]


class ReferenceProfileSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    model = serializers.CharField(source="version.model.slug")
    version = serializers.CharField(source="version.version")
    uploaded_by = serializers.CharField(source="uploaded_by.username")
    slices = serializers.SerializerMethodField()
    features = serializers.SerializerMethodField()

    class Meta:
        model = ReferenceProfile
        fields = [
            "number", "model", "version", "file_name", "file_sha256", "row_count",
            "labelled_count", "features", "slices", "baseline", "note", "uploaded_by",
            "created_at",
        ]  # fmt: skip

    def get_slices(self, obj: ReferenceProfile) -> list[str]:
        return sorted(obj.reference)

    def get_features(self, obj: ReferenceProfile) -> dict[str, Any]:
        return {
            name: {k: v for k, v in b.items() if k != "edges"}
            | {"bins": len(b.get("edges", [])) + 1}
            if b["dtype"] == "numeric"
            else b
            for name, b in obj.bins.items()
        }


class ReferenceUploadSerializer(serializers.Serializer):  # type: ignore[type-arg]
    file = serializers.FileField(help_text="CSV or Parquet: features, score, label, cohorts.")
    note = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class MonitorPolicySerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A whole policy; thresholds and minimum samples override the documented defaults."""

    windows = serializers.ListField(child=serializers.IntegerField(), allow_empty=False)
    launch_days = serializers.IntegerField(default=90)
    sustained_windows = serializers.IntegerField(
        default=3, help_text="consecutive evaluations worse than green that raise an alert"
    )
    thresholds = serializers.DictField(
        child=serializers.DictField(child=serializers.FloatField()), required=False, default=dict
    )
    min_samples = serializers.DictField(
        child=serializers.IntegerField(), required=False, default=dict
    )
    reason = serializers.CharField(max_length=300)
