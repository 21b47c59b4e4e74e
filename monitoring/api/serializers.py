"""Gate request and answer shapes. Serializers validate shape only; the gate judges."""

from __future__ import annotations

import math
from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from monitoring.gate import PredictionIn

MAX_FEATURES = 500


class FiniteFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            raise serializers.ValidationError("Must be a finite number.")
        return value


class AwareDateTimeField(serializers.DateTimeField):
    """A moment with its time zone: a clinical record must not guess which clock it was."""

    def to_internal_value(self, value: Any) -> Any:
        if isinstance(value, str):
            parsed = parse_datetime(value)
            if parsed is not None and parsed.tzinfo is None:
                raise serializers.ValidationError("Give the time zone (e.g. ...Z or +00:00).")
        return super().to_internal_value(value)


class PredictionInSerializer(serializers.Serializer):
    """One prediction as a model service sends it."""

    event_id = serializers.UUIDField(help_text="The client's id for this prediction (UUID).")
    model = serializers.SlugField(max_length=60)
    site = serializers.CharField(max_length=40)
    occurred_at = AwareDateTimeField(help_text="When the model predicted (ISO 8601 with zone).")
    case_key = serializers.CharField(
        max_length=200, help_text="Pseudonymous case key; Vigil stores only a keyed hash of it."
    )
    features = serializers.DictField(child=serializers.JSONField(allow_null=True), allow_empty=True)
    score = FiniteFloatField(min_value=0.0, max_value=1.0)
    confidence = FiniteFloatField(min_value=0.0, max_value=1.0, required=False, allow_null=True)
    top_factors = serializers.ListField(
        child=serializers.JSONField(), required=False, max_length=50
    )
    cohort = serializers.DictField(child=serializers.CharField(max_length=100), required=False)
    version = serializers.CharField(max_length=40, required=False, allow_null=True)

    def validate_features(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_FEATURES:
            raise serializers.ValidationError(f"At most {MAX_FEATURES} features.")
        for name, item in value.items():
            if isinstance(item, dict | list):
                raise serializers.ValidationError(
                    f"{name}: a feature value is a number, text, true/false or null."
                )
            if isinstance(item, float) and not math.isfinite(item):
                raise serializers.ValidationError(f"{name}: must be a finite number.")
        return value

    def to_prediction(self) -> PredictionIn:
        data = self.validated_data
        return PredictionIn(
            event_id=data["event_id"],
            model=data["model"],
            site=data["site"],
            occurred_at=data["occurred_at"],
            case_key=data["case_key"],
            features=data["features"],
            score=data["score"],
            confidence=data.get("confidence"),
            top_factors=data.get("top_factors", []),
            cohort=data.get("cohort", {}),
            version=data.get("version"),
        )


class ReasonSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="machine-readable, e.g. low_confidence")
    text = serializers.CharField(help_text="for people")


class AnswerSerializer(serializers.Serializer):
    event_id = serializers.UUIDField()
    action = serializers.ChoiceField(choices=["act", "defer", "shadow"])
    reasons = ReasonSerializer(many=True)
    model = serializers.CharField()
    version = serializers.CharField()
    site = serializers.CharField()
    deployment_mode = serializers.ChoiceField(choices=["live", "shadow"])
    policy_version = serializers.IntegerField(help_text="0: built-in rules only (no policy set)")
    review_case_id = serializers.IntegerField(allow_null=True)


class BulkItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.IntegerField(help_text="201 stored, 200 replayed, 4xx refused")
    answer = AnswerSerializer(required=False)
    code = serializers.CharField(required=False)
    errors = serializers.DictField(required=False)


class BulkResultSerializer(serializers.Serializer):
    results = BulkItemResultSerializer(many=True)
    summary = serializers.DictField(child=serializers.IntegerField())
