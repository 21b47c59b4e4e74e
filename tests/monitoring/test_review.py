"""The review queue: site scoping, the evidence packet, the audited case view, decisions and
time to action. Cases are made by the real gate (``gate_predictions``)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ServiceAccount
from governance.audit.models import AuditEvent
from monitoring import review
from monitoring.gate import PredictionIn, gate_predictions
from monitoring.models import ReviewCase
from registry import services as registry
from registry.assignments import site_assignment_set
from tests.factories import ClinicalModelFactory, ModelVersionFactory, SiteFactory

pytestmark = pytest.mark.django_db

#: heart_rate is outside its allowed 20–250: the gate stores the case and defers it.
OUT_OF_RANGE = {"age": 64, "heart_rate": 400, "lactate": 2.1, "care_unit": "ward"}
CLEAN = {"age": 64, "heart_rate": 88, "lactate": 1.1, "care_unit": "ward"}
QUEUE = reverse("review:queue")


# --- Helpers --------------------------------------------------------------------------------


def predict(
    gate: Any,
    *,
    score: float = 0.4,
    site: str = "NORTH",
    case_key: str = "case-0001",
    features: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> Any:
    """One prediction through ``gate_predictions``; returns the gate's answer."""
    item = PredictionIn(
        event_id=uuid.uuid4(),
        model=gate.version.model.slug,
        site=site,
        occurred_at=occurred_at or timezone.now(),
        case_key=case_key,
        features=OUT_OF_RANGE if features is None else features,
        score=score,
        confidence=0.9,
        top_factors=[
            {"feature": "heart_rate", "contribution": 0.21},
            {"feature": "lactate", "contribution": 0.05},
        ],
        cohort={"age_band": "40-64", "sex": "F"},
    )
    account = ServiceAccount.objects.get(name="sepsis-scorer")
    [outcome] = gate_predictions(account=account, items=[item])
    assert outcome.answer is not None, outcome.error and outcome.error.errors
    return outcome.answer


def defer(gate: Any, **kwargs: Any) -> ReviewCase:
    """A deferred case (an out-of-range input unless ``features`` says otherwise)."""
    answer = predict(gate, **kwargs)
    assert answer.action == "defer", answer
    return ReviewCase.objects.select_related("event", "site", "model").get(pk=answer.review_case_id)


def deploy_south(gate: Any) -> None:
    registry.deployment_start(
        actor=gate.director,
        version=gate.version,
        site=SiteFactory(code="SOUTH", name="South Community"),
        reason="go-live",
        at=gate.deployment.started_at,
    )


def assign(user: Any, site_code: str) -> None:
    site_assignment_set(actor=None, username=user.username, site_code=site_code, assigned=True)


@pytest.fixture
def reviewer(user_for: Any, gate_setup: Any) -> Any:
    """The test's reviewer, assigned to NORTH only."""
    user = user_for("reviewer")
    assign(user, "NORTH")
    return user


@pytest.fixture
def reviewer_client(reviewer: Any) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


def case_url(case: ReviewCase) -> str:
    return reverse("review:case", args=[case.pk])


def decide_url(case: ReviewCase) -> str:
    return reverse("review:decide", args=[case.pk])


def ids_in_queue(client: Client, **params: str) -> list[int]:
    response = client.get(QUEUE, params)
    assert response.status_code == 200
    return [row.case.pk for row in response.context["rows"]]


# --- The queue ------------------------------------------------------------------------------


def test_it_orders_the_queue_most_urgent_then_oldest(gate_setup, reviewer_client):
    low = defer(gate_setup, score=0.2)
    urgent_old = defer(gate_setup, score=0.9, case_key="a")
    urgent_new = defer(gate_setup, score=0.9, case_key="b")
    middle = defer(gate_setup, score=0.5, case_key="c")
    assert urgent_old.opened_at < urgent_new.opened_at
    assert ids_in_queue(reviewer_client) == [urgent_old.pk, urgent_new.pk, middle.pk, low.pk]


def test_it_shows_each_row_with_site_model_score_reasons_and_a_pseudonymous_ref(
    gate_setup, reviewer_client
):
    case = defer(gate_setup, score=0.734)
    body = reviewer_client.get(QUEUE).content.decode()
    assert "NORTH" in body
    assert "Sepsis early warning" in body and "0.734" in body and "invalid input" in body
    assert case.event.case_key_hash[:8] in body
    assert case.event.case_key_hash not in body  # only the short reference, never the hash
    assert "case-0001" not in body  # and never the client's raw case key
    assert case_url(case) in body


def test_it_scopes_the_queue_and_case_pages_to_the_reviewers_sites(
    gate_setup, reviewer_client, client_for
):
    deploy_south(gate_setup)
    north = defer(gate_setup, score=0.3)
    south = defer(gate_setup, score=0.8, site="SOUTH", case_key="south-1")

    assert ids_in_queue(reviewer_client) == [north.pk]
    body = reviewer_client.get(QUEUE).content.decode()
    assert south.event.case_key_hash[:8] not in body
    assert reviewer_client.get(case_url(south)).status_code == 403  # break-glass form
    assert reviewer_client.post(decide_url(south), {"decision": "agree"}).status_code == 404
    assert reviewer_client.get(QUEUE, {"site": south.site.pk}).context["rows"] == []
    south.refresh_from_db()
    assert south.status == "open"
    assert not AuditEvent.objects.filter(action="review.case_view", object_id=str(south.pk))

    director = client_for("medical_director")
    assert ids_in_queue(director) == [south.pk, north.pk]
    assert director.get(case_url(south)).status_code == 200


def test_a_reviewer_without_any_site_sees_nothing(gate_setup, user_for):
    case = defer(gate_setup)
    client = Client()
    client.force_login(user_for("reviewer"))
    response = client.get(QUEUE)
    assert list(response.context["rows"]) == []
    assert "not assigned to any site" in response.content.decode()
    assert client.get(case_url(case)).status_code == 403  # break-glass form


def test_it_filters_by_site_and_model_and_counts(gate_setup, reviewer, reviewer_client):
    deploy_south(gate_setup)
    assign(reviewer, "SOUTH")
    north = defer(gate_setup, score=0.3)
    south = defer(gate_setup, score=0.6, site="SOUTH")
    other_model = ClinicalModelFactory(slug="other-model")
    ModelVersionFactory(model=other_model)

    assert ids_in_queue(reviewer_client, site=str(north.site.pk)) == [north.pk]
    assert ids_in_queue(reviewer_client, site=str(south.site.pk)) == [south.pk]
    assert ids_in_queue(reviewer_client, model=str(gate_setup.version.model.pk)) == [
        south.pk,
        north.pk,
    ]
    assert ids_in_queue(reviewer_client, model=str(other_model.pk)) == []
    response = reviewer_client.get(QUEUE)
    assert response.context["page"].paginator.count == 2
    assert '<span class="count" id="queue-count">2</span>' in response.content.decode()


def test_decided_cases_leave_the_queue_and_show_with_time_to_action(
    gate_setup, reviewer, reviewer_client
):
    waiting = defer(gate_setup, score=0.3)
    done = defer(gate_setup, score=0.7, case_key="done")
    review.review_decide(actor=reviewer, case=done, decision="agree")

    assert ids_in_queue(reviewer_client) == [waiting.pk]
    assert ids_in_queue(reviewer_client, status="decided") == [done.pk]
    response = reviewer_client.get(QUEUE)
    assert [row.case.pk for row in response.context["recent"]] == [done.pk]
    assert response.context["decided_count"] == 1
    assert response.context["average_time_to_action"].endswith("s")


def test_it_averages_time_to_action_over_decided_cases(gate_setup, reviewer):
    first, second = defer(gate_setup, case_key="1"), defer(gate_setup, case_key="2")
    for case, minutes in ((first, 10), (second, 30)):
        review.review_decide(actor=reviewer, case=case, decision="agree")
        case.refresh_from_db()
        case.opened_at = case.decided_at - timedelta(minutes=minutes)
        case.save(update_fields=["opened_at"])
    cases = review.cases_visible_to(reviewer)
    assert review.average_time_to_action(cases) == timedelta(minutes=20)
    assert review.duration_text(timedelta(minutes=20)) == "20 min 0 s"
    assert review.duration_text(timedelta(days=1, hours=3, minutes=5)) == "1 d 3 h"
    assert review.average_time_to_action(ReviewCase.objects.none()) is None


# --- The case page --------------------------------------------------------------------------


def test_it_shows_the_evidence_packet(gate_setup, reviewer_client):
    earlier = timezone.now() - timedelta(hours=2)
    predict(gate_setup, features=CLEAN, score=0.22, occurred_at=earlier)
    predict(gate_setup, features=CLEAN, score=0.05, case_key="someone-else")
    case = defer(
        gate_setup,
        score=0.61,
        features={"heart_rate": 400, "care_unit": "space", "shoe_size": 44, "lactate": None},
    )
    response = reviewer_client.get(case_url(case))
    assert response.status_code == 200
    body = response.content.decode()
    packet = response.context["packet"]

    flags = {row.name: row.flags for row in packet.inputs}
    assert flags == {
        "age": ("missing",),
        "care_unit": ("unknown category",),
        "heart_rate": ("out of range",),
        "lactate": (),  # optional and allowed to be empty
        "on_dialysis": (),  # optional, not sent
        "shoe_size": ("unexpected",),
    }
    heart_rate = next(row for row in packet.inputs if row.name == "heart_rate")
    assert (heart_rate.value, heart_rate.unit, heart_rate.allowed) == (400, "bpm", "20 – 250")
    assert "heart_rate = 400 is above the allowed maximum 250" in body
    assert "ward, icu, ed" in body
    assert packet.flagged == 4

    assert "Sepsis early warning" in body and "1.0.0" in body
    assert "built-in rules (no policy yet)" in body  # the policy number it was judged by
    assert "alert 0.600 — score at or above" in body  # the version's decision threshold
    assert "0.610" in body and "0.900" in body  # score and confidence
    assert "missing_required_input" in body and "Required input missing: age." in body
    assert [(f.label, f.contribution) for f in packet.factors] == [
        ("heart_rate", 0.21),
        ("lactate", 0.05),
    ]
    trend = [(p.score, p.action, p.is_this_case) for p in packet.trend]
    assert trend == [(0.61, "defer", True), (0.22, "act", False)]  # same case key only
    assert "this case" in body


def test_the_trend_keeps_to_the_reviewers_sites(gate_setup, reviewer_client):
    deploy_south(gate_setup)
    predict(gate_setup, site="SOUTH", features=CLEAN, score=0.15)
    case = defer(gate_setup, score=0.5)
    packet = reviewer_client.get(case_url(case)).context["packet"]
    assert [p.site for p in packet.trend] == ["NORTH"]


def test_every_case_page_view_is_audited_without_patient_data(
    gate_setup, reviewer, reviewer_client
):
    case = defer(gate_setup, score=0.61)
    reviewer_client.get(case_url(case))
    reviewer_client.get(case_url(case))
    views = AuditEvent.objects.filter(action="review.case_view", object_id=str(case.pk))
    assert views.count() == 2
    event = views.last()
    assert event.actor == reviewer and event.object_type == "monitoring.reviewcase"
    recorded = json.dumps(event.payload) + event.summary
    for secret in (case.event.case_key_hash, case.event.case_key_hash[:8], "heart_rate", "400"):
        assert secret not in recorded
    assert event.payload == {"model": "sepsis-ews", "site": "NORTH", "status": "open"}


def test_a_refused_decision_shown_again_is_a_view_too(gate_setup, reviewer_client):
    case = defer(gate_setup)
    reviewer_client.post(decide_url(case), {"decision": "override"})
    assert AuditEvent.objects.filter(action="review.case_view", object_id=str(case.pk)).count() == 1


# --- Deciding -------------------------------------------------------------------------------


def test_a_reviewer_agrees_with_the_model(gate_setup, reviewer, reviewer_client):
    case = defer(gate_setup)
    response = reviewer_client.post(
        decide_url(case), {"decision": "agree", "note": ""}, follow=True
    )
    assert response.redirect_chain == [(QUEUE, 302)]
    assert "Agreed with the model on case" in response.content.decode()
    assert response.context["rows"] == []
    case.refresh_from_db()
    assert (case.status, case.decision, case.reason_code) == ("decided", "agree", "")
    assert case.decided_by == reviewer and case.time_to_action >= timedelta(0)


def test_a_reviewer_overrides_with_a_reason_and_it_is_recorded(
    gate_setup, reviewer, reviewer_client
):
    case = defer(gate_setup, score=0.61)
    response = reviewer_client.post(
        decide_url(case),
        {
            "decision": "override",
            "reason_code": "data_error",
            "note": "Heart rate is a monitor artefact.",
        },
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.decision, case.reason_code) == ("override", "data_error")
    assert case.note == "Heart rate is a monitor artefact."
    latest = case.history.first()
    assert latest.history_user == reviewer and latest.history_change_reason == (
        "review decision: override"
    )
    assert latest.status == "decided" and case.history.count() == 2

    event = AuditEvent.objects.get(action="review.decide")
    assert event.actor == reviewer and event.object_id == str(case.pk)
    assert event.payload["decision"] == "override"
    assert event.payload["reason_code"] == "data_error"
    assert event.payload["time_to_action_seconds"] == pytest.approx(
        case.time_to_action.total_seconds(), abs=0.001
    )
    recorded = json.dumps(event.payload) + event.summary
    for secret in (case.event.case_key_hash, "artefact", "400", "heart_rate"):
        assert secret not in recorded

    page = reviewer_client.get(case_url(case))
    assert page.context["form"] is None
    body = page.content.decode()
    assert "Input data wrong or stale" in body and 'id="time-to-action"' in body


def test_an_override_without_a_reason_is_an_inline_error_and_saves_nothing(
    gate_setup, reviewer_client
):
    case = defer(gate_setup)
    response = reviewer_client.post(decide_url(case), {"decision": "override", "note": "no"})
    assert response.status_code == 200
    assert response.context["form"].errors["reason_code"] == ["An override needs a reason code."]
    assert "An override needs a reason code." in response.content.decode()
    case.refresh_from_db()
    assert case.status == "open" and case.history.count() == 1
    assert not AuditEvent.objects.filter(action="review.decide").exists()


def test_it_refuses_inconsistent_decisions(gate_setup, reviewer):
    case = defer(gate_setup)
    bad = [
        ({"decision": "agree", "reason_code": "data_error"}, "reason_code"),
        ({"decision": "override", "reason_code": "other"}, "note"),
        ({"decision": "override", "reason_code": "bogus"}, "reason_code"),
        ({"decision": "maybe"}, "decision"),
        ({"decision": "agree", "note": "x" * 1001}, "note"),
    ]
    for kwargs, field in bad:
        with pytest.raises(ValidationError) as refused:
            review.review_decide(actor=reviewer, case=case, **kwargs)
        assert field in refused.value.message_dict
    case.refresh_from_db()
    assert case.status == "open"


def test_a_second_decision_is_refused(gate_setup, reviewer, reviewer_client):
    case = defer(gate_setup)
    review.review_decide(actor=reviewer, case=case, decision="agree")
    with pytest.raises(review.CaseAlreadyDecided, match="already decided"):
        review.review_decide(
            actor=reviewer, case=case, decision="override", reason_code="data_error"
        )
    response = reviewer_client.post(
        decide_url(case), {"decision": "override", "reason_code": "data_error"}
    )
    assert response.status_code == 409
    assert "already decided" in response.content.decode()
    case.refresh_from_db()
    assert case.decision == "agree"
    assert AuditEvent.objects.filter(action="review.decide").count() == 1


def test_deciding_needs_the_role_and_the_site(gate_setup, reviewer, user_for):
    deploy_south(gate_setup)
    south = defer(gate_setup, site="SOUTH")
    with pytest.raises(PermissionDenied):
        review.review_decide(actor=reviewer, case=south, decision="agree")
    with pytest.raises(PermissionDenied):
        review.case_opened(actor=reviewer, case=south)
    informaticist = user_for("clinical_informaticist")
    assign(informaticist, "SOUTH")
    with pytest.raises(PermissionDenied):
        review.review_decide(actor=informaticist, case=south, decision="agree")
    with pytest.raises(PermissionDenied):
        review.review_decide(actor=None, case=south, decision="agree")
    director = user_for("medical_director")  # every site, no assignment needed
    review.review_decide(actor=director, case=south, decision="agree")


# --- Access ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "ml_engineer", "compliance_officer"])
def test_roles_without_case_access_get_403(gate_setup, client_for, role):
    case = defer(gate_setup)
    client = client_for(role)
    assert client.get(QUEUE).status_code == 403
    assert client.get(case_url(case)).status_code == 403
    assert client.post(decide_url(case), {"decision": "agree"}).status_code == 403
    assert not AuditEvent.objects.filter(action="review.case_view").exists()


def test_an_informaticist_reads_cases_of_their_sites_but_may_not_decide(
    gate_setup, user_for, client_for
):
    case = defer(gate_setup)
    assign(user_for("clinical_informaticist"), "NORTH")
    client = client_for("clinical_informaticist")
    page = client.get(case_url(case))
    assert page.status_code == 200 and page.context["form"] is None
    assert client.post(decide_url(case), {"decision": "agree"}).status_code == 403
    case.refresh_from_db()
    assert case.status == "open"


def test_anonymous_users_are_sent_to_log_in(gate_setup):
    case = defer(gate_setup)
    for url in (QUEUE, case_url(case)):
        response = Client().get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    response = Client().post(decide_url(case), {"decision": "agree"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_decide_url_accepts_only_post(gate_setup, reviewer_client):
    case = defer(gate_setup)
    assert reviewer_client.get(decide_url(case)).status_code == 405
