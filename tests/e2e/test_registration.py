"""An ML engineer registers a model and its first version through the pages and reads the
generated model card; a viewer is refused the registration form."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Server, log_in

SLUG = "e2e-delirium"
NAME = "Delirium risk (browser test)"


def _register_model(page: Any) -> None:
    page.goto("/models/new/")
    page.fill("[name=name]", NAME)
    page.fill("[name=slug]", SLUG)
    page.select_option("[name=risk_tier]", "moderate")
    page.fill("[name=summary]", "Estimates the risk of delirium within 72 hours of admission.")
    page.fill("[name=contact]", "ml-team@hospital.example")
    page.fill("[name=intended_use]", "Prompts a delirium screen by the bedside nurse.")
    page.fill("[name=intended_population]", "Adults (65+) admitted to medical wards.")
    page.fill("[name=intended_setting]", "Inpatient medical wards")
    page.select_option("[name=clinical_owner]", index=1)
    page.select_option("[name=technical_owner]", index=1)
    page.get_by_role("button", name="Register model").click()


def _register_version(page: Any) -> None:
    page.goto(f"/models/{SLUG}/versions/new/")
    page.fill("[name=version]", "1.0.0")
    page.fill("[name=artifact_uri]", "s3://models/delirium/1.0.0/model.onnx")
    page.fill("[name=artifact_sha256]", "ab" * 32)
    page.fill("[name=training_data_source]", "EHR extract, medical wards, 2022-2023")
    page.fill("[name=training_window_start]", "2022-01-01")
    page.fill("[name=training_window_end]", "2023-12-31")
    page.fill("[name=training_set_size]", "12000")
    page.fill("[name=label_definition]", "Positive CAM screen within 72 hours of admission.")
    page.fill("[name=features-0-name]", "age_years")
    page.select_option("[name=features-0-dtype]", "numeric")
    page.fill("[name=features-0-min_value]", "65")
    page.fill("[name=features-0-max_value]", "120")
    page.get_by_role("button", name="Register version").click()


def test_it_registers_a_model_and_a_version_and_shows_the_card(
    page: Any, vigil_server: Server
) -> None:
    log_in(page, "mlengineer")

    _register_model(page)
    expect(page).to_have_url(f"{vigil_server.url}/models/{SLUG}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(NAME)

    _register_version(page)
    expect(page).to_have_url(f"{vigil_server.url}/models/{SLUG}/versions/1.0.0/")

    page.goto(f"/models/{SLUG}/card/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(NAME)
    expect(page.get_by_text("Prompts a delirium screen by the bedside nurse.")).to_be_visible()
    expect(page.get_by_text("1.0.0").first).to_be_visible()


def test_it_refuses_the_registration_form_to_a_viewer(page: Any, vigil_server: Server) -> None:
    log_in(page, "viewer")
    expect(page).to_have_url(f"{vigil_server.url}/models/")

    response = page.goto("/models/new/")

    assert response is not None and response.status == 403
    expect(page.get_by_role("button", name="Register model")).to_have_count(0)
