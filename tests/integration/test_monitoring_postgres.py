"""Outcomes, overrides and deferral policies on PostgreSQL under concurrency: every retry is
stored once, conflicting labels never both stand, corrections form one chain, and concurrent
policy edits get consecutive numbers."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from governance.audit.models import AuditEvent
from monitoring.models import DeferralPolicy, Outcome, Override
from monitoring.policies import policy_create
from tests.integration.concurrency import at_once
from tests.monitoring.conftest import ago


def _client(gate: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {gate.token}")
    return client


def _event(gate, **kw):
    body = gate.payload(occurred_at=ago(days=3), **kw)
    assert gate.client.post("/api/v1/predictions/", body, format="json").status_code == 201
    return body


def test_the_same_outcome_at_once_is_stored_once(transactional_db, gate_setup):
    e = _event(gate_setup)
    body = {"event_id": e["event_id"], "label": 1, "observed_at": ago(days=1)}
    rs = at_once(
        [
            lambda: _client(gate_setup).post("/api/v1/outcomes/", body, format="json")
            for _ in range(6)
        ]
    )
    assert sorted(r.status_code for r in rs) == [200] * 5 + [201], rs
    assert Outcome.objects.count() == 1


def test_different_outcomes_at_once_one_wins_the_rest_conflict(transactional_db, gate_setup):
    e = _event(gate_setup)
    rs = at_once(
        [
            lambda i=i: _client(gate_setup).post(
                "/api/v1/outcomes/",
                {"event_id": e["event_id"], "label": i % 2, "observed_at": ago(days=1)},
                format="json",
            )
            for i in range(6)
        ]
    )
    codes = sorted(r.status_code for r in rs)
    assert codes.count(201) == 1 and set(codes) <= {200, 201, 409}, codes
    assert Outcome.objects.count() == 1


def test_concurrent_corrections_form_one_chain(transactional_db, gate_setup):
    e = _event(gate_setup)
    _client(gate_setup).post(
        "/api/v1/outcomes/",
        {"event_id": e["event_id"], "label": 0, "observed_at": ago(days=1)},
        format="json",
    )
    rs = at_once(
        [
            lambda i=i: _client(gate_setup).post(
                "/api/v1/outcomes/",
                {
                    "event_id": e["event_id"],
                    "label": (i + 1) % 2,
                    "observed_at": ago(days=1),
                    "correction": True,
                },
                format="json",
            )
            for i in range(6)
        ]
    )
    assert all(r.status_code in (200, 201) for r in rs), rs
    rows = list(Outcome.objects.all())
    uncorrected = [r for r in rows if not Outcome.objects.filter(corrects=r).exists()]
    assert len(uncorrected) == 1
    originals = [r for r in rows if r.corrects_id is None]
    assert len(originals) == 1
    assert AuditEvent.objects.filter(action="outcome.correct").count() == len(rows) - 1


def test_overlapping_bulk_retries_store_each_outcome_once(transactional_db, gate_setup):
    body = [gate_setup.payload(occurred_at=ago(days=2), case_key=f"c{i}") for i in range(300)]
    gate_setup.client.post("/api/v1/predictions/bulk/", body, format="json")
    items = [
        {"event_id": b["event_id"], "label": i % 2, "observed_at": ago(days=1)}
        for i, b in enumerate(body)
    ]
    rs = at_once(
        [
            lambda: _client(gate_setup).post("/api/v1/outcomes/bulk/", items, format="json")
            for _ in range(3)
        ]
    )
    assert all(r.status_code == 200 for r in rs), rs
    stored = [r.json()["summary"]["stored"] for r in rs]
    assert sum(stored) == 300 and all(r.json()["summary"]["rejected"] == 0 for r in rs), [
        r.json()["summary"] for r in rs
    ]
    assert Outcome.objects.count() == 300


def test_the_same_override_at_once_is_stored_once(transactional_db, gate_setup):
    e = _event(gate_setup)
    body = {
        "event_id": e["event_id"],
        "clinician_role": "nurse",
        "reason_code": "already_treated",
        "final_action": "none",
        "occurred_at": ago(days=2),
    }
    rs = at_once(
        [
            lambda: _client(gate_setup).post("/api/v1/overrides/", body, format="json")
            for _ in range(5)
        ]
    )
    assert sorted(r.status_code for r in rs) == [200] * 4 + [201], rs
    assert Override.objects.count() == 1


def test_policy_edits_at_once_get_consecutive_numbers(transactional_db, gate_setup, user_for):
    actor = user_for("ml_engineer")
    rs = at_once(
        [
            lambda i=i: policy_create(
                actor=actor,
                version=gate_setup.version,
                min_confidence=i / 10,
                threshold_margin=None,
                population_exclusions=[],
                safety_rules=[],
                reason=f"r{i}",
            )
            for i in range(1, 6)
        ]
    )
    assert all(not isinstance(r, BaseException) for r in rs), rs
    assert sorted(DeferralPolicy.objects.values_list("number", flat=True)) == [1, 2, 3, 4, 5]
