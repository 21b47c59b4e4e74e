"""Audit API output. The trail is read-only: there is no input serializer."""

from __future__ import annotations

from rest_framework import serializers

from governance.audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "seq",
            "occurred_at",
            "actor",
            "actor_id",
            "actor_role",
            "action",
            "object_type",
            "object_id",
            "summary",
            "payload",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


class ChainVerdictSerializer(serializers.Serializer):
    """``governance.audit.chain.Verdict``: whole, or where the chain first breaks."""

    ok = serializers.BooleanField()
    count = serializers.IntegerField(help_text="Events verified before the first break.")
    broken_seq = serializers.IntegerField(
        allow_null=True, help_text="Sequence number of the first broken event, if any."
    )
    reason = serializers.CharField(allow_blank=True)
    last_hash = serializers.CharField(help_text="Hash of the last verified event.")
