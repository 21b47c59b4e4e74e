"""Property-based fuzzing of the gate endpoints: whatever a client sends, the answer is a
clear 2xx/4xx, never a server error, and nothing malformed is stored."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitoring.models import PredictionEvent

pytestmark = pytest.mark.django_db

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "event_id",
    "model",
    "site",
    "occurred_at",
    "case_key",
    "features",
    "score",
    "confidence",
    "top_factors",
    "cohort",
    "version",
]
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def mutated(base: dict, changes: dict, dropped: list[str]) -> dict:
    body = {**base, **changes}
    for name in dropped:
        body.pop(name, None)
    return body


@FUZZ
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4),
    dropped=st.lists(st.sampled_from(FIELDS), max_size=3),
    features=st.dictionaries(
        st.sampled_from(["age", "heart_rate", "lactate", "care_unit", "on_dialysis", "other"]),
        scalars,
        max_size=6,
    ),
)
def test_the_single_endpoint_never_fails_with_a_server_error(
    gate_setup, changes, dropped, features
):
    body = mutated(gate_setup.payload(features=features), changes, dropped)
    before = PredictionEvent.objects.count()
    response = gate_setup.client.post("/api/v1/predictions/", body, format="json")
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert response.json(), "a refusal says why"
        assert PredictionEvent.objects.count() == before, "a refused prediction is not stored"
    else:
        assert response.json()["action"] in {"act", "defer", "shadow"}


@FUZZ
@given(
    batch=st.lists(
        st.one_of(
            json_values,
            st.builds(
                lambda c: c, st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5)
            ),
        ),
        max_size=5,
    ),
    valid=st.integers(min_value=0, max_value=3),
)
def test_the_bulk_endpoint_never_fails_with_a_server_error(gate_setup, batch, valid):
    body = batch + [gate_setup.payload(event_id=str(uuid.uuid4())) for _ in range(valid)]
    response = gate_setup.client.post("/api/v1/predictions/bulk/", body, format="json")
    assert response.status_code < 500, response.content
    if response.status_code == 200:
        results = response.json()["results"]
        assert len(results) == len(body)
        assert [r["index"] for r in results] == list(range(len(body)))
        # every well-formed valid item was stored
        assert sum(r["status"] == 201 for r in results) >= valid
