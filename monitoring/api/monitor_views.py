"""Monitoring engine API: metric results (filtered), reference profiles (list, upload) and
a model's monitoring policy (read, replace)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import monitor_policy
from monitoring.api.monitor_serializers import (
    MetricResultSerializer,
    MonitorPolicySerializer,
    ReferenceProfileSerializer,
    ReferenceUploadSerializer,
)
from monitoring.models import Band, Layer, MetricResult, MonitorPolicy, ReferenceProfile
from monitoring.reference import ReferenceProblem, upload_from_django_file
from registry.api.serializers import validate_input
from registry.api.views import Pagination
from registry.models import ClinicalModel, ModelVersion


class MetricResultFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(field_name="model__slug", help_text="Model slug.")
    version = django_filters.CharFilter(field_name="version__version", help_text="Version.")
    site = django_filters.CharFilter(field_name="site__code", help_text="Site code.")
    slice = django_filters.CharFilter(
        field_name="slice_key", help_text="all, site=CODE or <cohort column>=<value>."
    )
    metric = django_filters.CharFilter(
        method="filter_metric", help_text="psi (every feature's) or psi:lactate (one)."
    )
    layer = django_filters.ChoiceFilter(choices=Layer.choices)
    band = django_filters.MultipleChoiceFilter(choices=Band.choices)
    window = django_filters.NumberFilter(field_name="window_days", help_text="Window in days.")
    window_end = django_filters.DateFilter(help_text="The window's last day (YYYY-MM-DD).")
    since = django_filters.DateFilter(field_name="window_end", lookup_expr="gte")
    until = django_filters.DateFilter(field_name="window_end", lookup_expr="lte")
    latest = django_filters.BooleanFilter(
        method="filter_latest", help_text="Only the newest window end of each model."
    )

    class Meta:
        model = MetricResult
        fields: list[str] = []

    def filter_metric(self, qs: QuerySet[MetricResult], name: str, value: str) -> Any:
        if ":" in value:
            return qs.filter(metric=value)
        return qs.filter(Q(metric=value) | Q(metric__startswith=f"{value}:"))

    def filter_latest(self, qs: QuerySet[MetricResult], name: str, value: bool) -> Any:
        if not value:
            return qs
        ends = {}
        for model_id, end in (
            MetricResult.objects.order_by("model_id", "-window_end")
            .values_list("model_id", "window_end")
            .distinct()
        ):
            ends.setdefault(model_id, end)
        q = Q(pk__in=[])
        for model_id, end in ends.items():
            q |= Q(model_id=model_id, window_end=end)
        return qs.filter(q)


class MetricResultListView(generics.ListAPIView):  # type: ignore[type-arg]
    """Banded metric results: each with its window, slice, value, interval, n and band."""

    serializer_class = MetricResultSerializer
    pagination_class = Pagination
    filterset_class = MetricResultFilter
    required_perms = {"read": ["monitoring.view_metricresult"]}
    queryset = MetricResult.objects.select_related("model", "version", "site").order_by(
        "-window_end", "model__slug", "slice_key", "metric", "window_days"
    )


PATH = [
    OpenApiParameter("model_slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="Model."),
    OpenApiParameter("version", OpenApiTypes.STR, OpenApiParameter.PATH, description="Version."),
]


def _version(slug: str, number: str) -> ModelVersion:
    found = ModelVersion.objects.select_related("model").filter(model__slug=slug, version=number)
    version = found.first()
    if version is None:
        raise NotFound(f"No version {number!r} of a model {slug!r}.")
    return version


@extend_schema(parameters=PATH)
class ReferenceProfileListView(generics.ListAPIView):  # type: ignore[type-arg]
    """A version's reference profiles, newest (in force) first; ``POST`` uploads a file."""

    serializer_class = ReferenceProfileSerializer
    pagination_class = Pagination
    filter_backends: list[Any] = []
    parser_classes = [MultiPartParser, FormParser]
    required_perms = {
        "read": ["monitoring.view_referenceprofile"],
        "POST": ["monitoring.add_referenceprofile"],
    }

    def get_queryset(self) -> QuerySet[ReferenceProfile]:
        if getattr(self, "swagger_fake_view", False):
            return ReferenceProfile.objects.none()
        version = _version(self.kwargs["model_slug"], self.kwargs["version"])
        return (
            ReferenceProfile.objects.filter(version=version)
            .select_related("version__model", "uploaded_by")
            .order_by("-number")
        )

    @extend_schema(
        request={"multipart/form-data": ReferenceUploadSerializer},
        responses={201: ReferenceProfileSerializer},
    )
    def post(self, request: Request, model_slug: str, version: str) -> Response:
        target = _version(model_slug, version)
        data = validate_input(ReferenceUploadSerializer, request.data)
        try:
            profile = upload_from_django_file(
                actor=request.user, version=target, uploaded=data["file"], note=data["note"]
            )
        except ReferenceProblem as exc:
            raise ValidationError({"file": exc.problems}) from exc
        body = ReferenceProfileSerializer(profile, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(
    parameters=[
        OpenApiParameter("model_slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="Model")
    ]
)
class MonitorPolicyView(APIView):
    """A model's monitoring policy in force (the documented defaults until one is saved);
    ``PUT`` replaces it whole, with a reason (kept in its history)."""

    required_perms = {
        "read": ["monitoring.view_monitorpolicy"],
        "PUT": ["monitoring.change_monitorpolicy"],
    }

    def _model(self, slug: str) -> ClinicalModel:
        model = ClinicalModel.objects.filter(slug=slug).first()
        if model is None:
            raise NotFound(f"No model {slug!r}.")
        return model

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, model_slug: str) -> Response:
        model = self._model(model_slug)
        policy = MonitorPolicy.objects.filter(model=model).first()
        body = monitor_policy.as_dict(model, policy)
        body["metrics"] = [
            {
                "metric": r.metric, "layer": r.layer, "direction": r.direction,
                "yellow": r.yellow, "orange": r.orange, "red": r.red, "min_n": r.min_n,
                "in_force": r.in_force, "in_launch": r.in_launch, "source": r.source,
            }
            for r in monitor_policy.policy_rows(model, policy)
        ]  # fmt: skip
        return Response(body)

    @extend_schema(request=MonitorPolicySerializer, responses={200: OpenApiTypes.OBJECT})
    def put(self, request: Request, model_slug: str) -> Response:
        model = self._model(model_slug)
        data = validate_input(MonitorPolicySerializer, request.data)
        try:
            policy = monitor_policy.monitor_policy_save(actor=request.user, model=model, **data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        return Response(monitor_policy.as_dict(model, policy))
