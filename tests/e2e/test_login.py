"""Logging in through the real login page, in Chromium, as each demo role."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_MODEL_NAMES, DEMO_PASSWORD, DEMO_USERS, Server, log_in


@pytest.mark.parametrize(("username", "role"), sorted(DEMO_USERS.items()))
def test_it_logs_each_demo_role_in_to_the_inventory(
    page: Any, vigil_server: Server, username: str, role: str
) -> None:
    log_in(page, username, DEMO_PASSWORD)

    expect(page).to_have_url(f"{vigil_server.url}/models/")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.locator(".whoami .role")).to_contain_text([role])
    expect(page.get_by_role("heading", level=1, name=re.compile("model", re.I))).to_be_visible()
    for name in DEMO_MODEL_NAMES:
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()


def test_it_refuses_a_wrong_password_with_an_error(page: Any, vigil_server: Server) -> None:
    log_in(page, "director", "not-the-password-2026")

    expect(page).to_have_url(f"{vigil_server.url}/accounts/login/")
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
