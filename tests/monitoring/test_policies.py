"""Deferral policies: the service, the API and the pages. Each edit is a new numbered policy,
validated whole; the gate judges by the highest number at once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from governance.audit.models import AuditEvent
from monitoring.models import DeferralPolicy, PredictionEvent
from monitoring.policies import policy_create
from tests.factories import FeatureSpecFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db

PAEDIATRIC = {
    "code": "paediatric",
    "text": "Under 18: trained on adults only",
    "condition": {"feature": "age", "op": "lt", "value": 18},
}
DIALYSIS = {
    "code": "dialysis",
    "text": "On dialysis: lactate unreliable",
    "condition": {"feature": "on_dialysis", "op": "eq", "value": True},
}


def create(gate: Any, actor: Any, **overrides: Any) -> DeferralPolicy:
    fields: dict[str, Any] = {
        "min_confidence": 0.7,
        "threshold_margin": 0.05,
        "population_exclusions": [PAEDIATRIC],
        "safety_rules": [DIALYSIS],
        "reason": "initial rules agreed at the safety board",
    }
    fields.update(overrides)
    return policy_create(actor=actor, version=gate.version, **fields)


def errors_of(gate: Any, actor: Any, **overrides: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        create(gate, actor, **overrides)
    return caught.value.message_dict


# --- The service ----------------------------------------------------------------------------


def test_it_numbers_each_edit_and_keeps_every_earlier_number(gate_setup, user_for):
    informaticist = user_for("clinical_informaticist")
    first = create(gate_setup, informaticist)
    second = create(gate_setup, user_for("ml_engineer"), min_confidence=0.8, reason="too many acts")
    assert (first.number, second.number) == (1, 2)
    first.refresh_from_db()
    assert first.min_confidence == 0.7 and second.min_confidence == 0.8
    assert second.created_by.username == "test-ml_engineer"
    history = DeferralPolicy.history.filter(version=gate_setup.version).order_by("number")
    assert [(h.number, h.history_type, h.history_change_reason) for h in history] == [
        (1, "+", "initial rules agreed at the safety board"),
        (2, "+", "too many acts"),
    ]
    assert history[0].history_user == informaticist


def test_it_audits_each_new_policy_with_its_changes(gate_setup, user_for):
    create(gate_setup, user_for("clinical_informaticist"))
    create(
        gate_setup,
        user_for("clinical_informaticist"),
        min_confidence=None,
        safety_rules=[],
        reason="retire the dialysis rule",
    )
    event = AuditEvent.objects.filter(action="policy.create").order_by("-seq").first()
    assert event.payload["number"] == 2
    assert event.payload["reason"] == "retire the dialysis rule"
    assert event.payload["changes"] == [
        "Minimum confidence: 0.7 → none",
        "Safety rule dialysis removed",
    ]
    assert event.summary == (
        "Deferral policy v2 for sepsis-ews 1.0.0: minimum confidence, safety rule"
    )


def test_the_gate_judges_by_the_new_policy_at_once(gate_setup, user_for):
    assert gate_setup.post(confidence=0.75).json()["action"] == "act"
    create(gate_setup, user_for("ml_engineer"), min_confidence=0.8)
    answer = gate_setup.post(confidence=0.75).json()
    assert answer["action"] == "defer" and answer["policy_version"] == 1
    assert PredictionEvent.objects.order_by("received_at").last().policy_number == 1


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        ({"min_confidence": 1.5}, "min_confidence", "A number from 0 to 1"),
        ({"min_confidence": -0.1}, "min_confidence", "A number from 0 to 1"),
        ({"min_confidence": True}, "min_confidence", "A number from 0 to 1"),
        ({"threshold_margin": "0.1"}, "threshold_margin", "A number from 0 to 1"),
        ({"reason": "  "}, "reason", "Say why the rules change"),
        ({"safety_rules": {"code": "x"}}, "safety_rules", "A list of rules"),
        ({"safety_rules": ["age < 18"]}, "safety_rules[0]", "A rule is an object"),
        (
            {"safety_rules": [DIALYSIS | {"code": "Dialysis!"}]},
            "safety_rules[0].code",
            "lower-case",
        ),
        ({"safety_rules": [DIALYSIS | {"text": ""}]}, "safety_rules[0].text", "Say in words"),
        ({"safety_rules": [DIALYSIS | {"why": 1}]}, "safety_rules[0].why", "Unknown field"),
        (
            {"safety_rules": [{"code": "x", "text": "y"}]},
            "safety_rules[0].condition",
            "A condition is required",
        ),
        (
            {"safety_rules": [PAEDIATRIC]},  # the same code as the population exclusion
            "safety_rules[0].code",
            "'paediatric' is already used by population_exclusions[0]",
        ),
        (
            {"population_exclusions": [PAEDIATRIC | {"condition": {"feature": "weight"}}]},
            "population_exclusions[0].condition",
            "expected keys ['feature', 'op', 'value']",
        ),
        (
            {
                "population_exclusions": [
                    PAEDIATRIC | {"condition": {"feature": "weight", "op": "lt", "value": 3}}
                ]
            },
            "population_exclusions[0].condition.feature",
            "'weight' is not in the version's feature spec",
        ),
        (
            {
                "safety_rules": [
                    DIALYSIS,
                    {
                        "code": "shock",
                        "text": "Shock",
                        "condition": {"all": [{"feature": "lactate", "op": "over", "value": 4}]},
                    },
                ]
            },
            "safety_rules[1].condition.all[0].op",
            "one of eq, ge, gt",
        ),
    ],
)
def test_it_refuses_a_bad_policy_with_errors_where_they_are(
    gate_setup, ml_engineer, overrides, key, message
):
    errors = errors_of(gate_setup, ml_engineer, **overrides)
    assert key in errors, errors
    assert any(message in text for text in errors[key]), errors[key]
    assert not DeferralPolicy.objects.exists()
    assert not AuditEvent.objects.filter(action="policy.create").exists()


def test_it_reports_every_error_at_once(gate_setup, ml_engineer):
    errors = errors_of(
        gate_setup, ml_engineer, min_confidence=2, reason="", safety_rules=[DIALYSIS | {"text": ""}]
    )
    assert {"min_confidence", "reason", "safety_rules[0].text"} <= set(errors)


def test_it_refuses_a_margin_when_the_version_has_no_threshold(db, ml_engineer):
    bare = ModelVersionFactory(decision_thresholds={})
    FeatureSpecFactory(version=bare, name="age")
    with pytest.raises(ValidationError) as caught:
        policy_create(
            actor=ml_engineer,
            version=bare,
            min_confidence=None,
            threshold_margin=0.05,
            population_exclusions=[],
            safety_rules=[],
            reason="x",
        )
    assert "declares no decision threshold" in caught.value.message_dict["threshold_margin"][0]


def test_it_refuses_a_policy_that_changes_nothing(gate_setup, ml_engineer):
    create(gate_setup, ml_engineer)
    with pytest.raises(ValidationError, match="Nothing changed"):
        create(gate_setup, ml_engineer, reason="again")
    assert DeferralPolicy.objects.count() == 1


def test_it_refuses_an_edit_based_on_a_policy_no_longer_in_force(gate_setup, user_for):
    create(gate_setup, user_for("ml_engineer"), based_on=0)
    with pytest.raises(ValidationError, match="Policy v1 was saved by .* after you opened v0"):
        create(gate_setup, user_for("clinical_informaticist"), min_confidence=0.9, based_on=0)
    assert DeferralPolicy.objects.count() == 1


@pytest.mark.parametrize("role", ["viewer", "medical_director", "reviewer", "quality_safety"])
def test_only_informaticists_and_ml_engineers_may_edit(gate_setup, user_for, role):
    with pytest.raises(PermissionDenied):
        create(gate_setup, user_for(role))


# --- The API --------------------------------------------------------------------------------

API = "/api/v1/models/sepsis-ews/versions/1.0.0/deferral-policies/"


def body(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "min_confidence": 0.7,
        "threshold_margin": None,
        "population_exclusions": [PAEDIATRIC],
        "safety_rules": [],
        "reason": "first rules",
    }
    payload.update(overrides)
    return payload


def test_api_creates_the_next_number(gate_setup, api_for):
    response = api_for("clinical_informaticist").post(API, body(), format="json")
    assert response.status_code == 201, response.json()
    answer = response.json()
    assert answer["number"] == 1 and answer["in_force"] is True
    assert answer["population_exclusions"][0]["in_words"] == "age < 18"
    assert answer["created_by"] == "test-clinical_informaticist"
    second = api_for("ml_engineer").post(API, body(min_confidence=0.8), format="json")
    assert second.status_code == 201 and second.json()["number"] == 2


def test_api_lists_newest_first_and_reads_one_number(gate_setup, api_for):
    client = api_for("ml_engineer")
    client.post(API, body(), format="json")
    client.post(API, body(min_confidence=0.9, reason="stricter"), format="json")
    listed = api_for("viewer").get(API).json()
    assert [(p["number"], p["in_force"]) for p in listed["results"]] == [(2, True), (1, False)]
    one = api_for("viewer").get(f"{API}1/")
    assert one.status_code == 200 and one.json()["min_confidence"] == 0.7
    missing = api_for("viewer").get(f"{API}7/")
    assert missing.status_code == 404
    assert "has no deferral policy v7" in missing.json()["detail"]


def test_api_answers_404_for_an_unknown_version(gate_setup, api_for):
    response = api_for("viewer").get("/api/v1/models/sepsis-ews/versions/9.9/deferral-policies/")
    assert response.status_code == 404


def test_api_refuses_a_bad_policy_with_field_keys(gate_setup, api_for):
    rule = {"code": "x", "text": "X", "condition": {"any": [{"feature": "age", "op": "lt"}]}}
    response = api_for("ml_engineer").post(
        API, body(safety_rules=[rule], min_confidence=3), format="json"
    )
    assert response.status_code == 400
    errors = response.json()
    assert "safety_rules[0].condition.any[0]" in errors
    assert errors["min_confidence"] == ["A number from 0 to 1, or empty for no such rule."]
    assert not DeferralPolicy.objects.exists()


def test_api_wants_the_whole_policy_and_no_unknown_field(gate_setup, api_for):
    response = api_for("ml_engineer").post(
        API, {"min_confidence": 0.7, "reason": "x", "min_confidnce": 1}, format="json"
    )
    assert response.status_code == 400
    errors = response.json()
    assert {"threshold_margin", "population_exclusions", "safety_rules", "min_confidnce"} <= set(
        errors
    )


def test_api_roles(gate_setup, api_for):
    assert api_for("viewer").get(API).status_code == 200
    assert api_for("viewer").post(API, body(), format="json").status_code == 403
    assert api_for("medical_director").post(API, body(), format="json").status_code == 403
    assert gate_setup.client.get(API).status_code == 403  # a model service's token
    assert gate_setup.client.post(API, body(), format="json").status_code == 403
    assert not DeferralPolicy.objects.exists()


# --- The pages ------------------------------------------------------------------------------

DETAIL = "/policies/sepsis-ews/1.0.0/"
EDIT = "/policies/sepsis-ews/1.0.0/edit/"


def form(**overrides: Any) -> dict[str, Any]:
    fields = {
        "min_confidence": "0.7",
        "threshold_margin": "0.05",
        "population_exclusions": json.dumps([PAEDIATRIC]),
        "safety_rules": json.dumps([DIALYSIS]),
        "reason": "agreed at the safety board",
        "based_on": "0",
    }
    fields.update(overrides)
    return fields


def test_the_page_shows_the_policy_in_force_in_plain_words(gate_setup, client_for, user_for):
    page = client_for("viewer").get(DETAIL)
    assert page.status_code == 200
    assert "built-in rules only (policy v0)" in page.content.decode()
    create(gate_setup, user_for("clinical_informaticist"))
    html = client_for("viewer").get(DETAIL).content.decode()
    assert "In force: policy v1" in html
    assert "age &lt; 18" in html and "Under 18: trained on adults only" in html
    assert "on_dialysis = True" in html
    assert (
        "within <strong>0.05</strong> of a decision threshold: alert 0.6 (scores 0.55 to 0.65)"
        in (html)
    )
    assert "below <strong>0.7</strong>" in html
    assert "Edit the rules" not in html  # a viewer may read, not edit


def test_the_page_lists_every_number_with_who_when_why_and_what_changed(
    gate_setup, client_for, user_for
):
    create(gate_setup, user_for("clinical_informaticist"))
    create(
        gate_setup,
        user_for("ml_engineer"),
        min_confidence=0.8,
        safety_rules=[DIALYSIS | {"condition": {"feature": "lactate", "op": "gt", "value": 6}}],
        reason="lactate over 6 instead",
    )
    html = client_for("quality_safety").get(DETAIL).content.decode()
    assert "v2" in html and "v1" in html
    assert "lactate over 6 instead" in html
    assert "initial rules agreed at the safety board" in html
    assert "Minimum confidence: 0.7 → 0.8" in html
    assert "Safety rule dialysis: condition on_dialysis = True → lactate &gt; 6" in html
    assert "Safety rule dialysis added" in html  # what v1 changed from nothing
    assert html.index("lactate over 6 instead") < html.index("initial rules agreed")


def test_the_edit_form_starts_from_the_policy_in_force(gate_setup, client_for, user_for):
    create(gate_setup, user_for("ml_engineer"))
    page = client_for("clinical_informaticist").get(EDIT)
    assert page.status_code == 200
    form_ = page.context["form"]
    assert form_.initial["min_confidence"] == 0.7
    assert json.loads(form_.initial["safety_rules"]) == [DIALYSIS]
    assert form_.initial["based_on"] == 1
    html = page.content.decode()
    assert "How to write a rule" in html and "is_missing" in html and "heart_rate" in html


def test_saving_the_form_puts_a_new_policy_in_force(gate_setup, client_for):
    response = client_for("clinical_informaticist").post(EDIT, form(), follow=True)
    assert response.redirect_chain[-1][0] == DETAIL
    assert "Deferral policy v1 is now in force." in response.content.decode()
    policy = DeferralPolicy.objects.get()
    assert policy.safety_rules == [DIALYSIS] and policy.threshold_margin == 0.05


def test_empty_fields_mean_no_such_rule(gate_setup, client_for):
    client_for("ml_engineer").post(
        EDIT, form(min_confidence="", threshold_margin="", population_exclusions="")
    )
    policy = DeferralPolicy.objects.get()
    assert policy.min_confidence is None and policy.threshold_margin is None
    assert policy.population_exclusions == []


def test_the_form_shows_bad_json_inline_and_saves_nothing(gate_setup, client_for):
    page = client_for("ml_engineer").post(EDIT, form(safety_rules='[{"code": "x",}]'))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Nothing was saved" in html and "Not valid JSON" in html
    assert "[{&quot;code&quot;: &quot;x&quot;,}]" in html  # what was typed is kept
    assert not DeferralPolicy.objects.exists()


def test_the_form_shows_a_bad_condition_on_its_rule(gate_setup, client_for):
    bad = [DIALYSIS, {"code": "shock", "text": "Shock", "condition": {"all": [{"op": "gt"}]}}]
    page = client_for("ml_engineer").post(
        EDIT, form(safety_rules=json.dumps(bad), min_confidence="0.5")
    )
    errors = page.context["form"].errors
    assert errors["safety_rules"] == [
        "rule 2, condition.all[0]: expected keys ['feature', 'op', 'value'], got ['op']"
    ]
    assert not DeferralPolicy.objects.exists()


def test_the_form_shows_every_error_at_once(gate_setup, client_for):
    bad = [{"code": "shock", "text": "Shock", "condition": {"feature": "lactate", "op": "gt"}}]
    page = client_for("ml_engineer").post(
        EDIT, form(min_confidence="2", reason="", safety_rules=json.dumps(bad))
    )
    errors = page.context["form"].errors
    assert errors["min_confidence"] == ["A number from 0 to 1, or empty for no such rule."]
    assert errors["reason"][0].startswith("Say why the rules change")
    assert errors["safety_rules"][0].startswith("rule 1, condition: expected keys")
    assert not DeferralPolicy.objects.exists()


def test_the_form_refuses_a_stale_edit(gate_setup, client_for, user_for):
    create(gate_setup, user_for("ml_engineer"))
    page = client_for("clinical_informaticist").post(EDIT, form(based_on="0", min_confidence="0.9"))
    assert "Policy v1 was saved by" in page.content.decode()
    assert DeferralPolicy.objects.count() == 1


@pytest.mark.parametrize("role", ["viewer", "medical_director", "reviewer"])
def test_the_edit_page_is_for_editors_only(gate_setup, client_for, role):
    assert client_for(role).get(EDIT).status_code == 403
    assert client_for(role).post(EDIT, form()).status_code == 403
    assert not DeferralPolicy.objects.exists()


def test_anonymous_people_are_sent_to_log_in(gate_setup, client):
    for url in (DETAIL, EDIT):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_an_unknown_version_is_404(gate_setup, client_for):
    assert client_for("viewer").get("/policies/sepsis-ews/9.9/").status_code == 404
    assert client_for("ml_engineer").get("/policies/nope/1.0.0/edit/").status_code == 404
