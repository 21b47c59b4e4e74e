"""Outcome and override request and answer shapes. Shape only: ``monitoring.outcomes`` judges."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from monitoring.api.serializers import AwareDateTimeField, FiniteFloatField
from monitoring.models import Outcome, Override, OverrideReason
from registry.api.serializers import StrictFieldsMixin

CASE_FIELDS = ("model", "case_key", "occurred_at")


class OutcomeInSerializer(StrictFieldsMixin, serializers.Serializer):
    """The observed label of one prediction, named by ``event_id`` or by ``model`` +
    ``case_key`` + ``occurred_at`` (the prediction's time), optionally with ``site`` and
    ``version`` when a case was scored by more than one deployment at that moment. Unknown
    fields are refused: a misspelt ``correction`` must not pass silently."""

    event_id = serializers.UUIDField(required=False, help_text="The prediction's event id.")
    model = serializers.SlugField(max_length=60, required=False)
    case_key = serializers.CharField(
        max_length=200, required=False, help_text="The prediction's pseudonymous case key."
    )
    occurred_at = AwareDateTimeField(required=False, help_text="The prediction's time.")
    site = serializers.CharField(max_length=40, required=False)
    version = serializers.CharField(max_length=40, required=False)
    label = FiniteFloatField(help_text="0 or 1 (binary models).")
    observed_at = AwareDateTimeField(help_text="When the outcome was observed.")
    correction = serializers.BooleanField(
        default=False, help_text="Replace the outcome on record (the earlier one is kept)."
    )
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        by_case = [name for name in (*CASE_FIELDS, "site", "version") if name in attrs]
        if "event_id" in attrs and by_case:
            raise serializers.ValidationError(
                {"event_id": ["Name the prediction by event_id or by case key, not both."]}
            )
        if "event_id" not in attrs:
            missing = [name for name in CASE_FIELDS if name not in attrs]
            if missing:
                raise serializers.ValidationError(
                    {
                        name: ["Send event_id, or model, case_key and occurred_at."]
                        for name in ["event_id", *missing]
                    }
                )
        return attrs


class OutcomeSerializer(serializers.ModelSerializer):
    event_id = serializers.UUIDField(source="event.event_id")
    corrects = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The outcome this one corrects, if any."
    )

    class Meta:
        model = Outcome
        fields = ["id", "event_id", "label", "observed_at", "received_at", "corrects", "note"]


class OutcomeBulkItemSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.IntegerField(help_text="201 stored, 200 already on record, 4xx refused")
    outcome = OutcomeSerializer(required=False)
    code = serializers.CharField(required=False)
    errors = serializers.DictField(required=False)


class OutcomeBulkResultSerializer(serializers.Serializer):
    results = OutcomeBulkItemSerializer(many=True)
    summary = serializers.DictField(child=serializers.IntegerField())


class OverrideInSerializer(StrictFieldsMixin, serializers.Serializer):
    """A clinician overrode a model that acted. ``clinician_ref`` only if the hospital chooses
    to identify clinicians; the role is enough for monitoring."""

    event_id = serializers.UUIDField()
    clinician_role = serializers.CharField(max_length=60, help_text="e.g. nurse, registrar")
    clinician_ref = serializers.CharField(
        max_length=80, required=False, allow_blank=True, default=""
    )
    reason_code = serializers.ChoiceField(choices=OverrideReason.choices)
    final_action = serializers.CharField(max_length=200, help_text="What was done instead.")
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    occurred_at = AwareDateTimeField(help_text="When the clinician overrode the model.")


class OverrideSerializer(serializers.ModelSerializer):
    event_id = serializers.UUIDField(source="event.event_id")

    class Meta:
        model = Override
        fields = [
            "id",
            "event_id",
            "clinician_role",
            "clinician_ref",
            "reason_code",
            "final_action",
            "note",
            "occurred_at",
            "received_at",
        ]
