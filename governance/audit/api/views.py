"""Audit trail API: read-only events and chain verification."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from governance.audit.api.filters import AuditEventFilter
from governance.audit.api.serializers import AuditEventSerializer, ChainVerdictSerializer
from governance.audit.models import AuditEvent
from governance.audit.selectors import verify_stored_chain


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit trail, read-only. Events come oldest first (``seq``) unless ``ordering`` says
    otherwise: the trail only grows at the end, so earlier pages stay stable while a client
    pages through it."""

    queryset = AuditEvent.objects.order_by("seq")
    serializer_class = AuditEventSerializer
    lookup_field = "seq"
    lookup_value_regex = r"\d+"
    filterset_class = AuditEventFilter
    ordering_fields = ["seq", "occurred_at"]
    pagination_class = Pagination
    required_perms = {"read": ["audit.view_auditevent"]}

    @extend_schema(responses=ChainVerdictSerializer)
    @action(
        detail=False,
        methods=["get"],
        filter_backends=[],
        pagination_class=None,
        required_perms={"GET": ["audit.verify_auditevent"]},
    )
    def verify(self, request: Request) -> Response:
        """Recompute the whole hash chain and report whether it is intact, or where it breaks."""
        return Response(ChainVerdictSerializer(verify_stored_chain()).data)
