"""Each deferral rule through the real gate API: what the model service is answered, what is
stored, and which cases reach a clinician's review queue."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from monitoring.models import PredictionEvent, ReviewCase
from monitoring.policies import policy_create
from registry import services as registry
from tests.monitoring.conftest import FEATURES

pytestmark = pytest.mark.django_db

CLEAN = {"age": 64, "heart_rate": 112, "lactate": 2.1, "care_unit": "ward"}


def with_policy(gate: Any, actor: Any, **fields: Any) -> Any:
    rules: dict[str, Any] = {
        "min_confidence": None,
        "threshold_margin": None,
        "population_exclusions": [],
        "safety_rules": [],
        "reason": "test rules",
    }
    return policy_create(actor=actor, version=gate.version, **(rules | fields))


def answer_of(gate: Any, **overrides: Any) -> dict[str, Any]:
    response = gate.post(**overrides)
    assert response.status_code == 201, response.json()
    return response.json()


def codes(answer: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in answer["reasons"]]


def stored(answer: dict[str, Any]) -> PredictionEvent:
    return PredictionEvent.objects.get(event_id=answer["event_id"])


def assert_deferred_for_review(answer: dict[str, Any], *reason_codes: str) -> None:
    assert answer["action"] == "defer"
    assert codes(answer) == list(reason_codes)
    case = ReviewCase.objects.get(pk=answer["review_case_id"])
    assert str(case.event.event_id) == answer["event_id"] and case.status == "open"


# --- A clean case ---------------------------------------------------------------------------


def test_a_clean_case_acts_under_a_full_policy(gate_setup, ml_engineer):
    with_policy(
        gate_setup,
        ml_engineer,
        min_confidence=0.8,
        threshold_margin=0.05,
        population_exclusions=[
            {
                "code": "paediatric",
                "text": "Under 18",
                "condition": {"feature": "age", "op": "lt", "value": 18},
            }
        ],
        safety_rules=[
            {
                "code": "dialysis",
                "text": "On dialysis",
                "condition": {"feature": "on_dialysis", "op": "eq", "value": True},
            }
        ],
    )
    answer = answer_of(gate_setup, features=CLEAN, score=0.31, confidence=0.92)
    assert (answer["action"], answer["reasons"], answer["review_case_id"]) == ("act", [], None)
    assert not ReviewCase.objects.exists()


# --- Each rule ------------------------------------------------------------------------------


def test_low_confidence_defers(gate_setup, ml_engineer):
    with_policy(gate_setup, ml_engineer, min_confidence=0.8)
    answer = answer_of(gate_setup, confidence=0.55)
    assert_deferred_for_review(answer, "low_confidence")
    assert answer["reasons"][0]["text"] == "Model confidence 0.55 is below 0.8."
    assert answer_of(gate_setup, confidence=0.8)["action"] == "act"  # at the limit: fine


def test_a_missing_confidence_defers_when_the_policy_needs_one(gate_setup, ml_engineer):
    body = gate_setup.payload()
    del body["confidence"]
    assert (
        gate_setup.client.post("/api/v1/predictions/", body, format="json").json()["action"]
        == "act"
    )  # no confidence rule yet: nothing is missing
    with_policy(gate_setup, ml_engineer, min_confidence=0.8)
    body = gate_setup.payload()
    del body["confidence"]
    answer = gate_setup.client.post("/api/v1/predictions/", body, format="json").json()
    assert_deferred_for_review(answer, "confidence_missing")
    assert "needs the model's confidence" in answer["reasons"][0]["text"]


def test_a_missing_required_input_is_stored_and_deferred(gate_setup):
    answer = answer_of(gate_setup, features={"age": 64, "care_unit": "ward"})
    assert_deferred_for_review(answer, "missing_required_input")
    assert answer["reasons"][0]["text"] == "Required input missing: heart_rate."
    event = stored(answer)
    assert event.problems == [
        {
            "code": "missing_required",
            "feature": "heart_rate",
            "text": "required input heart_rate is missing",
        }
    ]
    # An optional input may be absent without deferring.
    assert (
        answer_of(gate_setup, features={"age": 64, "heart_rate": 90, "care_unit": "ward"})["action"]
        == "act"
    )


@pytest.mark.parametrize(
    ("features", "problem", "text"),
    [
        (
            CLEAN | {"heart_rate": 400},
            "out_of_range",
            "heart_rate = 400 is above the allowed maximum",
        ),
        (CLEAN | {"age": -1}, "out_of_range", "age = -1 is below the allowed minimum"),
        (
            CLEAN | {"care_unit": "theatre"},
            "unknown_category",
            "care_unit = 'theatre' is not a known",
        ),
        (CLEAN | {"bmi": 31}, "unexpected_feature", "bmi is not in the version's feature spec"),
        (CLEAN | {"heart_rate": "fast"}, "wrong_type", "heart_rate must be a finite number"),
    ],
)
def test_bad_inputs_are_stored_with_their_problems_and_deferred(
    gate_setup, features, problem, text
):
    answer = answer_of(gate_setup, features=features)
    assert_deferred_for_review(answer, "invalid_input")
    assert text in answer["reasons"][0]["text"]
    event = stored(answer)
    assert [p["code"] for p in event.problems] == [problem]
    # A bad value of a declared input is kept: it is the data-quality signal. An undeclared
    # input is named in the problems but its value is not kept (it could be an identifier).
    declared = {f["name"] for f in FEATURES}
    assert event.features == {k: v for k, v in features.items() if k in declared}


def test_a_case_outside_the_intended_population_defers(gate_setup, user_for):
    with_policy(
        gate_setup,
        user_for("clinical_informaticist"),
        population_exclusions=[
            {
                "code": "paediatric",
                "text": "Under 18: trained on adults only",
                "condition": {"feature": "age", "op": "lt", "value": 18},
            },
            {
                "code": "icu",
                "text": "ICU patients have their own score",
                "condition": {"feature": "care_unit", "op": "eq", "value": "icu"},
            },
        ],
    )
    child = answer_of(gate_setup, features=CLEAN | {"age": 12})
    assert_deferred_for_review(child, "outside_population")
    assert child["reasons"][0]["text"] == (
        "Outside the intended population: Under 18: trained on adults only"
    )
    icu_child = answer_of(gate_setup, features=CLEAN | {"age": 12, "care_unit": "icu"})
    assert codes(icu_child) == ["outside_population", "outside_population"]
    assert answer_of(gate_setup, features=CLEAN | {"age": 18})["action"] == "act"


def test_a_score_near_the_decision_threshold_defers(gate_setup, ml_engineer):
    with_policy(gate_setup, ml_engineer, threshold_margin=0.05)
    near = answer_of(gate_setup, score=0.58)
    assert_deferred_for_review(near, "near_threshold")
    assert near["reasons"][0]["text"] == "Score 0.58 is within 0.05 of the alert threshold 0.6."
    assert codes(answer_of(gate_setup, score=0.64)) == ["near_threshold"]
    assert answer_of(gate_setup, score=0.66)["action"] == "act"
    assert answer_of(gate_setup, score=0.31)["action"] == "act"


def test_a_safety_rule_defers(gate_setup, ml_engineer):
    with_policy(
        gate_setup,
        ml_engineer,
        safety_rules=[
            {
                "code": "shock",
                "text": "Possible shock: a clinician decides",
                "condition": {
                    "all": [
                        {"feature": "lactate", "op": "ge", "value": 4},
                        {"feature": "care_unit", "op": "in", "value": ["ward", "ed"]},
                    ]
                },
            }
        ],
    )
    answer = answer_of(gate_setup, features=CLEAN | {"lactate": 5.2})
    assert_deferred_for_review(answer, "safety_rule")
    assert answer["reasons"][0]["text"] == "Safety rule shock: Possible shock: a clinician decides"
    assert answer_of(gate_setup, features=CLEAN | {"lactate": 3.9})["action"] == "act"
    no_lactate = {k: v for k, v in CLEAN.items() if k != "lactate"}
    assert answer_of(gate_setup, features=no_lactate)["action"] == "act"  # absent: no comparison


def test_every_reason_is_given_when_several_apply(gate_setup, ml_engineer):
    with_policy(gate_setup, ml_engineer, min_confidence=0.8, threshold_margin=0.05)
    answer = answer_of(
        gate_setup, features={"age": 64, "care_unit": "mars"}, score=0.6, confidence=0.1
    )
    assert_deferred_for_review(
        answer, "missing_required_input", "invalid_input", "low_confidence", "near_threshold"
    )


# --- The kill switch ------------------------------------------------------------------------


def test_a_frozen_deployment_defers_every_case(gate_setup):
    registry.deployment_set_frozen(
        actor=gate_setup.director,
        deployment=gate_setup.deployment,
        frozen=True,
        reason="calibration alarm",
    )
    clean = answer_of(gate_setup)
    assert_deferred_for_review(clean, "frozen_deployment")
    assert "The deployment is frozen" in clean["reasons"][0]["text"]
    body = [
        gate_setup.payload(score=score / 100, confidence=0.99, case_key=f"case-{score}")
        for score in range(0, 100, 3)
    ]
    results = gate_setup.client.post("/api/v1/predictions/bulk/", body, format="json").json()
    assert results["summary"]["act"] == 0
    assert results["summary"]["defer"] == len(body)
    assert not PredictionEvent.objects.filter(action="act").exists()
    assert ReviewCase.objects.count() == len(body) + 1


def test_unfreezing_lets_the_model_act_again(gate_setup):
    for frozen in (True, False):
        registry.deployment_set_frozen(
            actor=gate_setup.director, deployment=gate_setup.deployment, frozen=frozen, reason="x"
        )
    assert answer_of(gate_setup)["action"] == "act"


# --- Shadow ---------------------------------------------------------------------------------


def test_a_shadow_deployment_answers_shadow_and_opens_no_review(gate_setup):
    # A candidate version running in shadow at the gate's site, beside the live one.
    version = "1.1.0"
    gate_setup.deploy(
        version, mode="shadow", at=datetime(2020, 1, 1, tzinfo=UTC), thresholds={"alert": 0.6}
    )
    clean = answer_of(gate_setup, version=version)
    bad = answer_of(gate_setup, version=version, features={"age": 64, "care_unit": "ward"})
    assert (clean["action"], clean["deployment_mode"], clean["version"]) == (
        "shadow",
        "shadow",
        "1.1.0",
    )
    assert clean["reasons"] == [] and clean["review_case_id"] is None
    # A case the live model would defer is still only logged: the reasons are kept for later.
    assert bad["action"] == "shadow" and codes(bad) == ["missing_required_input"]
    assert bad["review_case_id"] is None
    assert not ReviewCase.objects.exists()
    assert PredictionEvent.objects.filter(mode="shadow").count() == 2
    assert answer_of(gate_setup)["action"] == "act"  # the live version is unaffected


# --- The policy number ----------------------------------------------------------------------


def test_the_answer_names_the_policy_number_in_force(gate_setup, user_for):
    before = answer_of(gate_setup)
    assert before["policy_version"] == 0
    with_policy(gate_setup, user_for("ml_engineer"), min_confidence=0.5)
    second = with_policy(gate_setup, user_for("clinical_informaticist"), min_confidence=0.6)
    after = answer_of(gate_setup)
    assert after["policy_version"] == 2
    event = stored(after)
    assert (event.policy_id, event.policy_number) == (second.pk, 2)
    assert stored(before).policy_number == 0  # earlier events keep the number they were judged by
