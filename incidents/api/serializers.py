"""Incident API serializers: output serializers for alerts and incidents, input serializers
for each action. Serializers never save: the views call the services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from incidents import selectors
from incidents.models import Alert, Incident, Notification, Runbook, TimelineEntry
from incidents.services import INCIDENT_ROLES
from registry.api.serializers import ModelSlugField, UsernameField


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
    scribe = serializers.SlugRelatedField(slug_field="username", read_only=True)
    clinical_lead = serializers.SlugRelatedField(slug_field="username", read_only=True)
    model_owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
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
            "routed_role", "commander", "scribe", "clinical_lead", "model_owner", "is_drill",
            "triggered_at", "acknowledged_at", "investigating_at", "mitigated_at", "resolved_at",
            "closed_at", "cancelled_at", "merged_at", "merged_into", "cancel_reason",
            "ack_deadline", "escalation_level",
        ]  # fmt: skip
        read_only_fields = fields


class TimelineEntrySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = TimelineEntry
        fields = ["at", "actor", "kind", "text", "data"]
        read_only_fields = fields


class DeploymentStateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    site = serializers.CharField(source="site.code")
    version = serializers.CharField(source="version.version")
    frozen = serializers.BooleanField()
    frozen_reason = serializers.CharField()


class NotificationSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    status = serializers.CharField(read_only=True, help_text="pending | sent | failed | dead")

    class Meta:
        model = Notification
        fields = list(selectors.NOTIFICATION_FIELDS)
        read_only_fields = fields


class IncidentDetailSerializer(IncidentSerializer):
    alerts = AlertSerializer(many=True, read_only=True)
    timeline = TimelineEntrySerializer(many=True, read_only=True)
    runbook = serializers.SerializerMethodField()
    impact = serializers.JSONField(read_only=True)
    review = serializers.JSONField(read_only=True)
    closure_gaps = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()
    deployments = serializers.SerializerMethodField()
    notifications = serializers.SerializerMethodField()

    class Meta(IncidentSerializer.Meta):
        fields = [
            *IncidentSerializer.Meta.fields,
            "alerts", "timeline", "runbook", "impact", "review", "closure_gaps", "actions",
            "deployments", "notifications",
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

    @extend_schema_field(DeploymentStateSerializer(many=True))
    def get_deployments(self, incident: Incident) -> list[dict[str, Any]]:
        """The live deployments the incident's kill switch reaches, frozen or not."""
        return DeploymentStateSerializer(selectors.live_deployments(incident), many=True).data

    @extend_schema_field(NotificationSerializer(many=True))
    def get_notifications(self, incident: Incident) -> list[dict[str, Any]]:
        """Messages sent for the incident (subjects only, never bodies)."""
        found = selectors.incident_notifications(incident)
        return NotificationSerializer(found, many=True).data


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


class AssignSerializer(serializers.Serializer):  # type: ignore[type-arg]
    role = serializers.ChoiceField(choices=list(INCIDENT_ROLES))
    username = UsernameField(help_text="An active person (not a service account).")


class FreezeSerializer(serializers.Serializer):  # type: ignore[type-arg]
    site = serializers.CharField(max_length=40, help_text="The site code of a live deployment "
                                 "the incident reaches.")  # fmt: skip
    reason = serializers.CharField(max_length=300)


class UnfreezeSerializer(FreezeSerializer):
    password = serializers.CharField(
        max_length=200, trim_whitespace=False, write_only=True,
        help_text="The medical director re-enters their password.",
    )  # fmt: skip


class DrillSerializer(serializers.Serializer):  # type: ignore[type-arg]
    model = ModelSlugField()
    version = serializers.CharField(max_length=40)
    slice = serializers.CharField(max_length=200, default="all",
                                  help_text="all, site=CODE or column=value")  # fmt: skip
    metric = serializers.CharField(max_length=160, help_text="missing_rate:lactate, auc, ...")
    band = serializers.ChoiceField(choices=["orange", "red"])
    scenario = serializers.CharField(max_length=300, allow_blank=True)


class SpanSerializer(serializers.Serializer):  # type: ignore[type-arg]
    n = serializers.IntegerField(help_text="Incidents the figures rest on.")
    median_hours = serializers.FloatField(allow_null=True)
    max_hours = serializers.FloatField(allow_null=True)


class IncidentStatsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    model = serializers.CharField()
    severity = serializers.CharField()
    incidents = serializers.IntegerField()
    detect = SpanSerializer()
    acknowledge = SpanSerializer()
    mitigate = SpanSerializer()
    resolve = SpanSerializer()


# --- runbooks --------------------------------------------------------------------------------


class RunbookStepSerializer(serializers.Serializer):  # type: ignore[type-arg]
    # blanks pass here so the service answers with the step's number
    title = serializers.CharField(allow_blank=True, max_length=1000)
    evidence = serializers.CharField(allow_blank=True, max_length=4000)


class RunbookSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    steps = RunbookStepSerializer(many=True, read_only=True)
    updated_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Runbook
        fields = ["id", "layer", "metric", "title", "steps", "updated_by", "updated_at"]
        read_only_fields = fields


class RunbookVersionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    at = serializers.DateTimeField()
    by = serializers.CharField()
    reason = serializers.CharField()
    kind = serializers.CharField(help_text="created | changed")
    title = serializers.CharField()
    steps = RunbookStepSerializer(many=True)


class RunbookDetailSerializer(RunbookSerializer):
    history = serializers.SerializerMethodField()

    class Meta(RunbookSerializer.Meta):
        fields = [*RunbookSerializer.Meta.fields, "history"]
        read_only_fields = fields

    @extend_schema_field(RunbookVersionSerializer(many=True))
    def get_history(self, runbook: Runbook) -> list[dict[str, Any]]:
        """Every saved version, newest first."""
        versions = selectors.runbook_history(runbook)
        return RunbookVersionSerializer(versions, many=True).data


class RunbookInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    # blanks pass here so the service answers every field's problem at once
    title = serializers.CharField(max_length=200, allow_blank=True)
    steps = RunbookStepSerializer(many=True, help_text="1 to 20 steps, each with a title and "
                                  "the evidence it needs.")  # fmt: skip
    reason = serializers.CharField(
        max_length=500, allow_blank=True, help_text="Why it changes (kept in history)."
    )
