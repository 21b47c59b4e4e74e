"""The review queue in Chromium: a reviewer opens a deferred case, reads its evidence, overrides
the model with a reason, and the case leaves the queue.

The case is made here, through the real gate API with a fresh service token, so the test does
not depend on what ``seed_demo`` logs; it is found again by its review case id and its unique
score, never as "the first row".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    Server,
    _manage,
    _server_env,
    log_in,
    post_prediction,
    service_token,
)

MODEL = "sepsis-ews"
SITE = "NORTH"
#: High enough to sit on the queue's first page, unusual enough to recognise.
SCORE = 0.9987


@dataclass(frozen=True)
class Deferred:
    review_case_id: int
    answer: dict[str, Any]


def _assign_reviewer(env: dict[str, str]) -> None:
    done = _manage(env, "assign_site", "reviewer", SITE)
    # seed_demo may assign the demo reviewer already; that is fine too.
    assert done.returncode == 0 or "already assigned" in done.stderr, done.stderr


def _post_prediction(server: Server, token: str) -> dict[str, Any]:
    body = {
        "event_id": str(uuid.uuid4()),
        "model": MODEL,
        "site": SITE,
        "occurred_at": datetime.now(UTC).isoformat(),
        "case_key": f"e2e-{uuid.uuid4().hex}",
        "features": {
            "heart_rate": 400,  # outside 20–250: the gate must defer to a human
            "resp_rate": 26,
            "temperature": 38.6,
            "sbp": 94,
            "spo2": 92,
            "age": 71,
            "lactate": 3.4,
            "care_unit": "medical_ward",
        },
        "score": SCORE,
        "confidence": 0.95,
        "top_factors": [
            {"feature": "heart_rate", "contribution": 0.31},
            {"feature": "lactate", "contribution": 0.12},
        ],
        "cohort": {"age_band": "65-79", "sex": "female"},
    }
    return post_prediction(server, token, body)


@pytest.fixture
def deferred_case(vigil_server: Server) -> Deferred:
    env = _server_env(vigil_server.var_dir)
    _assign_reviewer(env)
    answer = _post_prediction(vigil_server, service_token(vigil_server, MODEL, "e2e-review"))
    assert answer["action"] == "defer", answer
    assert answer["review_case_id"], answer
    return Deferred(review_case_id=int(answer["review_case_id"]), answer=answer)


def test_a_reviewer_overrides_a_deferred_case_and_it_leaves_the_queue(
    page: Any, vigil_server: Server, deferred_case: Deferred
) -> None:
    case_id = deferred_case.review_case_id
    log_in(page, "reviewer")
    page.goto("/review/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Review queue")

    # Narrow the queue to the site and model, as a reviewer would.
    filters = page.get_by_role("form", name="Filter the review queue")
    filters.locator("select[name=site]").select_option(label="NORTH — North General Hospital")
    filters.get_by_role("button", name="Filter").click()
    waiting = page.locator("section[aria-labelledby=queue-heading]")
    row = waiting.locator(f"tr[data-case='{case_id}']")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-score", f"{SCORE:.4f}")
    expect(row).to_contain_text("invalid input")
    expect(row).to_contain_text(SITE)

    row.get_by_role("link", name="Open").click()
    expect(page).to_have_url(f"{vigil_server.url}/review/{case_id}/")
    main = page.locator("main")
    expect(main.get_by_role("heading", level=1)).to_contain_text("Inpatient sepsis early warning")
    expect(page.locator("#case-score")).to_have_text("0.999")
    expect(main).to_contain_text("heart_rate = 400 is above the allowed maximum 250")
    heart_rate = page.locator("#input-heart_rate")
    expect(heart_rate).to_contain_text("400")
    expect(heart_rate).to_contain_text("out of range")
    expect(heart_rate).to_contain_text("20 – 250")
    expect(page.locator("#input-resp_rate")).to_contain_text("ok")
    expect(main.locator("table.factors")).to_contain_text("heart_rate")
    expect(main.locator("table.trend tr.this-case")).to_contain_text("defer")

    decision = page.locator("#decision")
    decision.get_by_label("Override the model").check()
    decision.get_by_role("button", name="Record decision").click()
    # An override without a reason is refused inline, and nothing is saved.
    expect(page.locator("#decision")).to_contain_text("An override needs a reason code.")

    decision = page.locator("#decision")
    decision.get_by_label("Override the model").check()
    decision.locator("select[name=reason_code]").select_option("data_error")
    decision.locator("textarea[name=note]").fill("Heart rate reading is a monitor artefact.")
    decision.get_by_role("button", name="Record decision").click()

    expect(page).to_have_url(f"{vigil_server.url}/review/")
    expect(page.locator(".messages")).to_contain_text("Overrode the model")
    waiting = page.locator("section[aria-labelledby=queue-heading]")
    expect(waiting.locator(f"tr[data-case='{case_id}']")).to_have_count(0)
    recent = page.locator("section[aria-labelledby=recent-heading]")
    expect(recent.locator(f"tr[data-case='{case_id}']")).to_contain_text(
        "Input data wrong or stale"
    )

    page.goto(f"/review/{case_id}/")
    expect(page.locator("#decision-record")).to_contain_text("Override")
    expect(page.locator("#time-to-action")).not_to_be_empty()
    expect(page.locator("form.decision-form")).to_have_count(0)
