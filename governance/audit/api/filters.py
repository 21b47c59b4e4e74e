"""Filters of the audit trail, shared by the API and the trail page."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters

from governance.audit.models import AuditEvent


class AuditEventFilter(filters.FilterSet):
    action = filters.CharFilter(label="Action, e.g. deployment.freeze")
    actor = filters.CharFilter(method="filter_actor", label="Actor (username or user id)")
    object_type = filters.CharFilter(label="Object type, e.g. registry.clinicalmodel")
    object_id = filters.CharFilter(label="Object id")
    since = filters.IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", label="At or after (ISO 8601)"
    )
    until = filters.IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="lt", label="Before (ISO 8601)"
    )

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "object_type", "object_id", "since", "until"]

    def filter_actor(
        self, queryset: QuerySet[AuditEvent], name: str, value: str
    ) -> QuerySet[AuditEvent]:
        # actor_label, not the user row: failed logins have a username but no user.
        match = Q(actor_label=value)
        if value.isdigit():
            match |= Q(actor_id=int(value))
        return queryset.filter(match)
