"""An incident worked end to end in Chromium: the incident commander opens the queue on the
seeded demo (``seed_demo`` evaluates the monitors and raises incidents), opens a triggered
incident, acknowledges, investigates, mitigates, checks off every runbook step with evidence,
records the patient-impact assessment, resolves, records the review with one corrective
action and closes it; the page then shows the status and the whole timeline."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_USERS, log_in

COMMANDER = next(name for name, role in DEMO_USERS.items() if role == "incident_commander")


def _expect_status(page: Any, status: str) -> None:
    expect(page.locator("#incident-status")).to_have_attribute("data-status", status)


def test_the_commander_works_an_incident_from_the_queue_to_closed(page: Any) -> None:
    log_in(page, COMMANDER)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Incidents").click()
    expect(page.get_by_role("heading", name="Incidents", exact=True)).to_be_visible()
    page.locator("#tab-all").click()
    row = page.locator("#incident-queue tbody tr", has_text="Triggered").first
    expect(row).to_be_visible()
    row.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/incidents/\d+/$"))
    _expect_status(page, "triggered")
    expect(page.locator("#alerts article").first).to_contain_text("What changed")
    expect(page.locator("#alerts .metric-link").first).to_be_visible()

    for action, status in (
        ("acknowledge", "acknowledged"),
        ("investigate", "investigating"),
        ("mitigate", "mitigated"),
    ):
        page.locator(f"#do-{action}").click()
        _expect_status(page, status)

    steps = page.locator("#runbook ol.steps > li")
    total = steps.count()
    assert total >= 1
    for step in range(total):
        page.fill(f"#evidence-{step}", f"Evidence for step {step + 1}: checked with the team")
        page.locator(f"#check-{step}").click()
        expect(page.locator(f"#step-{step} .done")).to_contain_text("Evidence for step")

    expect(page.locator("#impact-counts")).to_contain_text("predictions")
    page.fill("#id_assessment", "Scores ran on missing lactate; deferred cases were reviewed.")
    page.locator("#do-impact").click()
    expect(page.locator("#impact-recorded")).to_contain_text("Harm found: no")

    page.locator("#do-resolve").click()
    _expect_status(page, "resolved")

    page.fill("#id_summary", "The lab feed dropped lactate at one site; fixed at the interface.")
    page.fill("#ca-0-action", "Alarm on lactate feed volume")
    page.fill("#ca-0-owner", "data engineering")
    page.fill("#ca-0-due", "2026-12-31")
    page.locator("#do-review").click()
    expect(page.locator("#review-recorded")).to_contain_text("Alarm on lactate feed volume")

    page.locator("#do-close").click()
    _expect_status(page, "closed")
    expect(page.locator("#no-actions")).to_contain_text("nothing left to do")
    timeline = page.locator("#timeline")
    for text in (
        "triggered → acknowledged",
        "acknowledged → investigating",
        "investigating → mitigated",
        "Impact assessed",
        f"Step {total} done",
        "mitigated → resolved",
        "Post-incident review recorded",
        "resolved → closed",
    ):
        expect(timeline).to_contain_text(text)
    expect(timeline).to_contain_text(COMMANDER)
