"""Deferral policy API: list (newest first), read one number, and create the next number.

Policies are never edited in place: ``POST`` puts a new, whole policy in force through
``monitoring.policies.policy_create``; earlier numbers stay readable forever.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from monitoring import policies
from monitoring.api.policy_serializers import (
    DeferralPolicyInputSerializer,
    DeferralPolicySerializer,
)
from monitoring.gate import policy_in_force
from monitoring.models import DeferralPolicy
from registry.api.serializers import validate_input
from registry.api.views import Pagination
from registry.models import ModelVersion

PATH = [
    OpenApiParameter("model_slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="Model."),
    OpenApiParameter("version", OpenApiTypes.STR, OpenApiParameter.PATH, description="Version."),
]
READ = ["monitoring.view_deferralpolicy"]


class _VersionPolicies(generics.GenericAPIView):  # type: ignore[type-arg]
    serializer_class = DeferralPolicySerializer
    filter_backends: list[Any] = []

    def model_version(self) -> ModelVersion:
        slug, version = self.kwargs["model_slug"], self.kwargs["version"]
        found = (
            ModelVersion.objects.select_related("model")
            .filter(model__slug=slug, version=version)
            .first()
        )
        if found is None:
            raise NotFound(f"No version {version!r} of a model {slug!r}.")
        return found

    def get_queryset(self) -> QuerySet[DeferralPolicy]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no URL kwargs
            return DeferralPolicy.objects.none()
        return (
            DeferralPolicy.objects.filter(version=self.model_version())
            .select_related("version__model", "created_by")
            .order_by("-number")
        )

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            current = policy_in_force(self.model_version().pk)
            context["in_force"] = current.number if current else None
        return context


@extend_schema(parameters=PATH)
class DeferralPolicyListView(mixins.ListModelMixin, _VersionPolicies):
    """A version's deferral policies, newest (in force) first; ``POST`` a whole new policy."""

    pagination_class = Pagination
    required_perms = {"read": READ, "POST": ["monitoring.add_deferralpolicy"]}

    def get(self, request: Request, model_slug: str, version: str) -> Response:
        return self.list(request)

    @extend_schema(request=DeferralPolicyInputSerializer, responses={201: DeferralPolicySerializer})
    def post(self, request: Request, model_slug: str, version: str) -> Response:
        target = self.model_version()
        fields = validate_input(DeferralPolicyInputSerializer, request.data)
        policy = policies.policy_create(actor=request.user, version=target, **fields)
        return Response(self.get_serializer(policy).data, status=status.HTTP_201_CREATED)


@extend_schema(
    parameters=[
        *PATH,
        OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH, description="Number."),
    ]
)
class DeferralPolicyDetailView(_VersionPolicies):
    """One numbered policy of a version, in force or not."""

    required_perms = {"read": READ}

    def get(self, request: Request, model_slug: str, version: str, number: int) -> Response:
        policy = self.get_queryset().filter(number=number).first()
        if policy is None:
            raise NotFound(f"{self.model_version()} has no deferral policy v{number}.")
        return Response(self.get_serializer(policy).data)
