"""Registry API. Reads are declarative viewsets; every write is input serializer → service →
output serializer, so the API, the pages and the management commands share one set of rules,
one history and one audit trail.

Each view declares ``required_perms`` (see ``accounts.permissions.RolePermission``); actions
override it for their own method. Service accounts are refused everywhere here.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import AnyOf
from registry import services
from registry.api import serializers as s
from registry.api.filters import ClinicalModelFilter, DeploymentFilter
from registry.models import (
    ClinicalModel,
    DataFeed,
    Deployment,
    DeploymentMode,
    ModelVersion,
    Site,
)


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


# List and retrieve are declarative; each subclass adds its writes as explicit service calls.
class ReadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    pagination_class = Pagination
    required_perms: dict[str, list[str]] = {}


def _created(payload: Any) -> Response:
    return Response(payload, status=status.HTTP_201_CREATED)


# --- Clinical models ------------------------------------------------------------------------


class ClinicalModelViewSet(ReadViewSet):
    """Registered clinical models and their scope. A change to a model's record needs a
    ``reason``, kept in its history and the audit trail; the slug never changes."""

    queryset = ClinicalModel.objects.select_related("clinical_owner", "technical_owner")
    serializer_class = s.ClinicalModelSerializer
    lookup_field = "slug"
    filterset_class = ClinicalModelFilter
    ordering_fields = ["name", "slug", "risk_tier", "status", "created_at"]
    required_perms = {
        "read": ["registry.view_clinicalmodel"],
        "POST": ["registry.add_clinicalmodel"],
        "PATCH": ["registry.change_clinicalmodel"],
    }

    @extend_schema(
        request=s.ClinicalModelInputSerializer, responses={201: s.ClinicalModelSerializer}
    )
    def create(self, request: Request) -> Response:
        fields = s.validate_input(s.ClinicalModelInputSerializer, request.data)
        model = services.model_register(actor=request.user, fields=fields)
        return _created(self.get_serializer(model).data)

    @extend_schema(request=s.ClinicalModelUpdateSerializer, responses=s.ClinicalModelSerializer)
    def partial_update(self, request: Request, slug: str) -> Response:
        model = self.get_object()
        fields = s.validate_input(s.ClinicalModelUpdateSerializer, request.data, partial=True)
        reason = fields.pop("reason")
        model = services.model_update(actor=request.user, model=model, fields=fields, reason=reason)
        return Response(self.get_serializer(model).data)


# --- Versions -------------------------------------------------------------------------------


@extend_schema(
    parameters=[
        OpenApiParameter(
            "model_slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The model's slug."
        )
    ]
)
class ModelVersionViewSet(ReadViewSet):
    """Versions of one model, each with its feature spec and cohort columns. A version is
    registered whole (features and cohorts in the same body) or not at all, and is never
    edited afterwards: only its status moves, through ``transition``."""

    serializer_class = s.ModelVersionSerializer
    lookup_field = "version"
    lookup_value_regex = r"[0-9A-Za-z][0-9A-Za-z.+_-]*"
    ordering_fields = ["created_at", "version", "status"]
    filterset_fields = ["status"]
    required_perms = {
        "read": ["registry.view_modelversion"],
        "POST": ["registry.add_modelversion"],
    }

    def clinical_model(self) -> ClinicalModel:
        slug = self.kwargs["model_slug"]
        model = ClinicalModel.objects.filter(slug=slug).first()
        if model is None:
            raise NotFound(f"No model {slug!r} is registered.")
        return model

    def get_queryset(self) -> QuerySet[ModelVersion]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no URL kwargs
            return ModelVersion.objects.none()
        return (
            ModelVersion.objects.filter(model=self.clinical_model())
            .select_related("model", "created_by")
            .prefetch_related("features__feed", "cohorts")
            .order_by("-created_at")
        )

    @extend_schema(request=s.ModelVersionInputSerializer, responses={201: s.ModelVersionSerializer})
    def create(self, request: Request, model_slug: str) -> Response:
        model = self.clinical_model()
        fields = s.validate_input(s.ModelVersionInputSerializer, request.data)
        features, cohorts = fields.pop("features"), fields.pop("cohorts", [])
        version = services.version_register(
            actor=request.user, model=model, fields=fields, features=features, cohorts=cohorts
        )
        return _created(self.get_serializer(version).data)

    @extend_schema(request=s.VersionTransitionSerializer, responses=s.ModelVersionSerializer)
    @action(
        detail=True,
        methods=["post"],
        required_perms={
            "POST": [AnyOf(("registry.change_modelversion", "registry.approve_modelversion"))]
        },
    )
    def transition(self, request: Request, model_slug: str, version: str) -> Response:
        """Move the version to another status (draft → candidate → approved, or retired)."""
        target = self.get_object()
        body = s.validate_input(s.VersionTransitionSerializer, request.data)
        target = services.version_transition(
            actor=request.user, version=target, to_status=body["status"], reason=body["reason"]
        )
        return Response(self.get_serializer(target).data)


# --- Sites and feeds ------------------------------------------------------------------------


class SiteViewSet(ReadViewSet):
    """Hospitals and clinics where models are deployed, named by code."""

    queryset = Site.objects.all()
    serializer_class = s.SiteSerializer
    lookup_field = "code"
    lookup_value_regex = r"[A-Za-z0-9][A-Za-z0-9_-]*"
    filterset_fields = ["is_active"]
    ordering_fields = ["code", "name"]
    required_perms = {"read": ["registry.view_site"], "POST": ["registry.add_site"]}

    @extend_schema(request=s.SiteInputSerializer, responses={201: s.SiteSerializer})
    def create(self, request: Request) -> Response:
        body = s.validate_input(s.SiteInputSerializer, request.data)
        site = services.site_create(actor=request.user, code=body["code"], name=body["name"])
        return _created(self.get_serializer(site).data)


class DataFeedViewSet(ReadViewSet):
    """Upstream data feeds that model features come from."""

    queryset = DataFeed.objects.select_related("owner")
    serializer_class = s.DataFeedSerializer
    lookup_field = "slug"
    filterset_fields = ["source_system"]
    ordering_fields = ["slug", "name"]
    required_perms = {"read": ["registry.view_datafeed"], "POST": ["registry.add_datafeed"]}

    @extend_schema(request=s.DataFeedInputSerializer, responses={201: s.DataFeedSerializer})
    def create(self, request: Request) -> Response:
        fields = s.validate_input(s.DataFeedInputSerializer, request.data)
        feed = services.datafeed_create(actor=request.user, fields=fields)
        return _created(self.get_serializer(feed).data)


# --- Deployments ----------------------------------------------------------------------------


class DeploymentViewSet(ReadViewSet):
    """Versions running at sites. Never overwritten: starting a new live version at a site
    ends the previous one, which stays on record with its end time."""

    queryset = Deployment.objects.select_related(
        "model", "version", "site", "started_by", "ended_by"
    )
    serializer_class = s.DeploymentSerializer
    lookup_value_regex = r"\d+"
    filterset_class = DeploymentFilter
    ordering_fields = ["started_at", "ended_at"]
    required_perms = {
        "read": ["registry.view_deployment"],
        "POST": ["registry.add_deployment"],
    }

    @extend_schema(request=s.DeploymentInputSerializer, responses={201: s.DeploymentSerializer})
    def create(self, request: Request) -> Response:
        body = s.validate_input(s.DeploymentInputSerializer, request.data)
        deployment = services.deployment_start(actor=request.user, **body)
        return _created(self.get_serializer(deployment).data)

    @extend_schema(request=s.ReasonSerializer, responses=s.DeploymentSerializer)
    @action(detail=True, methods=["post"], required_perms={"POST": ["registry.change_deployment"]})
    def end(self, request: Request, pk: str) -> Response:
        """End the deployment; it stays on record with its end time."""
        body = s.validate_input(s.ReasonSerializer, request.data)
        deployment = services.deployment_end(
            actor=request.user, deployment=self.get_object(), reason=body["reason"]
        )
        return Response(self.get_serializer(deployment).data)

    @extend_schema(request=s.ReasonSerializer, responses=s.DeploymentSerializer)
    @action(detail=True, methods=["post"], required_perms={"POST": ["registry.freeze_deployment"]})
    def freeze(self, request: Request, pk: str) -> Response:
        """The kill switch: the gate defers every case of a frozen deployment to a human."""
        return self._set_frozen(request, frozen=True)

    @extend_schema(request=s.ReasonSerializer, responses=s.DeploymentSerializer)
    @action(detail=True, methods=["post"], required_perms={"POST": ["registry.freeze_deployment"]})
    def unfreeze(self, request: Request, pk: str) -> Response:
        return self._set_frozen(request, frozen=False)

    def _set_frozen(self, request: Request, *, frozen: bool) -> Response:
        body = s.validate_input(s.ReasonSerializer, request.data)
        deployment = services.deployment_set_frozen(
            actor=request.user, deployment=self.get_object(), frozen=frozen, reason=body["reason"]
        )
        return Response(self.get_serializer(deployment).data)

    @extend_schema(
        parameters=[s.LiveQuerySerializer],
        responses={
            200: s.DeploymentSerializer,
            400: OpenApiResponse(description="Missing or malformed model, site or at."),
            404: OpenApiResponse(description="No live deployment of the model there at that time."),
        },
    )
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def live(self, request: Request) -> Response:
        """Which version was live for a model at a site at a given moment: the exact
        deployment, since deployments are never overwritten."""
        query = s.validate_input(s.LiveQuerySerializer, request.query_params)
        model, site, at = query["model"], query["site"], query["at"]
        deployment = (
            self.get_queryset()
            .live_at(site=site, model=model, at=at)
            .filter(mode=DeploymentMode.LIVE)
            .order_by("-started_at")
            .first()
        )
        if deployment is None:
            raise NotFound(
                f"No version of {model.slug} was live at {site.code} at {at.isoformat()}."
            )
        return Response(self.get_serializer(deployment).data)
