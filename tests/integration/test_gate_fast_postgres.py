"""The gate's PostgreSQL-only store paths: a lone event in one statement (no transaction), many
events with ``COPY`` (their review cases found by event id), and ``COPY``'s all-or-nothing
failure on a taken id falling back to one by one."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import ServiceAccount
from monitoring import gate
from monitoring.api.serializers import fast_prediction
from monitoring.models import PredictionEvent, ReviewCase
from registry import services as registry
from tests.monitoring.conftest import Gate

BAD = {"age": 64, "heart_rate": 400, "care_unit": "ward"}  # deferred: opens a review case
#: Columns that differ between two events of the same body sent under two ids.
OWN = {"id", "event_id", "received_at", "body_hash"}


def _client(gate_setup: Gate) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {gate_setup.token}")
    return client


def _items(gate_setup: Gate, bodies: list[dict[str, Any]]) -> list[gate.PredictionIn]:
    items = [fast_prediction(body) for body in bodies]
    assert all(item is not None for item in items)
    return items  # type: ignore[return-value]


def _columns(event_id: str) -> dict[str, Any]:
    row = PredictionEvent.objects.values().get(event_id=event_id)
    return {k: v for k, v in row.items() if k not in OWN}


def test_a_lone_event_is_one_insert_and_replays_alike(
    transactional_db: None, gate_setup: Gate
) -> None:
    client = _client(gate_setup)
    body = gate_setup.payload()
    client.post("/api/v1/predictions/", body, format="json")  # permissions, last used: warm
    body = gate_setup.payload()
    with CaptureQueriesContext(connection) as queries:
        first = client.post("/api/v1/predictions/", body, format="json")
    assert first.status_code == 201
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert statements == ["SELECT", "SELECT", "INSERT"], statements
    again = client.post("/api/v1/predictions/", body, format="json")
    assert again.status_code == 200 and again.json() == first.json()
    deferred = client.post("/api/v1/predictions/", gate_setup.payload(features=BAD), format="json")
    case = ReviewCase.objects.select_related("event").get(pk=deferred.json()["review_case_id"])
    assert str(case.event.event_id) == deferred.json()["event_id"]
    assert case.history.get().history_user == ServiceAccount.objects.get().user


def test_copy_stores_what_a_single_insert_stores(transactional_db: None, gate_setup: Gate) -> None:
    account = ServiceAccount.objects.get()
    bodies = [
        gate_setup.payload(case_key=f"case-{i}", features=BAD if i % 3 == 0 else None)
        for i in range(30)
    ]
    for body in bodies:
        if body["features"] is None:
            body["features"] = {
                "age": 60 + len(body["case_key"]),
                "heart_rate": 90,
                "care_unit": "icu",
            }
    outcomes = gate.gate_predictions(account=account, items=_items(gate_setup, bodies))
    assert all(o.answer is not None and not o.answer.replayed for o in outcomes)
    for body, outcome in zip(bodies, outcomes, strict=True):
        answer = outcome.answer
        assert answer is not None and str(answer.event_id) == body["event_id"]
        if answer.action == "defer":
            case = ReviewCase.objects.select_related("event").get(pk=answer.review_case_id)
            assert str(case.event.event_id) == body["event_id"]
            assert case.urgency == body["score"] and case.site_id == gate_setup.site.pk
            assert case.history.get().history_change_reason == "deferred by the gate"
        else:
            assert answer.review_case_id is None
    assert ReviewCase.objects.count() == 10
    # The same bodies under new ids, one by one (INSERT): every column alike.
    for body in bodies[:6]:
        twin = dict(body, event_id=str(uuid.uuid4()))
        (single,) = gate.gate_predictions(account=account, items=_items(gate_setup, [twin]))
        assert single.answer is not None
        assert _columns(twin["event_id"]) == _columns(body["event_id"])
        first = outcomes[bodies.index(body)].answer
        assert first is not None and single.answer.reasons == first.reasons


def test_a_taken_id_fails_copy_and_each_item_gets_its_true_answer(
    transactional_db: None, gate_setup: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = ServiceAccount.objects.get()
    bodies = [gate_setup.payload(case_key=f"case-{i}", features=BAD) for i in range(5)]
    (stored,) = gate.gate_predictions(account=account, items=_items(gate_setup, bodies[1:2]))
    plain = gate._replays

    def blind(items: list[gate.PredictionIn]) -> dict[uuid.UUID, Any]:
        # As if another request stored bodies[1] after this batch looked for replays.
        return {} if len(items) > 1 else plain(items)

    monkeypatch.setattr(gate, "_replays", blind)
    outcomes = gate.gate_predictions(account=account, items=_items(gate_setup, bodies))
    assert [o.answer.replayed for o in outcomes if o.answer] == [False, True, False, False, False]
    assert stored.answer is not None
    assert outcomes[1].answer == replace(stored.answer, replayed=True)
    assert PredictionEvent.objects.count() == 5 and ReviewCase.objects.count() == 5


def test_a_freeze_between_two_calls_defers_the_next_one(
    transactional_db: None, gate_setup: Gate
) -> None:
    client = _client(gate_setup)
    assert (
        client.post("/api/v1/predictions/", gate_setup.payload(), format="json").json()["action"]
        == "act"
    )
    registry.deployment_set_frozen(
        actor=gate_setup.director, deployment=gate_setup.deployment, frozen=True, reason="drift"
    )
    body = client.post("/api/v1/predictions/", gate_setup.payload(), format="json").json()
    assert body["action"] == "defer" and body["reasons"][0]["code"] == "frozen_deployment"
    items = [gate_setup.payload(case_key=f"c{i}") for i in range(3)]
    bulk = client.post("/api/v1/predictions/bulk/", items, format="json").json()
    assert bulk["summary"]["defer"] == 3
