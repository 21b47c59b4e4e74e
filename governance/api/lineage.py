"""Decision lineage API: ``GET /api/v1/decisions/{event_id}/lineage/`` answers which version,
thresholds, deferral policy and signed release produced one logged prediction
(``governance.lineage``). Read-only; no case key and no feature value in the answer.

Readable by the audit roles for every event and by case viewers for the events of their sites;
any other event id is a 404, so the endpoint does not reveal which event ids exist.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import AnyOf
from governance import lineage


class LineageSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """The lineage of one event (``governance.lineage.lineage``)."""

    event_id = serializers.UUIDField()
    model = serializers.DictField()
    site = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    received_at = serializers.DateTimeField()
    mode = serializers.CharField(help_text="live | shadow")
    decision = serializers.DictField(
        help_text="action, judged score, raw score (before recalibration), confidence, and the "
        "reason codes with fixed labels"
    )
    version = serializers.DictField(help_text="the version with its artifact sha256")
    deployment = serializers.DictField(
        help_text="site, mode, started, whether frozen at the decision, the pinned configuration"
    )
    config = serializers.DictField(help_text="score mapping and thresholds the gate applied")
    policy = serializers.DictField(help_text="the deferral policy (number and rules) it named")
    release = serializers.DictField(
        allow_null=True,
        help_text="the signed release that started the deployment, with every signature "
        "manifestation; null when the deployment was started outside a release",
    )
    audit_events = serializers.ListField(child=serializers.DictField())


class LineageView(APIView):
    required_perms = {"read": [AnyOf((lineage.VIEW_AUDIT, lineage.VIEW_CASES))]}

    @extend_schema(operation_id="decision_lineage_retrieve", responses=LineageSerializer)
    def get(self, request: Request, event_id: Any) -> Response:
        """Which version, thresholds, deferral policy and signed release produced this
        decision. 404 when there is no such event or it is at a site you cannot see."""
        event = lineage.event_for_lineage(event_id)
        if event is None or not lineage.may_view(request.user, event):
            raise Http404("No prediction event with this id that you may see.")
        return Response(lineage.lineage(event))


urlpatterns = [
    path("decisions/<uuid:event_id>/lineage/", LineageView.as_view(), name="decision-lineage"),
]
