"""RACI API, so a hospital's release pipeline can read and set who is responsible: GET the
health-system default or a model's effective matrix (each row with where it comes from), PUT
the rows the default or a model stores (rows left out inherit). Input serializer → service
(``governance.raci.raci_save``, the one validator) → output serializer.

Included under ``/api/v1/``: ``raci-default`` at ``raci/`` and ``raci-model`` at
``raci/<slug>/``.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import raci
from registry.api.serializers import StrictFieldsMixin, validate_input
from registry.models import ClinicalModel

PERMS = {"read": ["governance.view_racimatrix"], "PUT": ["governance.change_racimatrix"]}


class RaciRowSerializer(serializers.Serializer):  # type: ignore[type-arg]
    label = serializers.CharField(help_text="The activity in words.")
    A = serializers.CharField(help_text="The one Accountable party: role:<role> or user:<name>.")
    R = serializers.ListField(child=serializers.CharField(), help_text="Responsible parties.")
    C = serializers.ListField(child=serializers.CharField(), help_text="Consulted parties.")
    I = serializers.ListField(child=serializers.CharField(), help_text="Informed parties.")  # noqa: E741
    inherited = serializers.BooleanField(
        help_text="True when the matrix asked about does not store this row itself."
    )
    source = serializers.ChoiceField(
        choices=["model", "default", "builtin"],
        help_text="Where the row comes from: the model's matrix, the health-system default, or "
        "the built-in default.",
    )


class RaciMatrixSerializer(serializers.Serializer):  # type: ignore[type-arg]
    model = serializers.CharField(allow_null=True, help_text="Model slug; null: the default.")
    matrix = serializers.DictField(
        child=RaciRowSerializer(), help_text="Every activity's effective row."
    )
    updated_at = serializers.DateTimeField(allow_null=True)
    updated_by = serializers.CharField(allow_null=True)


class RaciSaveSerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    entries = serializers.DictField(
        child=serializers.JSONField(),
        allow_empty=True,
        help_text='The rows this matrix stores: {activity: {"A": party, "R": [party, ...], '
        '"C": [...], "I": [...]}}. Rows left out inherit; the whole set is replaced.',
    )
    reason = serializers.CharField(max_length=raci.REASON_MAX, help_text="Why it changes.")


def matrix_body(model: ClinicalModel | None) -> dict[str, Any]:
    stored = raci.matrix_of(model)
    rows = {
        activity: {"label": raci.ACTIVITIES[activity], **row}
        for activity, row in raci.effective(model).items()
    }
    return {
        "model": model.slug if model is not None else None,
        "matrix": rows,
        "updated_at": stored.updated_at if stored is not None else None,
        "updated_by": stored.updated_by.get_username()
        if stored is not None and stored.updated_by is not None
        else None,
    }


class _RaciView(APIView):
    required_perms = PERMS

    def model(self) -> ClinicalModel | None:
        return None

    def get(self, request: Request, **kwargs: Any) -> Response:
        return Response(RaciMatrixSerializer(matrix_body(self.model())).data)

    def put(self, request: Request, **kwargs: Any) -> Response:
        data = validate_input(RaciSaveSerializer, request.data)
        model = self.model()
        raci.raci_save(actor=request.user, model=model, entries=data["entries"],
                       reason=data["reason"])  # fmt: skip
        return Response(RaciMatrixSerializer(matrix_body(model)).data)


class RaciDefaultView(_RaciView):
    """The health-system default matrix, which every model inherits row by row."""

    @extend_schema(operation_id="raci_default_retrieve", responses=RaciMatrixSerializer)
    def get(self, request: Request, **kwargs: Any) -> Response:
        return super().get(request, **kwargs)

    @extend_schema(
        operation_id="raci_default_update",
        request=RaciSaveSerializer,
        responses=RaciMatrixSerializer,
    )
    def put(self, request: Request, **kwargs: Any) -> Response:
        """Replace the default's rows. Invalid rows are refused (400), each named."""
        return super().put(request, **kwargs)


class RaciModelView(_RaciView):
    """A model's effective matrix: its own rows, the rest inherited."""

    def model(self) -> ClinicalModel | None:
        return get_object_or_404(ClinicalModel, slug=self.kwargs["slug"])

    @extend_schema(operation_id="raci_model_retrieve", responses=RaciMatrixSerializer)
    def get(self, request: Request, **kwargs: Any) -> Response:
        return super().get(request, **kwargs)

    @extend_schema(
        operation_id="raci_model_update",
        request=RaciSaveSerializer,
        responses=RaciMatrixSerializer,
    )
    def put(self, request: Request, **kwargs: Any) -> Response:
        """Replace the rows the model stores. Invalid rows are refused (400), each named."""
        return super().put(request, **kwargs)


urlpatterns = [
    path("raci/", RaciDefaultView.as_view(), name="raci-default"),
    path("raci/<slug:slug>/", RaciModelView.as_view(), name="raci-model"),
]
