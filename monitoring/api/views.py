"""The gate's endpoints: input serializer → gate → answer. Only service accounts call them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import gate
from monitoring.api.serializers import (
    AnswerSerializer,
    BulkResultSerializer,
    PredictionInSerializer,
    fast_prediction,
)


def service_account_of(request: Request, *, may: str = "log predictions") -> Any:
    """The model service behind the request's token; people get a 403 saying who may."""
    account = getattr(request.user, "service_account", None)
    if account is None:
        raise PermissionDenied(f"Only a model service's token may {may}.")
    return account


def error_body(error: gate.GateError) -> dict[str, Any]:
    return {"code": error.code, **error.errors}


class PredictionView(APIView):
    """Log one prediction and get the gate's answer: act, defer (with reasons) or shadow.

    The URL serves ``monitoring.api.fast.prediction``, which answers the plain request itself
    and hands every other one to this view."""

    allow_service_accounts = True
    required_perms = {"POST": ["monitoring.add_predictionevent"]}

    @extend_schema(
        request=PredictionInSerializer, responses={201: AnswerSerializer, 200: AnswerSerializer}
    )
    def post(self, request: Request) -> Response:
        account = service_account_of(request)
        serializer = PredictionInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        (outcome,) = gate.gate_predictions(account=account, items=[serializer.to_prediction()])
        if outcome.error is not None:
            return Response(error_body(outcome.error), status=outcome.error.status)
        assert outcome.answer is not None
        code = status.HTTP_200_OK if outcome.answer.replayed else status.HTTP_201_CREATED
        return Response(outcome.answer.as_dict(), status=code)


class PredictionBulkView(APIView):
    """Log up to 10,000 predictions. Each item is answered on its own (valid ones are stored
    even when others fail); the whole request is safe to retry."""

    allow_service_accounts = True
    required_perms = {"POST": ["monitoring.add_predictionevent"]}

    @extend_schema(request=PredictionInSerializer(many=True), responses=BulkResultSerializer)
    def post(self, request: Request) -> Response:
        account = service_account_of(request)
        body = request.data
        if not isinstance(body, list):
            raise ValidationError({"detail": ["Send a JSON array of predictions."]})
        if not body:
            raise ValidationError({"detail": ["The array is empty."]})
        if len(body) > gate.MAX_BULK:
            raise ValidationError({"detail": [f"At most {gate.MAX_BULK} predictions per request."]})
        results: list[dict[str, Any] | None] = [None] * len(body)
        valid: list[tuple[int, gate.PredictionIn]] = []
        for index, raw in enumerate(body):
            # The plainly valid item skips DRF (~20x faster); the serializer decides the rest.
            item = fast_prediction(raw)
            if item is not None:
                valid.append((index, item))
                continue
            serializer = PredictionInSerializer(data=raw)
            if serializer.is_valid():
                valid.append((index, serializer.to_prediction()))
            else:
                results[index] = {
                    "index": index,
                    "status": 400,
                    "code": "invalid",
                    "errors": serializer.errors,
                }
        outcomes = gate.gate_predictions(account=account, items=[item for _, item in valid])
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            if outcome.error is not None:
                results[index] = {
                    "index": index,
                    "status": outcome.error.status,
                    "code": outcome.error.code,
                    "errors": outcome.error.errors,
                }
            else:
                assert outcome.answer is not None
                results[index] = {
                    "index": index,
                    "status": 200 if outcome.answer.replayed else 201,
                    "answer": outcome.answer.as_dict(),
                }
        return Response({"results": results, "summary": _summary(results)})


def _summary(results: list[dict[str, Any] | None]) -> dict[str, int]:
    summary = {"stored": 0, "replayed": 0, "rejected": 0, "act": 0, "defer": 0, "shadow": 0}
    for result in results:
        assert result is not None
        if "answer" in result:
            summary["stored" if result["status"] == 201 else "replayed"] += 1
            summary[result["answer"]["action"]] += 1
        else:
            summary["rejected"] += 1
    return summary
