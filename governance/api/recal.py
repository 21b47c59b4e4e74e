"""Update API: a model's written update policy (GET / PUT) and the update ladder's
recommendations (list, detail, POST to run one). Writes are input serializer → service →
output serializer; the service's ``ValidationError`` is a 400 with field messages and its
``PermissionDenied`` a 403."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import recalibration as svc
from governance.models import Recommendation, UpdatePolicy
from registry.api.serializers import SiteCodeField, StrictFieldsMixin, UsernameField, validate_input
from registry.models import ClinicalModel

# --- serializers ------------------------------------------------------------------------------


class UpdatePolicySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    retraining_owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    updated_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = UpdatePolicy
        fields = [
            "model", "triggers", "retraining_owner", "validation_requirements", "approval_gates",
            "permitted_data", "leakage_controls", "min_window_events", "updated_at", "updated_by",
        ]  # fmt: skip
        read_only_fields = fields


class UpdatePolicyInputSerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    """Every field is optional on a change; a new policy needs all but the minimum window.
    The service checks the values (triggers, texts, the owner's role, the minimum)."""

    triggers = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text=f"Trigger → note. Triggers: {', '.join(svc.TRIGGERS)}.",
    )
    retraining_owner = UsernameField(required=False)
    validation_requirements = serializers.CharField(required=False, allow_blank=True)
    approval_gates = serializers.CharField(required=False, allow_blank=True)
    permitted_data = serializers.CharField(required=False, allow_blank=True)
    leakage_controls = serializers.CharField(required=False, allow_blank=True)
    min_window_events = serializers.IntegerField(required=False)


class RecommendationSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    version = serializers.SlugRelatedField(slug_field="version", read_only=True)
    site = serializers.SlugRelatedField(slug_field="code", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    release = serializers.PrimaryKeyRelatedField(read_only=True)
    level = serializers.CharField(
        read_only=True, help_text="no_change | intercept | logistic | refit | insufficient"
    )

    class Meta:
        model = Recommendation
        fields = [
            "id", "model", "version", "site", "window_start", "window_end", "n", "events",
            "level", "statistics", "created_at", "created_by", "release",
        ]  # fmt: skip
        read_only_fields = fields


class RecommendInputSerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    start = serializers.DateField()
    end = serializers.DateField()
    site = SiteCodeField(required=False, allow_null=True)


# --- views ----------------------------------------------------------------------------------


def _model(slug: str) -> ClinicalModel:
    return get_object_or_404(ClinicalModel, slug=slug)


class UpdatePolicyView(APIView):
    """A model's written recalibration and retraining policy."""

    required_perms = {
        "GET": ["governance.view_updatepolicy"],
        "PUT": ["governance.change_updatepolicy"],
    }

    @extend_schema(responses={200: UpdatePolicySerializer})
    def get(self, request: Request, slug: str) -> Response:
        policy = get_object_or_404(UpdatePolicy, model__slug=slug)
        return Response(UpdatePolicySerializer(policy).data)

    @extend_schema(request=UpdatePolicyInputSerializer, responses={200: UpdatePolicySerializer})
    def put(self, request: Request, slug: str) -> Response:
        """Write or change the policy (fields left out keep their value)."""
        model = _model(slug)
        data = validate_input(UpdatePolicyInputSerializer, request.data)
        policy = svc.update_policy_save(actor=request.user, model=model, fields=data)
        return Response(UpdatePolicySerializer(policy).data)


class RecommendationListView(APIView):
    """The update ladder's recommendations for a model, newest first; POST runs a new one."""

    required_perms = {
        "GET": ["governance.view_recommendation"],
        "POST": ["governance.add_recommendation"],
    }

    @extend_schema(responses={200: RecommendationSerializer(many=True)})
    def get(self, request: Request, slug: str) -> Response:
        rows = svc.recommendations_of(_model(slug))
        return Response(RecommendationSerializer(rows, many=True).data)

    @extend_schema(request=RecommendInputSerializer, responses={201: RecommendationSerializer})
    def post(self, request: Request, slug: str) -> Response:
        model = _model(slug)
        data: dict[str, Any] = validate_input(RecommendInputSerializer, request.data)
        rec = svc.recommend(
            actor=request.user, model=model, start=data["start"], end=data["end"],
            site=data.get("site"),
        )  # fmt: skip
        return Response(RecommendationSerializer(rec).data, status=status.HTTP_201_CREATED)


class RecommendationDetailView(APIView):
    required_perms = {"GET": ["governance.view_recommendation"]}

    @extend_schema(responses={200: RecommendationSerializer})
    def get(self, request: Request, slug: str, pk: int) -> Response:
        rec = get_object_or_404(Recommendation, model__slug=slug, pk=pk)
        return Response(RecommendationSerializer(rec).data)


urlpatterns = [
    path(
        "models/<slug:slug>/update-policy/",
        UpdatePolicyView.as_view(),
        name="update-policy-api",
    ),
    path(
        "models/<slug:slug>/recommendations/",
        RecommendationListView.as_view(),
        name="recommendation-list-api",
    ),
    path(
        "models/<slug:slug>/recommendations/<int:pk>/",
        RecommendationDetailView.as_view(),
        name="recommendation-detail-api",
    ),
]
