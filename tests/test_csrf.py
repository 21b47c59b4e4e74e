"""CSRF on every form: each page, rendered for each role allowed to see it, puts Django's token
in every POST form, and a state-changing POST without the token is refused with a 403."""

from __future__ import annotations

import secrets
from html.parser import HTMLParser
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests import test_permission_matrix
from tests.test_permission_matrix import MATRIX, all_patterns, url_for
from tests.test_security_headers import client_as

#: The permission matrix's records (a model, version, site, release, incident, ...): a fixture.
sample = test_permission_matrix.sample

pytestmark = pytest.mark.django_db


class PostForms(HTMLParser):
    """Every <form method="post"> of a page: its action and whether it carries the token."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self._open = {
                "action": found.get("action") or "(this page)",
                "post": (found.get("method") or "get").lower() == "post",
                "token": False,
            }
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None:
            if found.get("name") == "csrfmiddlewaretoken" and found.get("value"):
                self._open["token"] = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def is_api(name: str) -> bool:
    return name.split(":")[0].endswith("-api") or name in ("api-schema", "api-docs")


def page_names() -> list[str]:
    """Every URL the matrix lets someone GET, except the JSON API (it has no forms, and its
    session-authenticated writes are CSRF-checked by DRF's SessionAuthentication)."""
    return [
        name for name, methods in sorted(MATRIX.items()) if "GET" in methods and not is_api(name)
    ]


@pytest.mark.parametrize("name", page_names())
def test_every_post_form_carries_the_csrf_token_for_every_role(
    name: str, sample: dict[str, Any], user_for: Any
) -> None:
    url = url_for(name, all_patterns()[name], sample)
    missing = []
    for role in sorted(MATRIX[name]["GET"]):
        response = client_as(role, user_for).get(url)
        assert response.status_code == 200, f"GET {url} as {role}: {response.status_code}"
        if not response["Content-Type"].startswith("text/html"):
            continue
        parser = PostForms()
        parser.feed(response.content.decode())
        missing += [
            f"{role}: form to {form['action']}"
            for form in parser.forms
            if form["post"] and not form["token"]
        ]
    assert missing == [], f"{url}: POST forms without csrfmiddlewaretoken: {missing}"


def test_the_login_form_carries_the_token() -> None:
    parser = PostForms()
    parser.feed(Client().get("/accounts/login/").content.decode())
    assert [form["token"] for form in parser.forms if form["post"]] == [True]


#: State-changing pages across the apps: (URL name, a role allowed to POST, form fields).
STATE_CHANGES = [
    ("registry:site_create", "ml_engineer", {"code": "EAST", "name": "East"}),
    ("incidents:acknowledge", "incident_commander", {}),
    ("review:decide", "reviewer", {"decision": "agree", "reason": "csrf"}),
    ("governance:release-withdraw", "medical_director", {"reason": "csrf"}),
    ("audit:verify", "compliance_officer", {}),
    ("monitor:evaluate", "ml_engineer", {}),
]


@pytest.mark.parametrize(("name", "role", "fields"), STATE_CHANGES)
def test_a_post_without_the_token_is_refused(
    name: str, role: str, fields: dict[str, str], sample: dict[str, Any], user_for: Any
) -> None:
    url = url_for(name, all_patterns()[name], sample)
    client_as(role, user_for)  # the role's user, assigned to the sample's site
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_for(role))

    refused = client.post(url, fields)
    assert refused.status_code == 403, f"POST {url} without a token: {refused.status_code}"
    assert b"CSRF" in refused.content

    # The same request with the token gets past the check (whatever the form then says).
    secret = secrets.token_hex(16)
    client.cookies[settings.CSRF_COOKIE_NAME] = secret
    accepted = client.post(url, {**fields, "csrfmiddlewaretoken": secret})
    assert accepted.status_code != 403, f"POST {url} with the token: {accepted.status_code}"
