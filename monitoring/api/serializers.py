"""Gate request and answer shapes. Serializers validate shape only; the gate judges."""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

from django.utils import timezone
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
            try:
                parsed = parse_datetime(value)
            except ValueError:  # well formed but impossible (month 13): DRF says "invalid"
                parsed = None
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


#: ``SlugField``'s rule (ASCII letters, digits, "-" and "_"), with its maximum length.
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,60}")


def fast_prediction(raw: Any) -> PredictionIn | None:
    """What ``PredictionInSerializer(data=raw).to_prediction()`` gives, for the plainly valid
    item, in a twentieth of the time; ``None`` means "ask the serializer", which decides and
    words the errors. It must never accept what the serializer refuses, and what it accepts
    must equal the serializer's prediction (``tests/monitoring/test_gate_fast.py`` checks both
    with generated input). Anything unusual (numbers sent as text, a cohort value that is a
    number, text with surrounding spaces...) goes to the serializer."""
    if type(raw) is not dict:
        return None
    try:
        event_id = raw["event_id"]
        model = raw["model"]
        site = raw["site"]
        moment = raw["occurred_at"]
        case_key = raw["case_key"]
        features = raw["features"]
        score = raw["score"]
    except KeyError:
        return None
    if type(event_id) is not str or type(model) is not str or type(moment) is not str:
        return None
    if not _SLUG.fullmatch(model):
        return None
    try:
        event_id = uuid.UUID(hex=event_id)
        moment = parse_datetime(moment)
        if moment is None or moment.tzinfo is None:
            return None
        moment = moment.astimezone(timezone.get_current_timezone())
    except (ValueError, OverflowError):
        return None
    site, case_key = _text(site, 40), _text(case_key, 200)
    score = _unit(score)
    if site is None or case_key is None or score is None:
        return None
    confidence = raw.get("confidence")
    if confidence is not None:
        confidence = _unit(confidence)
        if confidence is None:
            return None
    version = raw.get("version")
    if version is not None and _text(version, 40) is None:
        return None
    if type(features) is not dict or len(features) > MAX_FEATURES:
        return None
    if not all(value is None or _scalar(value) for value in features.values()):
        return None
    top_factors = raw.get("top_factors", [])
    if type(top_factors) is not list or len(top_factors) > 50:
        return None
    if not all(map(_factor, top_factors)):
        return None
    cohort = raw.get("cohort", {})
    if type(cohort) is not dict or not all(_text(v, 100) for v in cohort.values()):
        return None
    return PredictionIn(
        event_id=event_id,
        model=model,
        site=site,
        occurred_at=moment,
        case_key=case_key,
        features=features,
        score=score,
        confidence=confidence,
        top_factors=top_factors,
        cohort=cohort,
        version=version,
    )


def _text(value: Any, max_length: int) -> str | None:
    """A ``CharField`` value that needs no trimming: text, not blank, no NUL, no surrogate."""
    if type(value) is not str or not value or len(value) > max_length or value != value.strip():
        return None
    if "\x00" in value:
        return None
    if not value.isascii():
        try:
            value.encode("utf-8")  # a lone surrogate cannot be encoded
        except UnicodeEncodeError:
            return None
    return value


def _unit(value: Any) -> float | None:
    """A ``FiniteFloatField(min_value=0, max_value=1)`` value sent as a JSON number."""
    if type(value) is int:
        return float(value) if 0 <= value <= 1 else None
    if type(value) is float and math.isfinite(value) and 0.0 <= value <= 1.0:
        return value
    return None


def _scalar(value: Any) -> bool:
    """A number, text or true/false (a feature value or a top factor; not a container)."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    return kind is str or kind is int or kind is bool


def _factor(value: Any) -> bool:
    """A top factor the fast path vouches for: a scalar, or an object of scalars and nulls
    (a null factor itself is refused by the serializer)."""
    if type(value) is dict:
        return all(type(k) is str and (v is None or _scalar(v)) for k, v in value.items())
    return _scalar(value)


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
    score = serializers.FloatField(
        help_text="The score the gate judged: the model's, through the recalibration a signed "
        "release deployed (if any). Show this one to clinicians."
    )
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
