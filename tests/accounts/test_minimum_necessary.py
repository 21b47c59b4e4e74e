"""Minimum necessary, enforced: docs/minimum-necessary.md's matrix (read from the file) against
what each role actually gets from every page and endpoint that shows each category of data;
and aggregate pages never show one case's values."""

# Fixtures are imported by name and then requested as arguments, which ruff reads as
# redefinitions.
# ruff: noqa: F401, F811

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ServiceAccount, hash_token
from registry.assignments import site_assignment_set
from tests.accounts.test_break_glass import review_access
from tests.conftest import ROLES
from tests.monitoring.conftest import gate_setup
from tests.monitoring.test_review import defer

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.test_access_review")]

DOC = Path(__file__).resolve().parents[2] / "docs" / "minimum-necessary.md"
WHO = [*ROLES, "service"]
#: Values no page but the case page may show: a heart rate and a lactate nobody else has.
HEART_RATE, LACTATE = 251.75, 13.579
FEATURES = {"age": 64, "heart_rate": HEART_RATE, "lactate": LACTATE, "care_unit": "ward"}


def documented_matrix() -> dict[str, dict[str, str]]:
    """``{category: {role: "yes" | "sites" | "no"}}`` from the table between the markers."""
    text = DOC.read_text()
    table = text.split("<!-- matrix:start -->", 1)[1].split("<!-- matrix:end -->", 1)[0]
    lines = [line.strip() for line in table.strip().splitlines()]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")][1:]
    matrix = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        category = re.fullmatch(r"`(\w+)`", cells[0])
        assert category, f"category cell must be `key`: {cells[0]!r}"
        matrix[category[1]] = dict(zip(header, cells[1:], strict=True))
    return matrix


# (kind, url name, kwargs from the sample) of every page and endpoint showing each category.
EXPOSED_AT: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "clinical_inputs": [("page", "review:case", ("case",))],
    "case_key_hash": [("page", "review:queue", ()), ("page", "review:case", ("case",))],
    "case_scores_decisions": [("page", "review:queue", ()), ("page", "review:case", ("case",))],
    "aggregate_monitoring": [
        ("page", "monitor:overview", ()),
        ("page", "monitor:dashboard", ("slug",)),
        ("api", "monitor-api:metric-results", ()),
    ],
    "incidents_alerts": [
        ("page", "incidents:queue", ()),
        ("page", "incidents:alerts", ()),
        ("api", "incidents-api:alert-list", ()),
        ("api", "incidents-api:incident-list", ()),
    ],
    "releases_signatures": [
        ("page", "governance:release-list", ()),
        ("api", "governance-api:release-list", ()),
    ],
    "audit_trail": [("page", "audit:trail", ()), ("api", "audit-api:audit-event-list", ())],
    "access_logs": [("page", "access:review", ())],
    # Shown nowhere: checked by scanning pages for the token below.
    "service_tokens": [],
}


@pytest.fixture
def sample(gate_setup: Any, review_access: None) -> dict[str, Any]:
    case = defer(gate_setup, features=FEATURES, score=0.83)
    return {"case": case.pk, "slug": gate_setup.version.model.slug, "gate": gate_setup,
            "ref": case.event.case_key_hash[:8], "hash": case.event.case_key_hash}  # fmt: skip


def client_as(who: str, kind: str, sample: dict[str, Any], user_for: Any) -> Client | APIClient:
    """A client for ``who``: people are assigned to the case's site, so only the role decides."""
    client = APIClient() if kind == "api" else Client()
    if who == "service" and kind == "api":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {sample['gate'].token}")
    elif who == "service":
        client.force_login(ServiceAccount.objects.get(name="sepsis-scorer").user)
    else:
        user = user_for(who)
        if not user.site_assignments.exists():
            site_assignment_set(
                actor=None, username=user.username, site_code="NORTH", assigned=True
            )
        client.force_login(user)
    return client


def url_of(name: str, keys: tuple[str, ...], sample: dict[str, Any]) -> str:
    return reverse(name, args=[sample[key] for key in keys])


def is_allowed(response: Any) -> bool:
    if response.status_code == 200:
        return True
    assert response.status_code in (302, 401, 403, 404), response.status_code
    return False


def test_the_documented_matrix_covers_every_category_and_every_role():
    matrix = documented_matrix()
    assert set(matrix) == set(EXPOSED_AT)
    for category, cells in matrix.items():
        assert list(cells) == WHO, category
        assert set(cells.values()) <= {"yes", "sites", "no"}, category


@pytest.mark.parametrize("category", sorted(EXPOSED_AT))
def test_each_role_sees_exactly_what_the_matrix_says(category, sample, user_for):
    documented = documented_matrix()[category]
    for who in WHO:
        for kind, name, keys in EXPOSED_AT[category]:
            response = client_as(who, kind, sample, user_for).get(url_of(name, keys, sample))
            expected = documented[who] != "no"
            assert is_allowed(response) == expected, (
                f"{category}: {who} got {response.status_code} from {name}, the matrix says "
                f"{documented[who]!r}"
            )


def test_the_case_page_is_where_the_inputs_and_the_reference_show(sample, client_for):
    body = client_for("medical_director").get(url_of("review:case", ("case",), sample))
    text = body.content.decode()
    assert str(LACTATE) in text and str(HEART_RATE) in text and sample["ref"] in text


def test_sites_roles_see_no_inputs_outside_their_sites(sample, client_for):
    # Assigned to no site: the case page offers break-glass, and shows none of the case.
    for role in ("reviewer", "clinical_informaticist"):
        response = client_for(role).get(url_of("review:case", ("case",), sample))
        text = response.content.decode()
        assert response.status_code == 403 and 'name="reason"' in text
        assert str(LACTATE) not in text and sample["ref"] not in text


AGGREGATE_PAGES = [
    ("page", "monitor:overview", ()),
    ("page", "monitor:dashboard", ("slug",)),
    ("api", "monitor-api:metric-results", ()),
    ("page", "registry:model_detail", ("slug",)),
    ("page", "cards:card", ("slug",)),
    ("page", "incidents:queue", ()),
    ("page", "governance:inbox", ()),
    ("page", "audit:trail", ()),
    ("api", "audit-api:audit-event-list", ()),
    ("page", "access:review", ()),
]


def test_aggregate_pages_never_show_a_cases_values_or_key(sample, client_for, api_for):
    # The case was opened (audited) and decided first, so the trail has every kind of event.
    director = client_for("medical_director")
    director.get(url_of("review:case", ("case",), sample))
    director.post(reverse("review:decide", args=[sample["case"]]), {"decision": "agree"})
    for kind, name, keys in AGGREGATE_PAGES:
        role = "compliance_officer" if name == "access:review" else "medical_director"
        client = api_for(role) if kind == "api" else client_for(role)
        response = client.get(url_of(name, keys, sample))
        assert response.status_code == 200, name
        text = response.content.decode()
        for secret in (str(LACTATE), str(HEART_RATE), sample["hash"], sample["ref"]):
            assert secret not in text, f"{name} shows {secret}"


def test_no_page_or_endpoint_shows_a_service_token(sample, client_for, api_for):
    token = sample["gate"].token
    for kind, name, keys in AGGREGATE_PAGES:
        for role in ("compliance_officer", "medical_director", "ml_engineer"):
            client = api_for(role) if kind == "api" else client_for(role)
            text = client.get(url_of(name, keys, sample)).content.decode()
            assert token not in text and hash_token(token) not in text, (name, role)
