"""Deferral policy shapes. The input is a whole policy (nothing is carried over silently from
the one in force); ``monitoring.policies`` validates the rules and owns the numbering."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from monitoring import rules
from monitoring.api.serializers import FiniteFloatField
from monitoring.models import DeferralPolicy
from registry.api.serializers import StrictFieldsMixin


class DeferralPolicyInputSerializer(StrictFieldsMixin, serializers.Serializer):
    min_confidence = FiniteFloatField(
        allow_null=True, help_text="Defer below this model confidence (0–1); null: no such rule."
    )
    threshold_margin = FiniteFloatField(
        allow_null=True,
        help_text="Defer when the score is this close to a decision threshold; null: no rule.",
    )
    population_exclusions = serializers.ListField(
        child=serializers.JSONField(),
        allow_empty=True,
        help_text='Cases outside the intended population: [{"code", "text", "condition"}].',
    )
    safety_rules = serializers.ListField(
        child=serializers.JSONField(),
        allow_empty=True,
        help_text='Conditions that always defer: [{"code", "text", "condition"}].',
    )
    reason = serializers.CharField(max_length=300, help_text="Why the rules change.")
    based_on = serializers.IntegerField(
        min_value=0,
        required=False,
        help_text="The policy number this edit starts from (0: none); refused if another "
        "edit was saved since.",
    )


class RuleSerializer(serializers.Serializer):
    code = serializers.CharField()
    text = serializers.CharField()
    condition = serializers.JSONField()
    in_words = serializers.SerializerMethodField()

    def get_in_words(self, rule: dict[str, Any]) -> str:
        return rules.describe(rule["condition"])


class DeferralPolicySerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="version.model.slug")
    version = serializers.CharField(source="version.version")
    population_exclusions = RuleSerializer(many=True)
    safety_rules = RuleSerializer(many=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    in_force = serializers.SerializerMethodField(help_text="The highest number is in force.")

    class Meta:
        model = DeferralPolicy
        fields = [
            "number",
            "model",
            "version",
            "in_force",
            "min_confidence",
            "threshold_margin",
            "population_exclusions",
            "safety_rules",
            "reason",
            "created_by",
            "created_at",
        ]

    def get_in_force(self, policy: DeferralPolicy) -> bool:
        return bool(policy.number == self.context.get("in_force"))
