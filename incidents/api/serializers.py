"""Incident API serializers: output serializers for alerts and incidents, input serializers
for each action. Serializers never save: the views call the services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from incidents import selectors
from incidents.models import Alert, Incident, TimelineEntry


class AlertSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    version = serializers.SlugRelatedField(slug_field="version", read_only=True)
    site = serializers.SlugRelatedField(slug_field="code", read_only=True)
    slice = serializers.CharField(source="slice_key", read_only=True)
    incident = serializers.SlugRelatedField(slug_field="number", read_only=True)
    # plain strings: an enum here would collide with other apps' "status" enums in the schema
    status = serializers.CharField(read_only=True, help_text="open | resolved")

    class Meta:
        model = Alert
        fields = [
            "id", "model", "version", "site", "slice", "metric", "layer", "status", "band",
            "worst_band", "reason", "routed_role", "first_seen_at", "last_seen_at",
            "green_since", "resolved_at", "incident", "is_drill", "payload",
        ]  # fmt: skip
        read_only_fields = fields


class IncidentSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    site = serializers.SlugRelatedField(slug_field="code", read_only=True)
    slice = serializers.CharField(source="slice_key", read_only=True)
    commander = serializers.SlugRelatedField(slug_field="username", read_only=True)
    merged_into = serializers.SlugRelatedField(slug_field="number", read_only=True)
    status = serializers.CharField(
        read_only=True,
        help_text="triggered | acknowledged | investigating | mitigated | resolved | closed | "
        "cancelled | merged",
    )

    class Meta:
        model = Incident
        fields = [
            "number", "title", "model", "site", "slice", "severity", "band", "layer", "status",
            "routed_role", "commander", "is_drill", "triggered_at", "acknowledged_at",
            "investigating_at", "mitigated_at", "resolved_at", "closed_at", "cancelled_at",
            "merged_at", "merged_into", "cancel_reason", "ack_deadline", "escalation_level",
        ]  # fmt: skip
        read_only_fields = fields


class TimelineEntrySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = TimelineEntry
        fields = ["at", "actor", "kind", "text", "data"]
        read_only_fields = fields


class IncidentDetailSerializer(IncidentSerializer):
    alerts = AlertSerializer(many=True, read_only=True)
    timeline = TimelineEntrySerializer(many=True, read_only=True)
    runbook = serializers.SerializerMethodField()
    impact = serializers.JSONField(read_only=True)
    review = serializers.JSONField(read_only=True)
    closure_gaps = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()

    class Meta(IncidentSerializer.Meta):
        fields = [
            *IncidentSerializer.Meta.fields,
            "alerts", "timeline", "runbook", "impact", "review", "closure_gaps", "actions",
        ]  # fmt: skip
        read_only_fields = fields

    def get_runbook(self, incident: Incident) -> dict[str, Any] | None:
        book, steps = selectors.runbook_steps(incident)
        if book is None:
            return None
        return {
            "title": book.title,
            "steps": [
                {
                    "step": s.number,
                    "title": s.title,
                    "evidence_needed": s.evidence,
                    "check": None
                    if s.check is None
                    else {
                        "evidence": s.check.evidence,
                        "by": s.check.checked_by.get_username(),
                        "at": s.check.checked_at.isoformat(),
                    },
                }
                for s in steps
            ],
        }

    def get_closure_gaps(self, incident: Incident) -> list[str]:
        from incidents.services import closure_gaps

        return closure_gaps(incident)

    def get_actions(self, incident: Incident) -> list[str]:
        """The transitions the requesting user may take now."""
        request = self.context.get("request")
        return selectors.allowed_actions(request.user, incident) if request else []


# --- inputs ----------------------------------------------------------------------------------


class SuppressSerializer(serializers.Serializer):  # type: ignore[type-arg]
    reason = serializers.CharField(max_length=500)
    days = serializers.IntegerField(min_value=1, max_value=90)


class TransitionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class MergeSerializer(TransitionSerializer):
    into = serializers.IntegerField(help_text="The number of the open incident to merge into.")


class ImpactSerializer(serializers.Serializer):  # type: ignore[type-arg]
    assessment = serializers.CharField(max_length=4000)
    harm_found = serializers.BooleanField()


class EvidenceSerializer(serializers.Serializer):  # type: ignore[type-arg]
    evidence = serializers.CharField(max_length=4000)


class CorrectiveActionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    action = serializers.CharField(max_length=500)
    owner = serializers.CharField(max_length=150)
    due = serializers.DateField()


class ReviewSerializer(serializers.Serializer):  # type: ignore[type-arg]
    summary = serializers.CharField(max_length=4000)
    corrective_actions = CorrectiveActionSerializer(many=True, allow_empty=False)
