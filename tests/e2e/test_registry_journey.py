"""The registry's main journey in Chromium: an ML engineer registers a model and a version and
reads its model card; a viewer is refused the registration form."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Server, log_in


def submit(page: Any, label: str) -> None:
    page.locator("main").get_by_role("button", name=label).click()


def test_an_ml_engineer_registers_a_model_and_version_and_reads_its_card(
    page: Any, vigil_server: Server
) -> None:
    log_in(page, "mlengineer")
    page.get_by_role("link", name="Register a model").click()
    expect(page).to_have_url(f"{vigil_server.url}/models/new/")

    page.fill("input[name=name]", "Acute kidney injury risk")
    page.fill("input[name=slug]", "aki-risk")
    page.select_option("select[name=risk_tier]", "high")
    page.fill("textarea[name=summary]", "Predicts AKI (KDIGO stage 2+) within 48 hours.")
    page.fill("input[name=contact]", "aki-team@hospital.test")
    page.fill("textarea[name=intended_use]", "Prompts nephrology review of at-risk inpatients.")
    page.fill("textarea[name=intended_population]", "Adult inpatients (18+), not on dialysis.")
    page.fill("textarea[name=intended_setting]", "Adult medical and surgical wards")
    page.select_option("select[name=clinical_owner]", label="Dr. Amara Okafor (director)")
    page.select_option("select[name=technical_owner]", label="Priya Raman (mlengineer)")
    submit(page, "Register model")

    expect(page).to_have_url(f"{vigil_server.url}/models/aki-risk/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Acute kidney injury risk")

    page.get_by_role("link", name="Register a version").click()
    page.fill("input[name=version]", "1.0.0")
    page.fill("input[name=artifact_uri]", "s3://models/aki/1.0.0/model.onnx")
    page.fill("input[name=artifact_sha256]", "c" * 64)
    page.fill("textarea[name=training_data_source]", "EHR extract, 2 hospitals")
    page.fill("input[name=training_window_start]", "2021-01-01")
    page.fill("input[name=training_window_end]", "2023-06-30")
    page.fill("input[name=training_set_size]", "48210")
    page.fill("textarea[name=label_definition]", "KDIGO stage 2 or 3 within 48 hours")
    page.fill("input[name=features-0-name]", "creatinine")
    page.select_option("select[name=features-0-dtype]", "numeric")
    page.fill("input[name=features-0-min_value]", "0")
    page.fill("input[name=features-0-max_value]", "20")
    page.fill("textarea[name=cohorts]", "sex: F, M\nage_band: 18-39, 40-64, 65+")
    submit(page, "Register version")

    expect(page).to_have_url(f"{vigil_server.url}/models/aki-risk/versions/1.0.0/")
    expect(page.locator("main")).to_contain_text("creatinine")

    page.goto("/models/aki-risk/")
    page.get_by_role("link", name="Model card").click()
    expect(page).to_have_url(f"{vigil_server.url}/models/aki-risk/card/")
    main = page.locator("main")
    expect(main).to_contain_text("Acute kidney injury risk")
    expect(main).to_contain_text("Adult inpatients (18+), not on dialysis.")
    expect(main).to_contain_text("KDIGO stage 2 or 3 within 48 hours")
    # A new model's card is honest about what is not yet known.
    developer = main.locator("#field-developer")
    expect(developer).to_contain_text("missing")
    expect(main).to_contain_text("complete")


def test_a_viewer_is_refused_the_registration_form(page: Any, vigil_server: Server) -> None:
    log_in(page, "viewer")
    expect(page.get_by_role("link", name="Register a model")).to_have_count(0)
    response = page.goto("/models/new/")
    assert response is not None and response.status == 403
    expect(page.locator("main")).to_contain_text("Your role does not allow this page")
