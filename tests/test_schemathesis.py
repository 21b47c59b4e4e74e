"""Bad input: every API operation of the OpenAPI schema, fuzzed by schemathesis as every role.

For each operation the schema describes, schemathesis generates requests that fit the schema
(positive) and requests that break it (negative: wrong types, missing fields, out-of-range
values), with the path pointing at real records (the permission matrix's sample) or at
generated ones. Each request goes through the whole WSGI application in-process, as each person
role (a logged-in session, with its CSRF token) and as a model service (its bearer token).

Asserted for every response: never a 5xx, and every 4xx is JSON carrying a message a client
can show. Generation is derandomized, so CI sees the same requests on every run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from registry.assignments import site_assignment_set
from registry.models import SiteAssignment
from tests import test_permission_matrix
from tests.conftest import ROLES
from tests.test_permission_matrix import MATRIX, all_patterns, url_for

#: The permission matrix's records (a model, version, site, release, incident, ...): a fixture.
sample = test_permission_matrix.sample

pytestmark = pytest.mark.django_db

#: Requests per (operation, role) for a role the matrix allows, and for one it denies (the
#: permission check comes before any parsing of the input: a denied role gets 403 whatever it
#: sends).
#: CI keeps the suite well under 15 minutes on 2 cores; run deeper by hand with
#: VIGIL_FUZZ_EXAMPLES=50 (docs/robustness.md).
ALLOWED_EXAMPLES = int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "6"))
DENIED_EXAMPLES = 1
SERVICE = "service"


def _schema() -> schemathesis.BaseSchema:
    document = SchemaGenerator().get_schema(request=None, public=True)
    return schemathesis.openapi.from_dict(document)


SCHEMA = _schema()
OPERATIONS = {
    f"{op.method.upper()} {op.path}": op
    for op in (result.ok() for result in SCHEMA.get_all_operations())
}


def _template_regex(path: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", path)
    pattern = "".join(
        f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
    )
    return re.compile(f"^{pattern}$")


def _targets(records: dict[str, Any]) -> dict[tuple[str, str], tuple[str, dict[str, str]]]:
    """(method, schema path) → (URL name, path parameters naming the sample's records)."""
    templates = {path: _template_regex(path) for path in {op.path for op in OPERATIONS.values()}}
    found = {}
    for name, pattern in all_patterns().items():
        url = url_for(name, pattern, records)
        matches = [path for path, regex in templates.items() if regex.match(url)]
        if not matches:
            continue
        # /releases/rollback/ also fits /releases/{id}/: the most literal template is its own.
        path = max(matches, key=lambda p: len(re.sub(r"\{\w+\}", "", p)))
        for method in MATRIX[name]:
            found[(method, path)] = (name, templates[path].match(url).groupdict())
    return found


def _credentials(role: str, records: dict[str, Any], user_for: Any) -> dict[str, Any]:
    """Headers and cookies a real client of this role sends."""
    if role == SERVICE:
        return {"headers": {"Authorization": f"Bearer {records['service'].token}"}, "cookies": {}}
    user = user_for(role)
    if not SiteAssignment.objects.filter(user=user).exists():
        site_assignment_set(actor=None, username=user.username, site_code="NORTH", assigned=True)
    client = Client()
    client.force_login(user)
    csrf = secrets.token_hex(16)  # a 32-character secret: Django accepts it as cookie and header
    return {
        "headers": {"X-CSRFToken": csrf},
        "cookies": {
            settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value,
            settings.CSRF_COOKIE_NAME: csrf,
        },
    }


def _messages(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value.strip():
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _messages(item)
    elif isinstance(value, list):
        for item in value:
            yield from _messages(item)


def problem_with(response: Any, path: str) -> str | None:
    """What is wrong with a response to bad input, or ``None``."""
    status = response.status_code
    if status >= 500:
        return f"server error {status}"
    if status < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    if "json" not in content_type:
        return f"{status} without a JSON body ({content_type!r}): {response.content[:200]!r}"
    try:
        body = json.loads(response.content)
    except ValueError:
        return f"{status} with a body that is not JSON: {response.content[:200]!r}"
    if not list(_messages(body)):
        return f"{status} with no message in {body!r}"
    return None


def _strategy(op: Any, real_path: dict[str, str]) -> st.SearchStrategy[Any]:
    strategies = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        if real_path:
            strategies.append(op.as_strategy(mode, path_parameters=real_path))
        strategies.append(op.as_strategy(mode))
    return st.one_of(strategies)


def _fuzz(strategy: Any, credentials: dict[str, Any], examples: int) -> set[int]:
    """Send ``examples`` generated requests; the status codes answered."""
    app, seen = WSGIHandler(), set()

    @hypothesis_settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(app=app, **credentials)
        seen.add(response.status_code)
        problem = problem_with(response, case.formatted_path)
        assert problem is None, f"{problem}\nReproduce with: {case.as_curl_command()}"

    run()
    return seen


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_no_input_gets_a_server_error_or_an_unexplained_rejection(
    operation: str, sample: dict[str, Any], user_for: Any
) -> None:
    op = OPERATIONS[operation]
    targets = _targets(sample)
    key = (op.method.upper(), op.path)
    assert key in targets, f"{operation} matches no URL pattern of the permission matrix"
    name, real_path = targets[key]
    allowed = MATRIX[name][op.method.upper()]
    strategy = _strategy(op, real_path)
    failures = []
    for role in [*ROLES, SERVICE]:
        examples = ALLOWED_EXAMPLES if role in allowed else DENIED_EXAMPLES
        try:
            seen = _fuzz(strategy, _credentials(role, sample, user_for), examples)
        except Exception as exc:  # noqa: BLE001 - every role is tried; all failures reported
            notes = "\n".join(getattr(exc, "__notes__", []))
            failures.append(f"as {role}: {type(exc).__name__}: {exc}\n{notes}")
            continue
        # Guards on the harness itself: an allowed role's credentials reach the endpoint (not
        # every answer a refusal), and no input gets a denied role past the permission check.
        if role in allowed and seen <= {401, 403}:
            failures.append(f"as {role} (allowed): only refusals {sorted(seen)}")
        if role not in allowed and any(status < 400 for status in seen):
            failures.append(f"as {role} (denied): answered {sorted(seen)}")
    assert failures == [], "\n\n".join(failures)


def test_it_answers_an_unrouted_api_path_in_json(client_for: Any) -> None:
    # Found by the fuzzing above: a site code with a colon, /api/v1/sites/%3A/.
    response = client_for("viewer").get("/api/v1/sites/%3A/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert json.loads(response.content)["detail"]
