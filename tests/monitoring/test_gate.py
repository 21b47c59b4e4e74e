"""The gate API: answers, idempotency, malformed input, token scope, bulk."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import service_account_create
from monitoring.gate import pseudonymise
from monitoring.models import PredictionEvent, ReviewCase
from registry import services as registry
from tests.factories import ClinicalModelFactory, SiteFactory

pytestmark = pytest.mark.django_db


def test_it_acts_on_a_clean_case_and_says_with_what(gate_setup):
    response = gate_setup.post()
    assert response.status_code == 201
    body = response.json()
    assert body["action"] == "act" and body["reasons"] == []
    assert body["version"] == "1.0.0" and body["site"] == "NORTH"
    assert body["deployment_mode"] == "live" and body["policy_version"] == 0
    assert body["review_case_id"] is None


def test_it_stores_a_keyed_hash_of_the_case_key_never_the_key(gate_setup):
    gate_setup.post(case_key="MRN-00123456")
    event = PredictionEvent.objects.get()
    assert event.case_key_hash == pseudonymise("MRN-00123456")
    stored = str(PredictionEvent.objects.values().get())
    assert "MRN-00123456" not in stored


def test_bad_features_are_stored_with_their_problems_and_deferred(gate_setup):
    response = gate_setup.post(
        features={"age": 64, "heart_rate": 400, "care_unit": "moon", "shoe_size": 44}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["action"] == "defer"
    codes = {r["code"] for r in body["reasons"]}
    assert codes == {"invalid_input"}
    event = PredictionEvent.objects.get()
    assert {p["code"] for p in event.problems} == {
        "out_of_range",
        "unknown_category",
        "unexpected_feature",
    }
    assert ReviewCase.objects.get().event == event and body["review_case_id"] == event.review.pk


def test_a_missing_required_input_defers(gate_setup):
    body = gate_setup.post(features={"age": 70, "care_unit": "icu"}).json()
    assert body["action"] == "defer"
    assert body["reasons"][0]["code"] == "missing_required_input"
    assert "heart_rate" in body["reasons"][0]["text"]


def test_a_frozen_deployment_never_acts(gate_setup):
    registry.deployment_set_frozen(
        actor=gate_setup.director, deployment=gate_setup.deployment, frozen=True, reason="drift"
    )
    for score in (0.01, 0.5, 0.99):
        body = gate_setup.post(score=score).json()
        assert body["action"] == "defer"
        assert body["reasons"][0]["code"] == "frozen_deployment"


def test_replaying_the_same_event_returns_the_first_answer_and_stores_nothing(gate_setup):
    payload = gate_setup.payload(features={"age": 64, "heart_rate": 400, "care_unit": "ward"})
    first = gate_setup.client.post("/api/v1/predictions/", payload, format="json")
    again = gate_setup.client.post("/api/v1/predictions/", payload, format="json")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert PredictionEvent.objects.count() == 1 and ReviewCase.objects.count() == 1


def test_reusing_an_event_id_with_another_body_is_a_conflict(gate_setup):
    payload = gate_setup.payload()
    gate_setup.client.post("/api/v1/predictions/", payload, format="json")
    changed = dict(payload, score=0.99)
    response = gate_setup.client.post("/api/v1/predictions/", changed, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "event_id_reused"
    assert PredictionEvent.objects.get().score == payload["score"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": None}, "event_id"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"score": "high"}, "score"),
        ({"score": 1.5}, "score"),
        ({"score": True}, "score"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2026-01-01T10:00:00"}, "occurred_at"),
        ({"features": [1, 2]}, "features"),
        ({"features": {"age": {"nested": 1}}}, "features"),
        ({"case_key": ""}, "case_key"),
        ({"confidence": -0.1}, "confidence"),
    ],
)
def test_malformed_requests_get_field_errors_and_are_not_stored(gate_setup, change, field):
    payload = gate_setup.payload()
    payload.update(change)
    if change.get("event_id") is None and "event_id" in change:
        del payload["event_id"]
    response = gate_setup.client.post("/api/v1/predictions/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not PredictionEvent.objects.exists()


def test_bad_json_is_a_400(gate_setup):
    response = gate_setup.client.post(
        "/api/v1/predictions/", data="{not json", content_type="application/json"
    )
    assert response.status_code == 400 and not PredictionEvent.objects.exists()


def test_unknown_model_and_site_are_404s(gate_setup):
    assert gate_setup.post(model="nope").status_code == 404
    response = gate_setup.post(site="MOON")
    assert response.status_code == 404 and "MOON" in str(response.json()["site"])
    assert not PredictionEvent.objects.exists()


def test_a_token_for_another_model_is_refused(gate_setup):
    ClinicalModelFactory(slug="readmit-30d")
    issued = service_account_create(actor=None, name="readmit-scorer", model_slugs=["readmit-30d"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    response = client.post("/api/v1/predictions/", gate_setup.payload(), format="json")
    assert response.status_code == 403 and response.json()["code"] == "model_not_in_scope"
    assert not PredictionEvent.objects.exists()


def test_people_cannot_log_predictions(gate_setup, api_for):
    for role in ("ml_engineer", "medical_director"):
        response = api_for(role).post("/api/v1/predictions/", gate_setup.payload(), format="json")
        assert response.status_code == 403
    assert (
        APIClient().post("/api/v1/predictions/", gate_setup.payload(), format="json").status_code
        == 401
    )


def test_no_live_deployment_is_a_clear_error_never_an_act(gate_setup):
    SiteFactory(code="SOUTH")
    response = gate_setup.post(site="SOUTH")
    assert response.status_code == 409
    assert response.json()["code"] == "no_active_deployment"
    before_go_live = datetime(2019, 6, 1, tzinfo=UTC).isoformat()
    assert gate_setup.post(occurred_at=before_go_live).status_code == 409
    assert not PredictionEvent.objects.exists()


def test_naming_another_version_is_a_clear_error(gate_setup):
    response = gate_setup.post(version="9.9.9")
    assert response.status_code == 409
    assert "the live version is 1.0.0" in response.json()["version"][0]
    assert gate_setup.post(version="1.0.0").status_code == 201


def test_a_time_in_the_future_is_refused(gate_setup):
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    assert gate_setup.post(occurred_at=later).status_code == 400


def test_the_version_is_the_one_live_at_the_predictions_time(gate_setup):
    switch = timezone.now() - timedelta(days=1)
    gate_setup.deploy("2.0.0", at=switch)
    old = gate_setup.post(occurred_at=(switch - timedelta(hours=1)).isoformat()).json()
    new = gate_setup.post().json()
    assert old["version"] == "1.0.0" and new["version"] == "2.0.0"
    assert PredictionEvent.objects.count() == 2


def test_bulk_answers_each_item_and_stores_the_valid_ones(gate_setup):
    items = [gate_setup.payload(case_key=f"case-{i}") for i in range(5)]
    items[1]["score"] = "bad"
    items[3]["site"] = "MOON"
    response = gate_setup.client.post("/api/v1/predictions/bulk/", items, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 400, 201, 404, 201]
    assert response.json()["summary"]["stored"] == 3 and response.json()["summary"]["rejected"] == 2
    assert PredictionEvent.objects.count() == 3


def test_bulk_is_safe_to_retry_whole(gate_setup):
    bad = {"age": 64, "heart_rate": 400, "care_unit": "ward"}  # deferred: opens review cases
    items = [gate_setup.payload(case_key=f"case-{i}", features=bad) for i in range(4)]
    first = gate_setup.client.post("/api/v1/predictions/bulk/", items, format="json").json()
    again = gate_setup.client.post("/api/v1/predictions/bulk/", items, format="json").json()
    assert [r["status"] for r in again["results"]] == [200] * 4
    assert [r["answer"] for r in again["results"]] == [r["answer"] for r in first["results"]]
    assert PredictionEvent.objects.count() == 4
    assert ReviewCase.objects.count() == 4


def test_bulk_refuses_a_non_list_an_empty_list_and_too_many(gate_setup):
    url = "/api/v1/predictions/bulk/"
    assert gate_setup.client.post(url, gate_setup.payload(), format="json").status_code == 400
    assert gate_setup.client.post(url, [], format="json").status_code == 400
    many = [{"event_id": str(uuid.uuid4())}] * 10_001
    assert gate_setup.client.post(url, many, format="json").status_code == 400


def test_the_same_event_twice_in_one_bulk_request_is_refused_once(gate_setup):
    item = gate_setup.payload()
    results = gate_setup.client.post(
        "/api/v1/predictions/bulk/", [item, item], format="json"
    ).json()["results"]
    assert [r["status"] for r in results] == [201, 400]
    assert PredictionEvent.objects.count() == 1


def test_a_shadow_deployment_answers_shadow_and_opens_no_review(gate_setup):
    gate_setup.deploy("1.1.0-rc", mode="shadow", at=datetime(2021, 1, 1, tzinfo=UTC))
    body = gate_setup.post(version="1.1.0-rc", features={"age": 64, "care_unit": "ward"}).json()
    assert body["action"] == "shadow" and body["deployment_mode"] == "shadow"
    assert body["reasons"][0]["code"] == "missing_required_input"  # what it would have done
    assert not ReviewCase.objects.exists()
    # the live version still answers for the same site
    assert gate_setup.post().json()["version"] == "1.0.0"
