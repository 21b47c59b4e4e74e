"""The gate's hot path (``monitoring.api.fast``) answers exactly as the DRF view does, hands
every unusual request to it, and never answers from stale deployments or policies; the fast
shape check never accepts what the serializer refuses."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts.authentication import _account_with_user, authenticate_token
from accounts.models import ServiceAccount
from accounts.services import service_account_create
from monitoring.api import fast
from monitoring.api.serializers import PredictionInSerializer, fast_prediction
from monitoring.models import PredictionEvent, ReviewCase
from monitoring.policies import policy_create
from registry import services as registry
from tests.factories import ClinicalModelFactory, SiteFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/predictions/"
DRF_URL = URL + "?via=drf"  # a query string: the fast path hands the request to the DRF view
BAD = {"age": 64, "heart_rate": 400, "care_unit": "ward"}  # deferred: opens a review case


@pytest.fixture
def drf_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests the DRF view answered (the rest took the fast path)."""
    calls: list[str] = []
    plain = fast._drf_view

    def counted(request: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(request.get_full_path())
        return plain(request, *args, **kwargs)

    monkeypatch.setattr(fast, "_drf_view", counted)
    return calls


def _post(client: Any, url: str, body: Any, **extra: Any) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json", **extra)


def _same_response(fast_response: Any, drf_response: Any, *, differ: tuple[str, ...] = ()) -> None:
    assert fast_response.status_code == drf_response.status_code
    for header in ("Content-Type", "Allow", "Vary", "X-Frame-Options", "Content-Length"):
        if header == "Content-Length" and differ:
            continue
        assert fast_response.get(header) == drf_response.get(header), header
    mine, theirs = fast_response.json(), drf_response.json()
    for name in differ:
        mine.pop(name, None), theirs.pop(name, None)
    assert mine == theirs


# --- The fast path answers as the DRF view does -----------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {},  # act
        {"features": BAD},  # defer, with a review case
        {"model": "nope"},  # 404
        {"site": "MOON"},  # 404
        {"version": "9.9.9"},  # 409 version_mismatch
        {"occurred_at": datetime(2019, 6, 1, tzinfo=UTC).isoformat()},  # 409 no deployment
        {"occurred_at": (timezone.now() + timedelta(hours=1)).isoformat()},  # 400 future
        {"case_key": "caf\u00e9 \u2028 \U0001f600", "cohort": {"sex": "F\u2029x"}},  # non-ASCII
    ],
)
def test_the_fast_path_answers_byte_for_byte_as_drf(gate_setup, drf_calls, change):
    body = gate_setup.payload(**change)
    other = dict(body, event_id=str(uuid.uuid4()))
    mine = _post(gate_setup.client, URL, body)
    theirs = _post(gate_setup.client, DRF_URL, other)
    assert drf_calls == [DRF_URL]
    differ = ("event_id", "review_case_id") if mine.status_code < 300 else ()
    if mine.status_code == 400:  # "in the future (server time ...)": the clock moved on
        differ = ("occurred_at",)
        assert mine.json()["code"] == theirs.json()["code"] == "time_in_future"
    _same_response(mine, theirs, differ=differ)
    if not differ:  # errors name no event: the very same bytes
        assert mine.content == theirs.content


def test_a_replay_and_a_reused_id_answer_as_drf(gate_setup, drf_calls):
    body = gate_setup.payload(features=BAD)
    first = _post(gate_setup.client, URL, body)
    assert first.status_code == 201
    _same_response(_post(gate_setup.client, URL, body), _post(gate_setup.client, DRF_URL, body))
    assert _post(gate_setup.client, URL, body).json() == first.json()
    changed = dict(body, score=0.99)
    mine, theirs = (
        _post(gate_setup.client, URL, changed),
        _post(gate_setup.client, DRF_URL, changed),
    )
    assert mine.status_code == 409 and mine.content == theirs.content
    assert drf_calls == [DRF_URL, DRF_URL]
    assert PredictionEvent.objects.count() == 1 and ReviewCase.objects.count() == 1


def test_a_model_outside_the_tokens_scope_answers_as_drf(gate_setup, drf_calls):
    ClinicalModelFactory(slug="readmit-30d")
    issued = service_account_create(actor=None, name="readmit-scorer", model_slugs=["readmit-30d"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    mine = _post(client, URL, gate_setup.payload())
    theirs = _post(client, DRF_URL, gate_setup.payload())
    assert mine.status_code == 403 and mine.content == theirs.content
    assert drf_calls == [DRF_URL]


def test_a_stored_event_is_answered_as_stored_even_when_it_could_not_be_judged_now(gate_setup):
    body = gate_setup.payload(features=BAD)
    first = _post(gate_setup.client, URL, body).json()
    registry.deployment_end(
        actor=gate_setup.director, deployment=gate_setup.deployment, reason="retired"
    )
    assert _post(gate_setup.client, URL, gate_setup.payload()).status_code == 409
    again = _post(gate_setup.client, URL, body)
    assert again.status_code == 200 and again.json() == first


def test_the_review_case_is_recorded_as_the_drf_path_records_it(gate_setup, drf_calls):
    mine = _post(gate_setup.client, URL, gate_setup.payload(features=BAD)).json()
    theirs = _post(gate_setup.client, DRF_URL, gate_setup.payload(features=BAD)).json()
    rows = [ReviewCase.objects.get(pk=a["review_case_id"]).history.get() for a in (mine, theirs)]
    service_user = ServiceAccount.objects.get(name="sepsis-scorer").user
    for row in rows:
        assert row.history_user == service_user and row.history_type == "+"
        assert row.history_change_reason == "deferred by the gate"


# --- Everything unusual goes to the DRF view ---------------------------------------------------


def test_malformed_bodies_get_drfs_field_errors(gate_setup, drf_calls):
    for change in ({"score": "high"}, {"score": "0.5"}, {"cohort": {"sex": 5}}, {"site": " X"}):
        response = _post(gate_setup.client, URL, gate_setup.payload(**change))
        assert response.status_code in (201, 400, 404)
    assert len(drf_calls) == 4
    assert _post(gate_setup.client, URL, gate_setup.payload(score="high")).json() == {
        "score": ["A valid number is required."]
    }
    bad_json = gate_setup.client.post(URL, "{not json", content_type="application/json")
    assert bad_json.status_code == 400 and "JSON parse error" in bad_json.json()["detail"]
    stored = PredictionEvent.objects.count()
    nan = gate_setup.client.post(
        URL,
        json.dumps(gate_setup.payload()).replace("0.31", "NaN"),
        content_type="application/json",
    )
    assert nan.status_code == 400 and PredictionEvent.objects.count() == stored


def test_people_anonymous_and_bad_tokens_get_drfs_answers(gate_setup, drf_calls, api_for):
    body = gate_setup.payload()
    anonymous = APIClient().post(URL, body, format="json")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Bearer"
    assert api_for("ml_engineer").post(URL, body, format="json").status_code == 403
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Bearer vgl_not-a-token")
    response = forged.post(URL, body, format="json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked service token."}
    malformed = APIClient()
    malformed.credentials(HTTP_AUTHORIZATION="Bearer")
    assert malformed.post(URL, body, format="json").status_code == 401
    assert len(drf_calls) == 4 and not PredictionEvent.objects.exists()


def test_a_revoked_token_is_refused_on_the_very_next_request(gate_setup, drf_calls):
    assert gate_setup.post().status_code == 201
    ServiceAccount.objects.filter(name="sepsis-scorer").update(is_active=False)
    assert gate_setup.post().status_code == 401
    assert len(drf_calls) == 1


def test_other_media_types_and_methods_go_to_drf(gate_setup, drf_calls):
    body = json.dumps(gate_setup.payload())
    html = gate_setup.client.post(
        URL, body, content_type="application/json", HTTP_ACCEPT="text/html"
    )
    assert html.status_code == 201 and html["Content-Type"].startswith("text/html")
    form = gate_setup.client.post(URL, {"event_id": str(uuid.uuid4())})  # multipart
    assert form.status_code == 400
    assert gate_setup.client.get(URL).status_code == 403  # RolePermission: no GET declared
    assert len(drf_calls) == 3


def test_a_session_user_is_not_taken_for_a_service(gate_setup, client_for, drf_calls):
    response = client_for("medical_director").post(
        URL, json.dumps(gate_setup.payload()), content_type="application/json"
    )
    assert response.status_code == 403 and len(drf_calls) == 1


def test_csrf_is_not_required_of_a_token_request(gate_setup):
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {gate_setup.token}")
    response = _post(client, URL, gate_setup.payload())
    assert response.status_code == 201


# --- Nothing is answered from a stale cache ----------------------------------------------------


def test_a_freeze_between_two_calls_defers_the_next_one(gate_setup, drf_calls):
    assert gate_setup.post().json()["action"] == "act"
    registry.deployment_set_frozen(
        actor=gate_setup.director, deployment=gate_setup.deployment, frozen=True, reason="drift"
    )
    body = gate_setup.post().json()
    assert body["action"] == "defer" and body["reasons"][0]["code"] == "frozen_deployment"
    registry.deployment_set_frozen(
        actor=gate_setup.director, deployment=gate_setup.deployment, frozen=False, reason="ok"
    )
    assert gate_setup.post().json()["action"] == "act"
    assert drf_calls == []


def test_a_freeze_between_two_bulk_requests_defers_the_next_one(gate_setup):
    url = "/api/v1/predictions/bulk/"
    first = gate_setup.client.post(url, [gate_setup.payload()] * 1, format="json").json()
    assert first["summary"]["act"] == 1
    registry.deployment_set_frozen(
        actor=gate_setup.director, deployment=gate_setup.deployment, frozen=True, reason="drift"
    )
    items = [gate_setup.payload(case_key=f"c{i}") for i in range(3)]
    after = gate_setup.client.post(url, items, format="json").json()
    assert after["summary"]["defer"] == 3 and ReviewCase.objects.count() == 3


def test_a_new_policy_applies_from_the_next_call(gate_setup):
    assert gate_setup.post(confidence=0.3).json()["policy_version"] == 0
    policy_create(
        actor=None,
        version=gate_setup.version,
        min_confidence=0.5,
        threshold_margin=None,
        population_exclusions=[],
        safety_rules=[],
        reason="low confidence goes to a human",
    )
    body = gate_setup.post(confidence=0.3).json()
    assert body["policy_version"] == 1 and body["action"] == "defer"
    assert body["reasons"][0]["code"] == "low_confidence"
    policy_create(
        actor=None,
        version=gate_setup.version,
        min_confidence=0.2,
        threshold_margin=None,
        population_exclusions=[],
        safety_rules=[],
        reason="relaxed",
        based_on=1,
    )
    body = gate_setup.post(confidence=0.3).json()
    assert body["policy_version"] == 2 and body["action"] == "act"


def test_ending_and_starting_deployments_apply_from_the_next_call(gate_setup):
    assert gate_setup.post().json()["version"] == "1.0.0"
    gate_setup.deploy("2.0.0", at=timezone.now() - timedelta(seconds=1))
    assert gate_setup.post().json()["version"] == "2.0.0"
    live = gate_setup.version.model.deployments.get(ended_at__isnull=True, mode="live")
    registry.deployment_end(actor=gate_setup.director, deployment=live, reason="withdrawn")
    response = gate_setup.post()
    assert response.status_code == 409 and response.json()["code"] == "no_active_deployment"


def test_a_model_removed_from_the_tokens_scope_is_refused_at_once(gate_setup):
    assert gate_setup.post().status_code == 201
    account = ServiceAccount.objects.get(name="sepsis-scorer")
    account.clinical_models.clear()
    response = gate_setup.post()
    assert response.status_code == 403 and response.json()["code"] == "model_not_in_scope"


def test_last_used_is_written_at_most_once_a_minute(gate_setup):
    account = ServiceAccount.objects.get(name="sepsis-scorer")
    assert account.last_used_at is None
    gate_setup.post()
    account.refresh_from_db()
    first = account.last_used_at
    assert first is not None
    gate_setup.post()
    account.refresh_from_db()
    assert account.last_used_at == first
    ServiceAccount.objects.filter(pk=account.pk).update(last_used_at=first - timedelta(minutes=2))
    gate_setup.post()
    account.refresh_from_db()
    assert account.last_used_at > first


# --- The token lookup and the schema -----------------------------------------------------------


def test_the_fast_path_is_on_for_the_views_configuration():
    # Off (everything through DRF) if PredictionView's authentication, permissions, throttles,
    # renderers or parsers ever change from what the fast path emulates.
    assert fast.ENABLED


def test_the_token_lookup_gives_what_the_orm_gives(gate_setup):
    orm = ServiceAccount.objects.select_related("user").get(name="sepsis-scorer")
    found = _account_with_user(orm.token_hash)
    assert found is not None and found.user.service_account is found

    def fields(instance: Any) -> dict[str, Any]:
        return {k: v for k, v in vars(instance).items() if not k.startswith("_")}

    assert fields(found) == fields(orm) and fields(found.user) == fields(orm.user)
    assert _account_with_user("0" * 64) is None
    user, account = authenticate_token(f"Bearer {gate_setup.token}")
    assert account.pk == orm.pk and user.has_perm("monitoring.add_predictionevent")


def test_the_schema_still_documents_the_endpoint(client_for):
    paths = client_for("viewer").get("/api/v1/schema/", {"format": "json"}).json()["paths"]
    operation = paths[URL]["post"]
    assert set(paths[URL]) == {"post"}
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/PredictionInRequest")
    assert {"200", "201"} <= set(operation["responses"])


def test_other_sites_and_models_resolve_in_one_request_each(gate_setup):
    SiteFactory(code="SOUTH")
    assert gate_setup.post(site="SOUTH").status_code == 409
    assert gate_setup.post().status_code == 201


# --- The fast shape check never accepts what the serializer refuses ----------------------------

texts = st.one_of(
    st.sampled_from(["", " ", "x", " x", "x ", "\x00", "\ud800", "caf\u00e9", "a" * 61, "a" * 201]),
    st.text(max_size=8),
)
numbers = st.one_of(
    st.sampled_from([0, 1, 2, -1, 0.5, 1.0, 1.0000001, -0.0, 10**400, True, False]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(texts, scalars, max_size=3),
)
moments = st.one_of(
    st.sampled_from(
        [
            "2024-03-01T08:30:00Z",
            "2024-03-01T08:30:00",
            "2024-03-01T08:30:00+05:30",
            "2024-03-01 08:30:00.123456-08:00",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2024-13-01T08:30:00Z",
            "yesterday",
        ]
    ),
    texts,
)
ids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.uuids().map(lambda u: u.int),
    texts,
)
FIELDS = {
    "event_id": ids,
    "model": st.one_of(st.sampled_from(["sepsis-ews", "a_b-1", "a" * 60, "a" * 61]), texts),
    "site": texts,
    "occurred_at": moments,
    "case_key": texts,
    "features": st.one_of(st.dictionaries(texts, values, max_size=4), values),
    "score": st.one_of(numbers, texts, st.none()),
    "confidence": st.one_of(numbers, texts, st.none()),
    "top_factors": st.one_of(st.lists(values, max_size=4), values),
    "cohort": st.one_of(st.dictionaries(texts, st.one_of(texts, numbers), max_size=3), values),
    "version": st.one_of(texts, st.none(), numbers),
}
VALID = {
    "event_id": "6f1d8e52-3c0b-4b8e-9a57-0a5b2f0e6c11",
    "model": "sepsis-ews",
    "site": "NORTH",
    "occurred_at": "2024-03-01T08:30:00+01:00",
    "case_key": "case-1",
    "features": {"age": 64, "care_unit": "ward", "lactate": None, "on_dialysis": False},
    "score": 0.31,
    "confidence": 1,
    "top_factors": [{"feature": "age", "contribution": 0.1}, "x", 3],
    "cohort": {"sex": "F"},
}


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    changes=st.fixed_dictionaries({}, optional=FIELDS),
    dropped=st.lists(st.sampled_from(sorted(FIELDS)), max_size=2),
)
def test_the_fast_shape_check_agrees_with_the_serializer(changes, dropped):
    raw = {**VALID, **changes}
    for name in dropped:
        raw.pop(name, None)
    fast_item = fast_prediction(raw)
    serializer = PredictionInSerializer(data=raw)
    valid = serializer.is_valid()
    if fast_item is None:
        return
    assert valid, (raw, serializer.errors)
    slow = serializer.to_prediction()
    assert slow == fast_item
    assert slow.body_hash() == fast_item.body_hash()
    assert slow.occurred_at.tzinfo == fast_item.occurred_at.tzinfo


def test_the_fast_shape_check_takes_the_plain_item():
    item = fast_prediction(dict(VALID))
    assert item is not None and item.confidence == 1.0 and isinstance(item.confidence, float)
    serializer = PredictionInSerializer(data=dict(VALID))
    assert serializer.is_valid() and serializer.to_prediction() == item
    assert fast_prediction([VALID]) is None and fast_prediction(None) is None


def test_an_impossible_date_is_a_400_not_a_server_error(gate_setup):
    response = gate_setup.post(occurred_at="2024-13-01T08:30:00Z")
    assert response.status_code == 400 and "occurred_at" in response.json()
