"""Outcomes and overrides reported by model services, joined to the gate's events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import service_account_create
from governance.audit.models import AuditEvent
from monitoring.models import Outcome, Override, PredictionEvent
from tests.factories import ClinicalModelFactory
from tests.monitoring.conftest import ago

pytestmark = pytest.mark.django_db

OUTCOMES, BULK, OVERRIDES = "/api/v1/outcomes/", "/api/v1/outcomes/bulk/", "/api/v1/overrides/"


def predict(gate: Any, **overrides: Any) -> dict[str, Any]:
    body = gate.payload(**({"occurred_at": ago(days=3)} | overrides))
    response = gate.client.post("/api/v1/predictions/", body, format="json")
    assert response.status_code == 201, response.json()
    return body | {"answer": response.json()}


def send(gate: Any, url: str, body: Any) -> Any:
    return gate.client.post(url, body, format="json")


def outcome(event: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"event_id": event["event_id"], "label": 1, "observed_at": ago(days=1)} | overrides


def other_service(name: str = "readmit-svc") -> APIClient:
    ClinicalModelFactory(slug="readmit-30d")
    issued = service_account_create(actor=None, name=name, model_slugs=["readmit-30d"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    return client


# --- One outcome ----------------------------------------------------------------------------


def test_it_records_an_outcome_for_an_event(gate_setup):
    event = predict(gate_setup)
    response = send(gate_setup, OUTCOMES, outcome(event, note="culture positive"))
    assert response.status_code == 201, response.json()
    answer = response.json()
    assert answer["event_id"] == event["event_id"] and answer["label"] == 1
    assert answer["corrects"] is None
    stored = Outcome.objects.get()
    assert stored.event.event_id == uuid.UUID(event["event_id"])
    assert stored.note == "culture positive"
    assert stored.submitted_by.service_account.name == "sepsis-scorer"


def test_the_same_outcome_again_is_a_harmless_replay(gate_setup):
    event = predict(gate_setup)
    first = send(gate_setup, OUTCOMES, outcome(event))
    again = send(gate_setup, OUTCOMES, outcome(event, observed_at=ago(hours=2)))
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Outcome.objects.count() == 1


def test_a_different_outcome_is_a_conflict_unless_it_is_a_correction(gate_setup):
    event = predict(gate_setup)
    send(gate_setup, OUTCOMES, outcome(event, label=0))
    conflict = send(gate_setup, OUTCOMES, outcome(event, label=1))
    assert conflict.status_code == 409
    body = conflict.json()
    assert body["code"] == "outcome_conflict"
    assert "already has outcome 0" in body["label"][0] and '"correction": true' in body["label"][0]
    assert Outcome.objects.count() == 1


def test_a_correction_keeps_the_earlier_value_on_record(gate_setup):
    event = predict(gate_setup)
    original = send(gate_setup, OUTCOMES, outcome(event, label=0)).json()
    corrected = send(
        gate_setup, OUTCOMES, outcome(event, label=1, correction=True, note="late culture")
    )
    assert corrected.status_code == 201
    assert corrected.json()["corrects"] == original["id"]
    again = send(gate_setup, OUTCOMES, outcome(event, label=0, correction=True, note="lab error"))
    assert again.status_code == 201 and again.json()["corrects"] == corrected.json()["id"]
    rows = list(Outcome.objects.order_by("received_at", "pk"))
    assert [(r.label, r.corrects_id) for r in rows] == [
        (0, None),
        (1, rows[0].pk),
        (0, rows[1].pk),
    ]
    audit = AuditEvent.objects.filter(action="outcome.correct").order_by("seq")
    assert [(a.payload["previous_label"], a.payload["label"]) for a in audit] == [(0, 1), (1, 0)]
    assert audit[0].actor_role == "service_account"


def test_a_repeated_correction_is_a_replay(gate_setup):
    event = predict(gate_setup)
    send(gate_setup, OUTCOMES, outcome(event, label=0))
    first = send(gate_setup, OUTCOMES, outcome(event, label=1, correction=True))
    again = send(gate_setup, OUTCOMES, outcome(event, label=1, correction=True))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Outcome.objects.count() == 2


def test_a_correction_of_nothing_is_the_first_outcome(gate_setup):
    event = predict(gate_setup)
    response = send(gate_setup, OUTCOMES, outcome(event, correction=True))
    assert response.status_code == 201 and response.json()["corrects"] is None


@pytest.mark.parametrize("label", [2, 0.5, -1])
def test_labels_are_zero_or_one(gate_setup, label):
    event = predict(gate_setup)
    response = send(gate_setup, OUTCOMES, outcome(event, label=label))
    assert response.status_code == 400
    assert "Outcome labels are 0 or 1" in response.json()["label"][0]
    assert not Outcome.objects.exists()


@pytest.mark.parametrize("label", ["yes", True, None])
def test_a_label_must_be_a_number(gate_setup, label):
    response = send(gate_setup, OUTCOMES, outcome(predict(gate_setup), label=label))
    assert response.status_code == 400 and "label" in response.json()


def test_an_outcome_cannot_be_observed_before_the_prediction(gate_setup):
    event = predict(gate_setup)
    response = send(gate_setup, OUTCOMES, outcome(event, observed_at=ago(days=4)))
    assert response.status_code == 400
    assert "before the prediction it follows" in response.json()["observed_at"][0]


def test_an_outcome_cannot_be_observed_in_the_future(gate_setup):
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    response = send(gate_setup, OUTCOMES, outcome(predict(gate_setup), observed_at=later))
    assert response.status_code == 400
    assert "is in the future" in response.json()["observed_at"][0]


def test_times_need_a_zone(gate_setup):
    response = send(
        gate_setup, OUTCOMES, outcome(predict(gate_setup), observed_at="2024-01-01T10:00")
    )
    assert response.status_code == 400
    assert "time zone" in response.json()["observed_at"][0]


def test_an_unknown_event_is_404(gate_setup):
    response = send(gate_setup, OUTCOMES, outcome({"event_id": str(uuid.uuid4())}))
    assert response.status_code == 404
    assert "of this token's models" in response.json()["event_id"][0]


def test_another_models_token_cannot_see_the_event(gate_setup):
    event = predict(gate_setup)
    client = other_service()
    foreign = client.post(OUTCOMES, outcome(event), format="json")
    unknown = client.post(OUTCOMES, outcome({"event_id": str(uuid.uuid4())}), format="json")
    # The same answer as for an event that does not exist: nothing about other models leaks.
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["code"] == unknown.json()["code"] == "unknown_event"
    assert not Outcome.objects.exists()


def test_a_misspelt_field_is_refused_not_ignored(gate_setup):
    event = predict(gate_setup)
    send(gate_setup, OUTCOMES, outcome(event, label=0))
    response = send(gate_setup, OUTCOMES, outcome(event, label=1, corection=True))
    assert response.status_code == 400 and response.json()["corection"] == ["Unknown field."]


def test_people_cannot_report_outcomes(gate_setup, api_for):
    event = predict(gate_setup)
    for role in ("medical_director", "ml_engineer", "quality_safety"):
        assert api_for(role).post(OUTCOMES, outcome(event), format="json").status_code == 403
    assert APIClient().post(OUTCOMES, outcome(event), format="json").status_code in (401, 403)
    assert not Outcome.objects.exists()


# --- By case key and time -------------------------------------------------------------------


def by_case(event: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "model": event["model"],
        "case_key": event["case_key"],
        "occurred_at": event["occurred_at"],
        "label": 1,
        "observed_at": ago(days=1),
    } | overrides


def test_it_finds_the_event_by_case_key_and_time(gate_setup):
    predict(gate_setup, case_key="case-0007", occurred_at=ago(days=5))
    event = predict(gate_setup, case_key="case-0007")
    response = send(gate_setup, OUTCOMES, by_case(event))
    assert response.status_code == 201, response.json()
    assert response.json()["event_id"] == event["event_id"]
    assert Outcome.objects.get().event.event_id == uuid.UUID(event["event_id"])


def test_no_prediction_for_that_case_and_time_is_404(gate_setup):
    event = predict(gate_setup)
    response = send(gate_setup, OUTCOMES, by_case(event, case_key="someone-else"))
    assert response.status_code == 404
    assert "No prediction of sepsis-ews for this case key" in response.json()["case_key"][0]


def test_two_predictions_of_the_case_at_that_time_are_ambiguous(gate_setup):
    gate_setup.deploy("1.1.0", mode="shadow", at=datetime(2020, 1, 1, tzinfo=UTC))
    event = predict(gate_setup)
    predict(gate_setup, occurred_at=event["occurred_at"], version="1.1.0")
    response = send(gate_setup, OUTCOMES, by_case(event))
    assert response.status_code == 409
    message = response.json()["case_key"][0]
    assert "2 predictions of sepsis-ews match" in message and "NORTH 1.1.0" in message
    narrowed = send(gate_setup, OUTCOMES, by_case(event, version="1.0.0"))
    assert narrowed.status_code == 201
    assert narrowed.json()["event_id"] == event["event_id"]


def test_a_case_key_lookup_for_a_model_out_of_scope_is_403(gate_setup):
    event = predict(gate_setup)
    response = other_service().post(OUTCOMES, by_case(event), format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "model_not_in_scope"
    unknown = send(gate_setup, OUTCOMES, by_case(event, model="no-such-model"))
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_model"


def test_name_the_event_one_way_only(gate_setup):
    event = predict(gate_setup)
    both = send(gate_setup, OUTCOMES, by_case(event, event_id=event["event_id"]))
    assert both.status_code == 400 and "not both" in both.json()["event_id"][0]
    neither = send(gate_setup, OUTCOMES, {"label": 1, "observed_at": ago(days=1)})
    assert neither.status_code == 400
    assert set(neither.json()) == {"event_id", "model", "case_key", "occurred_at"}


# --- Bulk -----------------------------------------------------------------------------------


def test_bulk_answers_each_item_and_stores_the_valid_ones(gate_setup):
    first, second, third = predict(gate_setup), predict(gate_setup), predict(gate_setup)
    send(gate_setup, OUTCOMES, outcome(third, label=0))
    items = [
        outcome(first),
        outcome(second, label=7),
        {"event_id": "not-a-uuid", "label": 1, "observed_at": ago(days=1)},
        outcome(third, label=1),
        outcome({"event_id": str(uuid.uuid4())}),
        by_case(second, label=0),
        outcome(third, label=1, correction=True),
    ]
    response = send(gate_setup, BULK, items)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [
        (0, 201),
        (1, 400),
        (2, 400),
        (3, 409),
        (4, 404),
        (5, 201),
        (6, 201),
    ]
    assert results[2]["errors"]["event_id"] and results[3]["code"] == "outcome_conflict"
    assert results[6]["outcome"]["corrects"] is not None
    assert response.json()["summary"] == {
        "stored": 3,
        "corrections": 1,
        "replayed": 0,
        "rejected": 4,
    }
    assert Outcome.objects.count() == 4  # the one before, plus three


def test_bulk_refuses_an_item_that_is_not_an_object(gate_setup):
    event = predict(gate_setup)
    results = send(gate_setup, BULK, ["label=1", outcome(event)]).json()["results"]
    assert [r["status"] for r in results] == [400, 201]
    assert "Expected a dictionary" in results[0]["errors"]["non_field_errors"][0]


def test_bulk_is_safe_to_retry_whole(gate_setup):
    events = [predict(gate_setup) for _ in range(5)]
    items = [outcome(e, label=i % 2) for i, e in enumerate(events)]
    assert send(gate_setup, BULK, items).json()["summary"]["stored"] == 5
    again = send(gate_setup, BULK, items).json()
    assert again["summary"] == {"stored": 0, "corrections": 0, "replayed": 5, "rejected": 0}
    assert Outcome.objects.count() == 5


def test_bulk_judges_repeats_of_one_event_in_order(gate_setup):
    event = predict(gate_setup)
    items = [
        outcome(event, label=0),
        outcome(event, label=0),
        outcome(event, label=1),
        outcome(event, label=1, correction=True),
    ]
    results = send(gate_setup, BULK, items).json()["results"]
    assert [r["status"] for r in results] == [201, 200, 409, 201]
    assert results[3]["outcome"]["corrects"] == results[0]["outcome"]["id"]


def test_bulk_takes_thousands_in_one_request(gate_setup):
    body = [gate_setup.payload(occurred_at=ago(days=2)) for _ in range(2000)]
    logged = gate_setup.client.post("/api/v1/predictions/bulk/", body, format="json")
    assert logged.json()["summary"]["rejected"] == 0
    items = [outcome(item, label=i % 2) for i, item in enumerate(body)]
    summary = send(gate_setup, BULK, items).json()["summary"]
    assert summary == {"stored": 2000, "corrections": 0, "replayed": 0, "rejected": 0}
    assert Outcome.objects.filter(label=1).count() == 1000


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"event_id": "x"}, "Send a JSON array of outcomes."),
        ([], "The array is empty."),
    ],
)
def test_bulk_refuses_a_malformed_body(gate_setup, body, message):
    response = send(gate_setup, BULK, body)
    assert response.status_code == 400 and response.json()["detail"] == [message]


def test_bulk_refuses_more_than_ten_thousand(gate_setup):
    item = {"event_id": str(uuid.uuid4()), "label": 1, "observed_at": ago(days=1)}
    response = send(gate_setup, BULK, [item] * 10_001)
    assert response.status_code == 400
    assert response.json()["detail"] == ["At most 10000 outcomes per request."]


# --- Overrides ------------------------------------------------------------------------------


def override(event: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": event["event_id"],
        "clinician_role": "charge nurse",
        "reason_code": "already_treated",
        "final_action": "no sepsis bundle: already on antibiotics",
        "occurred_at": ago(days=2),
    } | overrides


def test_it_records_an_override_of_a_model_that_acted(gate_setup):
    event = predict(gate_setup)
    assert event["answer"]["action"] == "act"
    response = send(gate_setup, OVERRIDES, override(event))
    assert response.status_code == 201, response.json()
    stored = Override.objects.get()
    assert stored.event.event_id == uuid.UUID(event["event_id"])
    assert (stored.clinician_role, stored.clinician_ref) == ("charge nurse", "")
    assert stored.reason_code == "already_treated"
    assert response.json()["final_action"] == "no sepsis bundle: already on antibiotics"


def test_the_same_override_again_is_a_replay(gate_setup):
    event = predict(gate_setup)
    body = override(event, clinician_ref="RN-114")
    first = send(gate_setup, OVERRIDES, body)
    again = send(gate_setup, OVERRIDES, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other = send(gate_setup, OVERRIDES, override(event, clinician_role="registrar"))
    assert other.status_code == 201  # a second clinician may disagree too
    assert Override.objects.count() == 2


def test_a_deferred_case_cannot_be_overridden_here(gate_setup):
    event = predict(gate_setup, features={"age": 64, "heart_rate": 400, "care_unit": "ward"})
    assert event["answer"]["action"] == "defer"
    response = send(gate_setup, OVERRIDES, override(event))
    assert response.status_code == 409
    assert response.json()["code"] == "not_acted"
    assert "was deferred to a human" in response.json()["event_id"][0]
    assert not Override.objects.exists()


def test_a_shadow_answer_cannot_be_overridden(gate_setup):
    gate_setup.deploy("1.1.0", mode="shadow", at=datetime(2020, 1, 1, tzinfo=UTC))
    event = predict(gate_setup, version="1.1.0")
    assert event["answer"]["action"] == "shadow"
    response = send(gate_setup, OVERRIDES, override(event))
    assert response.status_code == 409
    assert "was logged in shadow" in response.json()["event_id"][0]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"reason_code": "bored"}, "reason_code", "is not a valid choice"),
        ({"reason_code": "other"}, "note", "Reason code other needs a note"),
        ({"clinician_role": ""}, "clinician_role", "may not be blank"),
        ({"final_action": "  "}, "final_action", "may not be blank"),
        ({"occurred_at": ago(days=4)}, "occurred_at", "before the prediction"),
        ({"occurred_at": "2024-01-01T10:00"}, "occurred_at", "time zone"),
        ({"why": "x"}, "why", "Unknown field."),
    ],
)
def test_it_refuses_a_bad_override(gate_setup, overrides, field, message):
    response = send(gate_setup, OVERRIDES, override(predict(gate_setup), **overrides))
    assert response.status_code == 400, response.json()
    assert message in response.json()[field][0]
    assert not Override.objects.exists()


def test_an_override_of_another_models_event_is_404(gate_setup):
    event = predict(gate_setup)
    response = other_service().post(OVERRIDES, override(event), format="json")
    assert response.status_code == 404
    assert not Override.objects.exists()
    assert PredictionEvent.objects.count() == 1


def test_people_cannot_report_overrides(gate_setup, api_for):
    event = predict(gate_setup)
    assert api_for("reviewer").post(OVERRIDES, override(event), format="json").status_code == 403
