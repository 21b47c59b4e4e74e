"""Outcome and override endpoints: input serializer → service → answer. Service accounts only.

Answers: 201 recorded, 200 already on record (a safe replay), 400 malformed, 403 a model the
token does not serve, 404 no such event among the token's models, 409 a conflict (a different
outcome without ``correction``, an ambiguous case key, an override of a case that did not act).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import outcomes
from monitoring.api.outcome_serializers import (
    OutcomeBulkResultSerializer,
    OutcomeInSerializer,
    OutcomeSerializer,
    OverrideInSerializer,
    OverrideSerializer,
)
from monitoring.api.views import error_body, service_account_of
from monitoring.gate import MAX_BULK, GateError
from monitoring.models import Outcome

ERRORS = {
    code: OpenApiResponse(description=text)
    for code, text in {
        400: "Malformed, or a label, time or reason the service refuses (field messages).",
        403: "Not a model service's token, or a model this token does not serve.",
        404: "No such event among this token's models.",
        409: "Conflicts with what is on record.",
    }.items()
}


def _status(created: bool) -> int:
    return status.HTTP_201_CREATED if created else status.HTTP_200_OK


class OutcomeView(APIView):
    """Record the observed outcome (label) of one prediction."""

    allow_service_accounts = True
    required_perms = {"POST": ["monitoring.add_outcome"]}

    @extend_schema(
        request=OutcomeInSerializer,
        responses={201: OutcomeSerializer, 200: OutcomeSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        account = service_account_of(request, may="report outcomes and overrides")
        serializer = OutcomeInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = outcomes.outcome_record(account=account, **serializer.validated_data)
        except GateError as error:
            return Response(error_body(error), status=error.status)
        return Response(OutcomeSerializer(result.outcome).data, status=_status(result.created))


class OutcomeBulkView(APIView):
    """Record up to 10,000 outcomes. Each item is answered on its own (valid ones are stored
    even when others fail); the whole request is safe to retry."""

    allow_service_accounts = True
    required_perms = {"POST": ["monitoring.add_outcome"]}

    @extend_schema(
        request=OutcomeInSerializer(many=True),
        responses={200: OutcomeBulkResultSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        account = service_account_of(request, may="report outcomes and overrides")
        body = request.data
        if not isinstance(body, list):
            raise ValidationError({"detail": ["Send a JSON array of outcomes."]})
        if not body:
            raise ValidationError({"detail": ["The array is empty."]})
        if len(body) > MAX_BULK:
            raise ValidationError({"detail": [f"At most {MAX_BULK} outcomes per request."]})
        results: list[dict[str, Any] | None] = [None] * len(body)
        valid: list[tuple[int, outcomes.OutcomeIn]] = []
        shape = OutcomeInSerializer()  # one instance: its fields are built once, not per item
        for index, raw in enumerate(body):
            try:
                valid.append((index, outcomes.OutcomeIn(**shape.run_validation(raw))))
            except ValidationError as exc:
                results[index] = _refused(index, 400, "invalid", exc.detail)
        recorded = outcomes.outcomes_record(account=account, items=[item for _, item in valid])
        rendered = _rendered([r.outcome for r in recorded if r.outcome is not None])
        for (index, _), result in zip(valid, recorded, strict=True):
            results[index] = _item_result(index, result, rendered)
        done = [r for r in results if r is not None]
        return Response({"results": done, "summary": _summary(done)})


def _refused(index: int, code_status: int, code: str, errors: Any) -> dict[str, Any]:
    return {"index": index, "status": code_status, "code": code, "errors": errors}


def _rendered(rows: list[Outcome]) -> dict[int, Any]:
    """Every recorded outcome rendered in one pass (a serializer per row costs a millisecond)."""
    return {row["id"]: row for row in OutcomeSerializer(rows, many=True).data}


def _item_result(index: int, result: outcomes.Recorded, rendered: dict[int, Any]) -> dict[str, Any]:
    if result.error is not None:
        error: GateError = result.error
        return _refused(index, error.status, error.code, error.errors)
    assert result.outcome is not None
    return {
        "index": index,
        "status": _status(result.created),
        "outcome": rendered[result.outcome.pk],
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, int]:
    summary = {"stored": 0, "corrections": 0, "replayed": 0, "rejected": 0}
    for result in results:
        if "outcome" not in result:
            summary["rejected"] += 1
        elif result["status"] == status.HTTP_200_OK:
            summary["replayed"] += 1
        else:
            summary["stored"] += 1
            summary["corrections"] += result["outcome"]["corrects"] is not None
    return summary


class OverrideView(APIView):
    """Report that a clinician overrode a prediction the model acted on."""

    allow_service_accounts = True
    required_perms = {"POST": ["monitoring.add_override"]}

    @extend_schema(
        request=OverrideInSerializer,
        responses={201: OverrideSerializer, 200: OverrideSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        account = service_account_of(request, may="report outcomes and overrides")
        serializer = OverrideInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            override, created = outcomes.override_record(
                account=account, **serializer.validated_data
            )
        except GateError as error:
            return Response(error_body(error), status=error.status)
        return Response(OverrideSerializer(override).data, status=_status(created))
