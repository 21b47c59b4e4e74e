"""The gate on PostgreSQL under concurrency: a retried event is stored once, with one answer."""

from __future__ import annotations

from rest_framework.test import APIClient

from monitoring.models import PredictionEvent, ReviewCase
from tests.integration.concurrency import at_once
from tests.monitoring.conftest import Gate


def _client(gate: Gate) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {gate.token}")
    return client


def test_the_same_event_sent_twice_at_once_is_stored_once(
    transactional_db: None, gate_setup: Gate
) -> None:
    payload = gate_setup.payload(features={"age": 64, "heart_rate": 400, "care_unit": "ward"})
    responses = at_once(
        [
            lambda: _client(gate_setup).post("/api/v1/predictions/", payload, format="json")
            for _ in range(4)
        ]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 201], responses
    assert len({str(r.json()) for r in responses}) == 1, "every caller gets the same answer"
    assert PredictionEvent.objects.count() == 1 and ReviewCase.objects.count() == 1


def test_overlapping_bulk_retries_store_each_event_once(
    transactional_db: None, gate_setup: Gate
) -> None:
    items = [gate_setup.payload(case_key=f"case-{i}") for i in range(200)]
    responses = at_once(
        [
            lambda: _client(gate_setup).post("/api/v1/predictions/bulk/", items, format="json")
            for _ in range(3)
        ]
    )
    assert all(r.status_code == 200 for r in responses), responses
    for response in responses:
        assert {r["status"] for r in response.json()["results"]} <= {200, 201}
    stored = [sum(r["status"] == 201 for r in resp.json()["results"]) for resp in responses]
    assert sum(stored) == 200
    assert PredictionEvent.objects.count() == 200
