"""Change control in Chromium, on the seeded demo: an ML engineer opens the demo's calibration
incident at NORTH (the guideline-change scenario), asks for the update ladder's recommendation
on a recent labelled window, proposes the recalibration as a release and submits it with an
authorship signature; the medical director (and, for this high-risk model, quality and safety)
sign it with their passwords; it deploys and the gate applies the mapping to the very next
prediction; a rollback signed by the medical director alone restores the previous state."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import expect

from monitoring.stats.recalibration import apply_mapping
from tests.e2e.conftest import DEMO_PASSWORD, Server, log_in, post_prediction, service_token

MODEL = "sepsis-ews"
SITE = "NORTH"
RAW = 0.3


def _predict(server: Server, token: str) -> dict[str, Any]:
    body = {
        "event_id": str(uuid.uuid4()),
        "model": MODEL,
        "site": SITE,
        "occurred_at": datetime.now(UTC).isoformat(),
        "case_key": f"e2e-{uuid.uuid4().hex}",
        "features": {"heart_rate": 104, "resp_rate": 22, "temperature": 38.1, "sbp": 112,
                     "spo2": 95, "age": 58, "lactate": 1.9, "care_unit": "medical_ward"},
        "score": RAW,
        "confidence": 0.9,
        "cohort": {"age_band": "40-64", "sex": "female"},
    }  # fmt: skip
    return post_prediction(server, token, body)


def _sign(page: Any, username: str, button: str) -> None:
    """The signature ceremony: the user name too when this session has not signed yet."""
    if page.locator("#sign-username").count():
        page.fill("#sign-username", username)
    page.fill("#sign-password", DEMO_PASSWORD)
    page.locator(button).click()


def _switch(page: Any, username: str) -> None:
    page.get_by_role("button", name="Log out").click()
    log_in(page, username)


def _status(page: Any, status: str) -> None:
    expect(page.locator("#release-status")).to_have_attribute("data-status", status)


def test_a_recalibration_from_an_incident_is_signed_deployed_applied_and_rolled_back(
    page: Any, vigil_server: Server
) -> None:
    token = service_token(vigil_server, MODEL, "e2e-release")
    before = _predict(vigil_server, token)
    assert before["score"] == RAW  # nothing recalibrates the demo's scores yet

    # The ML engineer starts from the calibration incident at NORTH.
    log_in(page, "mlengineer")
    page.goto("/incidents/?tab=all")
    page.locator("#incident-queue tbody tr", has_text="site NORTH").first.get_by_role(
        "link"
    ).first.click()
    expect(page).to_have_url(re.compile(r"/incidents/\d+/$"))
    incident = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.locator("#propose-recalibration").click()
    expect(page.locator("#from-incident")).to_contain_text(f"INC-{incident}")
    page.locator("#recommend-form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/recommendations/\d+/"))
    expect(page.locator("#recalibrate-form")).to_be_visible()
    page.locator("#recalibrate-form button[type=submit]").click()

    # A draft release, from the incident; the author submits it with their signature.
    expect(page).to_have_url(re.compile(r"/governance/releases/\d+/"))
    release = int(re.search(r"/releases/(\d+)/", page.url).group(1))
    _status(page, "draft")
    expect(page.locator("#release-facts")).to_contain_text(f"INC-{incident}")
    _sign(page, "mlengineer", "#submit-release")
    _status(page, "submitted")

    # The medical director finds it in the approvals inbox and signs with their password.
    _switch(page, "director")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Governance").click()
    page.locator("#awaiting a", has_text=f"R-{release} ").click()
    _sign(page, "director", "#sign-release")
    expect(page.locator("#signatures")).to_contain_text("Dr. Amara Okafor")
    expect(page.locator("#signatures")).to_contain_text("Approval")
    _status(page, "in_review")  # a high-risk model needs quality and safety too
    _switch(page, "quality")
    page.goto(f"/governance/releases/{release}/")
    _sign(page, "quality", "#sign-release")
    _status(page, "approved")
    valid = page.locator('#signatures tr[data-valid="true"]')
    expect(valid).to_have_count(3)  # authorship, approval, review: name, time, meaning, hash

    # Deployed, the gate applies the mapping to the next prediction.
    _switch(page, "director")
    page.goto(f"/governance/releases/{release}/")
    page.locator("#deploy-release").click()
    _status(page, "deployed")
    expect(page.locator("#deploy-time")).to_contain_text(" s to make it live")
    mapping = page.request.get(f"/api/v1/releases/{release}/").json()["score_mapping"]
    after = _predict(vigil_server, token)
    expected = apply_mapping(RAW, mapping["intercept"], mapping["slope"])
    assert abs(after["score"] - expected) < 1e-9 and after["score"] != RAW

    # Rollback: proposed on the deployments page, one medical director's signature deploys it.
    _switch(page, "mlengineer")
    page.goto(f"/governance/models/{MODEL}/deployments/")
    page.locator("#rollback input[type=checkbox][value=NORTH]").check()
    page.fill("#id_rationale", "The recalibrated scores look wrong on the ward: back out.")
    page.locator("#propose-rollback").click()
    _status(page, "submitted")
    rollback = int(re.search(r"/releases/(\d+)/", page.url).group(1))
    _switch(page, "director")
    page.goto(f"/governance/releases/{rollback}/")
    _sign(page, "director", "#sign-release")
    _status(page, "deployed")
    expect(page.locator("#deploy-time")).to_be_visible()
    restored = _predict(vigil_server, token)
    assert restored["score"] == RAW and restored["version"] == before["version"]
    assert restored["policy_version"] == before["policy_version"]
