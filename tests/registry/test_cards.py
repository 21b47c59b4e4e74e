"""The model card: builder, completeness, exports and pages."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from registry import services
from registry.card_exports import card_json, card_markdown, card_xml
from registry.cards import Table, build_card, card_from_data, default_card_version
from registry.models import ClinicalModel, ModelVersion, VersionStatus
from tests.factories import (
    ClinicalModelFactory,
    FeatureSpecFactory,
    ModelVersionFactory,
    SiteFactory,
)

pytestmark = pytest.mark.django_db

#: Every CHAI element named in ../shared/MODEL_CARD.md.
CHAI_ELEMENTS = (
    "ModelName", "ModelDeveloper", "DeveloperContact", "FundingSource", "ReleaseStage",
    "ReleaseDate", "ReleaseVersion", "RegulatoryApproval", "Summary", "OutcomesAndOutputs",
    "ModelType", "IntendedUseAndWorkflow", "PrimaryIntendedUsers", "HowToUse",
    "TargetedPatientPopulation", "CautionedOutOfScopeSettings", "KnownRisksAndLimitations",
    "KnownBiasesOrEthicalConsiderations", "ClinicalRiskLevel", "InputDataSource",
    "OutputAndInputDataTypes", "DevelopmentDataCharacterization", "BiasMitigationApproaches",
    "KeyMetrics", "UsefulnessUsabilityEfficacy", "FairnessEquity", "SafetyReliability",
    "OngoingMaintenance", "PeerReviewedPublications", "ClinicalTrial",
    "PatientConsentOrDisclosure",
)
SECTION_TITLES = (
    "Identity", "Summary", "Uses and directions", "Warnings", "Development data", "Fairness",
    "Validation", "Local performance", "Maintenance", "Human oversight", "Evidence", "Approvals",
)
TOTAL_FIELDS = 61

# A bare factory model (no version): the fields it fills, worked out by hand.
BARE_FILLED = {
    "model_name", "contact", "owners", "release_stage",  # identity 4 / 11
    "summary",  # summary 1 / 5
    "intended_use", "intended_population", "intended_setting",  # uses 3 / 6
    "risk_tier",  # warnings 1 / 4
}
# ... and what a version with thresholds, one feature and validation results adds.
VERSION_FILLED = {
    "release_version", "artifact",  # identity
    "training_data_source", "data_types", "training_window", "training_set_size",
    "label_definition",  # development 5 / 11
    "subgroup_results",  # fairness 1 / 3
    "discrimination", "calibration",  # validation 2 / 5
    "decision_thresholds", "feature_spec",  # oversight 2 / 5
}
VALIDATION = {
    "overall": {
        "auroc": {"value": 0.81, "ci_low": 0.79, "ci_high": 0.83, "n": 5000},
        "brier": {"value": 0.05, "ci_low": 0.045, "ci_high": 0.055, "n": 5000},
    },
    "subgroups": {
        "sex=female": {"auroc": {"value": 0.8, "ci_low": 0.77, "ci_high": 0.83, "n": 2400}},
        "sex=male": {"auroc": {"value": 0.82, "ci_low": 0.79, "ci_high": 0.85, "n": 2600}},
    },
}


def filled_keys(model: ClinicalModel, version: ModelVersion | None = None) -> set[str]:
    card = build_card(model, version=version)
    return {f.key for s in card.sections for f in s.fields if not f.missing}


@pytest.fixture
def versioned() -> ModelVersion:
    version = ModelVersionFactory(validation_results=VALIDATION)
    FeatureSpecFactory(version=version, name="heart_rate", unit="bpm")
    return version


def test_it_marks_every_empty_field_missing_on_a_bare_model() -> None:
    model = ClinicalModelFactory()
    card = build_card(model)
    assert card.version == ""
    assert filled_keys(model) == BARE_FILLED
    assert card.completeness.filled == 9
    assert card.completeness.total == TOTAL_FIELDS
    assert card.completeness.percent == 14  # 9 / 61 = 14.75 %, rounded down
    assert card.field("developer").missing and card.field("developer").value is None
    assert card.field("release_version").note == "No version of this model is registered yet."


def test_it_counts_completeness_per_section() -> None:
    card = build_card(ClinicalModelFactory())
    by_section = {s.key: (s.completeness.filled, s.completeness.total) for s in card.sections}
    assert by_section == {
        "identity": (4, 11), "summary": (1, 5), "uses": (3, 6), "warnings": (1, 4),
        "development": (0, 11), "fairness": (0, 3), "validation": (0, 5), "local": (0, 3),
        "maintenance": (0, 3), "oversight": (0, 5), "evidence": (0, 4), "approvals": (0, 1),
    }
    assert [s.title for s in card.sections] == list(SECTION_TITLES)


def test_it_fills_version_fields_from_the_version(versioned: ModelVersion) -> None:
    card = build_card(versioned.model)
    assert filled_keys(versioned.model) == BARE_FILLED | VERSION_FILLED
    assert card.completeness.filled == 21
    assert card.completeness.percent == 34  # 21 / 61 = 34.4 %
    assert card.field("release_version").value == versioned.version


def test_it_renders_results_with_intervals(versioned: ModelVersion) -> None:
    card = build_card(versioned.model)
    discrimination = card.field("discrimination").value
    assert isinstance(discrimination, Table)
    assert discrimination.rows == (("AUROC", "0.810", "0.790–0.830", "5,000"),)
    calibration = card.field("calibration").value
    assert calibration.rows == (("Brier score", "0.050", "0.045–0.055", "5,000"),)
    subgroups = card.field("subgroup_results")
    assert subgroups.value.rows[0] == ("sex=female", "AUROC", "0.800", "0.770–0.830", "2,400")
    assert subgroups.note == (
        "Lowest subgroup AUROC: 0.800 (sex=female) against 0.810 overall; highest 0.820."
    )


def test_it_says_local_performance_is_not_yet_monitored(versioned: ModelVersion) -> None:
    card = build_card(versioned.model)
    for key in ("local_validity", "local_fairness"):
        assert card.field(key).missing
        assert card.field(key).note.startswith("Not yet monitored")
    assert card.field("releases").missing


def test_it_describes_the_live_version_else_approved_else_newest() -> None:
    model = ClinicalModelFactory()
    assert default_card_version(model) is None
    draft = ModelVersionFactory(model=model, version="3.0.0", status=VersionStatus.DRAFT)
    assert default_card_version(model) == draft
    approved = ModelVersionFactory(model=model, version="2.0.0", status=VersionStatus.APPROVED)
    newer_draft = ModelVersionFactory(model=model, version="4.0.0", status=VersionStatus.DRAFT)
    assert default_card_version(model) == approved
    services.deployment_start(actor=None, version=approved, site=SiteFactory(code="NORTH"),
                              reason="go-live", at=datetime(2025, 1, 6, tzinfo=UTC))
    assert default_card_version(model) == approved
    card = build_card(model)
    assert card.field("release_date").value == "2025-01-06"
    assert card.field("deployments").value.rows[0][:2] == ("NORTH", "2.0.0")
    assert build_card(model, version=newer_draft).version == "4.0.0"


def test_it_refuses_a_version_of_another_model(versioned: ModelVersion) -> None:
    with pytest.raises(ValueError):
        build_card(ClinicalModelFactory(), version=versioned)


# --- Exports ----------------------------------------------------------------------------------


def test_it_exports_every_chai_element_as_parseable_xml(versioned: ModelVersion) -> None:
    card = build_card(versioned.model)
    root = ET.fromstring(card_xml(card))
    tags = {node.tag for node in root.iter()}
    assert set(CHAI_ELEMENTS) <= tags
    assert {f.chai for s in card.sections for f in s.fields if f.chai} <= tags
    assert root.find("BasicInfo/ModelName").text == versioned.model.name
    developer = root.find("BasicInfo/ModelDeveloper")
    assert developer.get("missing") == "true" and not developer.text
    family = root.find("KeyMetrics/UsefulnessUsabilityEfficacy")
    assert "0.810" in family.find("Result").text
    assert family.find("TestType").get("missing") == "true"
    assert root.find("VigilExtensions/Completeness").get("filled") == "21"


def test_it_escapes_text_in_the_xml() -> None:
    name = 'Risk <score> & "friends"\x07'
    model = ClinicalModelFactory(name=name, summary="a < b && c > d ]]> done")
    root = ET.fromstring(card_xml(build_card(model)))
    assert root.find("BasicInfo/ModelName").text == 'Risk <score> & "friends"\ufffd'
    assert root.find("ModelSummary/Summary").text == "a < b && c > d ]]> done"


def test_it_writes_every_section_heading_in_markdown(versioned: ModelVersion) -> None:
    text = card_markdown(build_card(versioned.model))
    for title in SECTION_TITLES:
        assert f"\n## {title}\n" in text
    assert "**MISSING** — Not yet monitored" in text
    assert "| AUROC | 0.810 | 0.790–0.830 | 5,000 |" in text


def test_it_escapes_pipes_in_markdown_tables() -> None:
    version = ModelVersionFactory(decision_thresholds={"a|b": 0.5})
    text = card_markdown(build_card(version.model))
    assert "| a\\|b | 0.500 |" in text


def test_the_json_export_round_trips(versioned: ModelVersion) -> None:
    card = build_card(versioned.model)
    data = json.loads(card_json(card))
    assert card_from_data(data) == card
    assert data["completeness"] == {"filled": 21, "total": TOTAL_FIELDS, "percent": 34}
    assert data["sections"][0]["completeness"] == {"filled": 6, "total": 11, "percent": 54}
    field = next(f for f in data["sections"][6]["fields"] if f["key"] == "discrimination")
    assert field["kind"] == "table" and field["chai"] == "UsefulnessUsabilityEfficacy"


# --- Pages ------------------------------------------------------------------------------------


def test_the_page_marks_empty_fields_missing(client_for, versioned: ModelVersion) -> None:
    response = client_for("viewer").get(reverse("cards:card", args=[versioned.model.slug]))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="field-developer"' in page
    developer = page.split('id="field-developer"', 1)[1].split("</div>", 1)[0]
    assert '<span class="mc-missing-marker">missing</span>' in developer
    assert "21 of 61 fields" in page
    assert "vigil/card.css" in page


def test_anonymous_users_are_sent_to_log_in(versioned: ModelVersion) -> None:
    url = reverse("cards:card", args=[versioned.model.slug])
    response = Client().get(url)
    assert response.status_code == 302
    assert "/login" in response["Location"]
    export = Client().get(reverse("cards:export", args=[versioned.model.slug, "json"]))
    assert export.status_code == 302


def test_the_version_selector_shows_another_version(client_for, versioned: ModelVersion) -> None:
    older = ModelVersionFactory(model=versioned.model, version="0.9.0")
    url = reverse("cards:card", args=[versioned.model.slug])
    response = client_for("viewer").get(url, {"version": older.version})
    assert response.context["card"].version == "0.9.0"
    assert client_for("viewer").get(url, {"version": "9.9.9"}).status_code == 404


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("json", "application/json"), ("md", "text/markdown; charset=utf-8"),
     ("xml", "application/xml; charset=utf-8")],
)
def test_it_downloads_each_export(client_for, versioned: ModelVersion, fmt: str,
                                  content_type: str) -> None:
    slug = versioned.model.slug
    response = client_for("viewer").get(reverse("cards:export", args=[slug, fmt]))
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == (
        f'attachment; filename="{slug}-{versioned.version}-model-card.{fmt}"'
    )


def test_unknown_formats_models_and_versions_are_404(client_for, versioned: ModelVersion) -> None:
    client = client_for("viewer")
    slug = versioned.model.slug
    assert client.get(reverse("cards:export", args=[slug, "pdf"])).status_code == 404
    assert client.get(reverse("cards:export", args=["no-such-model", "json"])).status_code == 404
    assert client.get(reverse("cards:card", args=["no-such-model"])).status_code == 404
    url = reverse("cards:export", args=[slug, "xml"])
    assert client.get(url, {"version": "0.0.0"}).status_code == 404
