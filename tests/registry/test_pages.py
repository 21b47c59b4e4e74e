"""The registry's pages, as their users see them: forms, inline errors, filters, access."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from governance.audit.models import AuditEvent
from registry import services
from registry.models import (
    ClinicalModel,
    CohortColumn,
    DataFeed,
    Deployment,
    FeatureSpec,
    ModelStatus,
    ModelVersion,
    RiskTier,
    Site,
    VersionStatus,
)
from tests.factories import (
    ClinicalModelFactory,
    FeatureSpecFactory,
    ModelVersionFactory,
    SiteFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

UTC = dt.UTC


# --- Helpers ---------------------------------------------------------------------------------

def model_form_data(clinical_owner: Any, technical_owner: Any, **overrides: Any) -> dict[str, Any]:
    data = {
        "name": "Inpatient sepsis early warning",
        "slug": "sepsis-ews",
        "risk_tier": "high",
        "status": "proposed",
        "summary": "Estimates the risk of sepsis in the next 12 hours.",
        "intended_use": "Prompts a bedside review by the rapid response team.",
        "intended_population": "Adults admitted to medical and surgical wards.",
        "intended_setting": "Adult inpatient wards",
        "contact": "sepsis-model@hospital.test",
        "clinical_owner": clinical_owner.pk,
        "technical_owner": technical_owner.pk,
    }
    data.update(overrides)
    return data


def feature_rows(*rows: dict[str, Any], extra: int = 2) -> dict[str, Any]:
    """Formset POST data: the given rows, then ``extra`` blank rows (checkbox left ticked)."""
    all_rows = [*rows, *({} for _ in range(extra))]
    data: dict[str, Any] = {
        "features-TOTAL_FORMS": str(len(all_rows)),
        "features-INITIAL_FORMS": "0",
        "features-MIN_NUM_FORMS": "0",
        "features-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(all_rows):
        row = {"required": "on", **row} if row else {"required": "on"}
        for key, value in row.items():
            if value is not None:
                data[f"features-{index}-{key}"] = value
    return data


HEART_RATE = {"name": "heart_rate", "dtype": "numeric", "unit": "bpm", "min_value": "0",
              "max_value": "300"}
LACTATE = {"name": "lactate", "dtype": "numeric", "unit": "mmol/L", "min_value": "0",
           "max_value": "30", "required": None, "missing_allowed": "on"}
WARD = {"name": "ward", "dtype": "categorical", "categories": "medical, surgical, icu"}


def version_form_data(*rows: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    data = {
        "version": "2.0.0",
        "artifact_uri": "s3://models/sepsis/2.0.0/model.onnx",
        "artifact_sha256": "c" * 64,
        "training_data_source": "EHR extract, 3 hospitals",
        "training_window_start": "2021-01-01",
        "training_window_end": "2023-06-30",
        "training_set_size": "48211",
        "label_definition": "Sepsis-3 criteria met within 12 hours.",
        "decision_thresholds": '{"alert": 0.7}',
        "validation_results": (
            '{"overall": {"auroc": {"value": 0.83, "ci_low": 0.81, "ci_high": 0.85, "n": 9000}},'
            ' "subgroups": {"sex=F": {"auroc": {"value": 0.82, "ci_low": 0.79, "ci_high": 0.85,'
            ' "n": 4400}}}, "process": "Temporal hold-out"}'
        ),
        "cohorts": "age_band: 18-39, 40-64, 65+\nsex: F, M\npayer",
        **feature_rows(*(rows or (HEART_RATE, LACTATE, WARD))),
    }
    data.update(overrides)
    return data


def counts() -> tuple[int, ...]:
    return (
        ClinicalModel.objects.count(), ModelVersion.objects.count(), FeatureSpec.objects.count(),
        CohortColumn.objects.count(), AuditEvent.objects.count(),
    )


@pytest.fixture
def engineer_client(ml_engineer: Any) -> Client:
    # Logs in the fixture's user itself: asking ``user_for`` again re-hashes the password,
    # which would end a session opened earlier.
    client = Client()
    client.force_login(ml_engineer)
    return client


@pytest.fixture
def sepsis(ml_engineer: Any, director: Any) -> ClinicalModel:
    return ClinicalModelFactory(
        slug="sepsis-ews", name="Sepsis early warning", risk_tier=RiskTier.HIGH,
        clinical_owner=director, technical_owner=ml_engineer,
    )


def switch_versions(model: ClinicalModel, site: Site) -> tuple[ModelVersion, ModelVersion]:
    """Version 1.0.0 live at ``site`` from 2024-01-01, replaced by 1.1.0 on 2024-03-01."""
    old = ModelVersionFactory(model=model, version="1.0.0")
    new = ModelVersionFactory(model=model, version="1.1.0")
    services.deployment_start(actor=None, version=old, site=site, reason="release R-1",
                              at=dt.datetime(2024, 1, 1, 8, tzinfo=UTC))
    services.deployment_start(actor=None, version=new, site=site, reason="release R-2",
                              at=dt.datetime(2024, 3, 1, 8, tzinfo=UTC))
    return old, new


def errors_of(response: Any, form: str = "form") -> dict[str, list[str]]:
    return dict(response.context[form].errors)


# --- Registering a model ---------------------------------------------------------------------

def test_it_registers_a_model_through_the_form(engineer_client: Client, ml_engineer: Any,
                                                director: Any) -> None:
    response = engineer_client.post(
        reverse("registry:model_register"), model_form_data(director, ml_engineer)
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("registry:model_detail", args=["sepsis-ews"])
    model = ClinicalModel.objects.get(slug="sepsis-ews")
    assert model.history.first().history_user == ml_engineer
    event = AuditEvent.objects.get(action="model.register", object_id=str(model.pk))
    assert event.actor == ml_engineer
    detail = engineer_client.get(response["Location"])
    assert "Registered Inpatient sepsis early warning" in detail.content.decode()
    inventory = engineer_client.get(reverse("registry:inventory"))
    assert "Inpatient sepsis early warning" in inventory.content.decode()


def test_it_groups_the_registration_form_in_fieldsets(engineer_client: Client) -> None:
    page = engineer_client.get(reverse("registry:model_register")).content.decode()

    for legend in ("Identity", "Uses and directions", "Warnings", "Fairness", "Maintenance",
                   "Human oversight", "Evidence"):
        assert f"<legend>{legend}</legend>" in page


def test_it_covers_every_model_field_in_the_form() -> None:
    from registry.forms import MODEL_FIELDSETS

    in_form = [name for _, names in MODEL_FIELDSETS for name in names]
    assert sorted(in_form) == sorted(services.MODEL_FIELDS)


def test_it_offers_only_active_people_as_owners(engineer_client: Client) -> None:
    UserFactory(username="gone", is_active=False)
    UserFactory(username="svc-sepsis", role="service_account")
    UserFactory(username="dr-present")

    form = engineer_client.get(reverse("registry:model_register")).context["form"]
    usernames = {u.username for u in form.fields["clinical_owner"].queryset}
    assert "dr-present" in usernames
    assert not {"gone", "svc-sepsis"} & usernames


def test_it_refuses_an_unknown_risk_tier_inline(engineer_client: Client, ml_engineer: Any,
                                                 director: Any) -> None:
    before = counts()

    response = engineer_client.post(
        reverse("registry:model_register"),
        model_form_data(director, ml_engineer, risk_tier="extreme"),
    )

    assert response.status_code == 200
    assert "risk_tier" in errors_of(response)
    assert "Select a valid choice" in response.content.decode()
    assert counts() == before


def test_it_refuses_missing_required_facts_inline(engineer_client: Client, ml_engineer: Any,
                                                  director: Any) -> None:
    before = counts()

    response = engineer_client.post(
        reverse("registry:model_register"),
        model_form_data(director, ml_engineer, intended_use="", contact="not-an-email"),
    )

    assert set(errors_of(response)) >= {"intended_use", "contact"}
    assert "Nothing was saved" in response.content.decode()
    assert counts() == before


def test_it_refuses_a_taken_or_reserved_slug(engineer_client: Client, sepsis: ClinicalModel,
                                             ml_engineer: Any, director: Any) -> None:
    before = counts()

    taken = engineer_client.post(reverse("registry:model_register"),
                                 model_form_data(director, ml_engineer, slug="sepsis-ews"))
    reserved = engineer_client.post(reverse("registry:model_register"),
                                    model_form_data(director, ml_engineer, slug="live"))

    assert "slug" in errors_of(taken)
    assert "page of the registry" in errors_of(reserved)["slug"][0]
    assert counts() == before


# --- Editing a model -------------------------------------------------------------------------

def test_it_edits_a_model_with_a_reason_shown_in_its_history(
    engineer_client: Client, sepsis: ClinicalModel, ml_engineer: Any, director: Any
) -> None:
    data = model_form_data(UserFactory(username="dr-new-owner"), ml_engineer, name=sepsis.name,
                           risk_tier="critical",
                           reason="Now drives antibiotic orders: CAB review 2024-04")
    del data["slug"]

    response = engineer_client.post(reverse("registry:model_edit", args=[sepsis.slug]), data)

    assert response.status_code == 302
    sepsis.refresh_from_db()
    assert sepsis.risk_tier == RiskTier.CRITICAL
    assert AuditEvent.objects.filter(action="model.update", object_id=str(sepsis.pk)).exists()
    history = engineer_client.get(reverse("registry:history", args=[sepsis.slug]))
    page = history.content.decode()
    assert "Now drives antibiotic orders: CAB review 2024-04" in page
    assert "risk_tier" in page
    assert "dr-new-owner" in page  # a changed owner is named, not shown as an id


def test_it_requires_a_reason_to_edit(engineer_client: Client, sepsis: ClinicalModel,
                                      ml_engineer: Any, director: Any) -> None:
    data = model_form_data(director, ml_engineer, risk_tier="low")
    del data["slug"]

    response = engineer_client.post(reverse("registry:model_edit", args=[sepsis.slug]), data)

    assert "reason" in errors_of(response)
    sepsis.refresh_from_db()
    assert sepsis.risk_tier == RiskTier.HIGH


def test_it_says_when_an_edit_changes_nothing(engineer_client: Client, sepsis: ClinicalModel,
                                              ml_engineer: Any, director: Any) -> None:
    data = model_form_data(director, ml_engineer, name=sepsis.name, summary=sepsis.summary,
                           intended_use=sepsis.intended_use, contact=sepsis.contact,
                           intended_population=sepsis.intended_population,
                           intended_setting=sepsis.intended_setting, status=sepsis.status,
                           reason="no-op")
    del data["slug"]

    response = engineer_client.post(reverse("registry:model_edit", args=[sepsis.slug]), data)

    assert "Nothing to save" in response.content.decode()


def test_it_keeps_a_departed_owner_choosable_when_editing(
    engineer_client: Client, ml_engineer: Any
) -> None:
    departed = UserFactory(username="dr-departed", is_active=False)
    model = ClinicalModelFactory(clinical_owner=departed, technical_owner=ml_engineer)
    data = model_form_data(departed, ml_engineer, name=model.name, risk_tier="low",
                           reason="Tier reviewed")
    del data["slug"]

    response = engineer_client.post(reverse("registry:model_edit", args=[model.slug]), data)

    assert response.status_code == 302
    model.refresh_from_db()
    assert model.risk_tier == RiskTier.LOW and model.clinical_owner == departed


# --- Registering a version -------------------------------------------------------------------

def test_it_registers_a_version_with_its_features_and_cohorts(
    engineer_client: Client, sepsis: ClinicalModel
) -> None:
    feed = DataFeed.objects.create(slug="vitals", name="Vitals feed", source_system="ehr_vitals",
                                   expected_cadence_minutes=15, owner=sepsis.technical_owner)
    data = version_form_data({**HEART_RATE, "feed": feed.pk}, LACTATE, WARD)

    response = engineer_client.post(reverse("registry:version_register", args=[sepsis.slug]), data)

    assert response.status_code == 302
    version = ModelVersion.objects.get(model=sepsis, version="2.0.0")
    assert response["Location"] == reverse("registry:version_detail",
                                           args=[sepsis.slug, "2.0.0"])
    assert version.decision_thresholds == {"alert": 0.7}
    features = {f.name: f for f in version.features.all()}
    assert set(features) == {"heart_rate", "lactate", "ward"}
    assert features["heart_rate"].feed == feed
    assert features["ward"].categories == ["medical", "surgical", "icu"]
    assert features["lactate"].missing_allowed and not features["lactate"].required
    assert {c.name: c.values for c in version.cohorts.all()} == {
        "age_band": ["18-39", "40-64", "65+"], "sex": ["F", "M"], "payer": [],
    }
    assert AuditEvent.objects.filter(action="version.register", object_id=str(version.pk)).exists()
    detail = engineer_client.get(response["Location"]).content.decode()
    for shown in ("heart_rate", "Vitals feed", "medical, surgical, icu", "alert", "0.83",
                  "sex=F", "Temporal hold-out", "age_band"):
        assert shown in detail


def test_it_refuses_a_malformed_sha256_inline(engineer_client: Client,
                                              sepsis: ClinicalModel) -> None:
    before = counts()

    response = engineer_client.post(
        reverse("registry:version_register", args=[sepsis.slug]),
        version_form_data(artifact_sha256="C0FFEE"),
    )

    assert response.status_code == 200
    assert "sha256" in errors_of(response)["artifact_sha256"][0]
    assert counts() == before


def test_it_refuses_a_duplicate_version_inline(engineer_client: Client,
                                               sepsis: ClinicalModel) -> None:
    ModelVersionFactory(model=sepsis, version="2.0.0")
    before = counts()

    response = engineer_client.post(reverse("registry:version_register", args=[sepsis.slug]),
                                    version_form_data())

    assert "already has a version '2.0.0'" in errors_of(response)["version"][0]
    assert counts() == before


def test_it_refuses_a_numeric_range_that_is_empty_on_its_row(
    engineer_client: Client, sepsis: ClinicalModel
) -> None:
    before = counts()
    inverted = {**HEART_RATE, "min_value": "300", "max_value": "20"}

    response = engineer_client.post(reverse("registry:version_register", args=[sepsis.slug]),
                                    version_form_data(WARD, inverted))

    rows = response.context["features"].forms
    assert "max is below min" in rows[1].errors["max_value"][0]
    assert not rows[0].errors
    assert counts() == before


def test_it_refuses_a_categorical_feature_without_categories(
    engineer_client: Client, sepsis: ClinicalModel
) -> None:
    before = counts()

    response = engineer_client.post(
        reverse("registry:version_register", args=[sepsis.slug]),
        version_form_data(HEART_RATE, {**WARD, "categories": " , "}),
    )

    assert "List the allowed categories" in response.context["features"].forms[1].errors[
        "categories"][0]
    assert counts() == before


def test_it_puts_a_service_error_on_the_right_feature_row(
    engineer_client: Client, sepsis: ClinicalModel
) -> None:
    # Row 1 is left blank, so the service's features[1] is the form's row 2.
    data = version_form_data(HEART_RATE, {}, {**LACTATE, "name": "heart_rate"})
    data["features-1-required"] = "on"
    before = counts()

    response = engineer_client.post(reverse("registry:version_register", args=[sepsis.slug]), data)

    rows = response.context["features"].forms
    assert "declared twice" in rows[2].errors["name"][0]
    assert not rows[0].errors and not rows[1].errors
    assert counts() == before


def test_it_explains_invalid_json(engineer_client: Client, sepsis: ClinicalModel) -> None:
    response = engineer_client.post(
        reverse("registry:version_register", args=[sepsis.slug]),
        version_form_data(decision_thresholds='{"alert": 0.7,}', parameters="[1, 2]",
                          validation_results='{"overall": {}}'),
    )

    errors = errors_of(response)
    assert "not valid JSON" in errors["decision_thresholds"][0]
    assert "line 1" in errors["decision_thresholds"][0]
    assert "JSON object" in errors["parameters"][0]
    assert "validation_results" not in errors


def test_it_refuses_a_threshold_outside_zero_and_one(engineer_client: Client,
                                                     sepsis: ClinicalModel) -> None:
    response = engineer_client.post(
        reverse("registry:version_register", args=[sepsis.slug]),
        version_form_data(decision_thresholds='{"alert": 7}'),
    )

    assert "[0, 1]" in errors_of(response)["decision_thresholds"][0]


def test_it_puts_a_cohort_error_on_its_line(engineer_client: Client,
                                            sepsis: ClinicalModel) -> None:
    before = counts()

    response = engineer_client.post(
        reverse("registry:version_register", args=[sepsis.slug]),
        version_form_data(cohorts="sex: F, M\n\n2bad: x\nsex: F"),
    )

    errors = errors_of(response)["cohorts"]
    assert any(e.startswith("Line 3 (2bad, name)") for e in errors)
    assert any(e.startswith("Line 4 (sex, name)") and "declared twice" in e for e in errors)
    assert counts() == before


def test_it_requires_at_least_one_feature(engineer_client: Client, sepsis: ClinicalModel) -> None:
    data = {k: v for k, v in version_form_data().items() if not k.startswith("features-")}
    data.update(feature_rows())  # only blank rows

    response = engineer_client.post(reverse("registry:version_register", args=[sepsis.slug]), data)

    assert "at least one input feature" in response.content.decode()
    assert not ModelVersion.objects.exists()


def test_it_offers_more_feature_rows_on_request(engineer_client: Client,
                                                sepsis: ClinicalModel) -> None:
    url = reverse("registry:version_register", args=[sepsis.slug])

    response = engineer_client.get(url, {"rows": "20"})

    assert len(response.context["features"].forms) == 20


# --- Version status --------------------------------------------------------------------------

def test_it_moves_a_version_through_its_statuses(engineer_client: Client,
                                                 sepsis: ClinicalModel) -> None:
    version = ModelVersionFactory(model=sepsis, version="3.0.0", status=VersionStatus.DRAFT)
    url = reverse("registry:version_transition", args=[sepsis.slug, "3.0.0"])

    response = engineer_client.post(url, {"to_status": "candidate",
                                          "reason": "Validation complete"})

    assert response.status_code == 302
    version.refresh_from_db()
    assert version.status == VersionStatus.CANDIDATE
    history = engineer_client.get(reverse("registry:history", args=[sepsis.slug]))
    assert "Validation complete" in history.content.decode()


def test_it_refuses_a_status_the_version_cannot_reach(engineer_client: Client,
                                                      sepsis: ClinicalModel) -> None:
    version = ModelVersionFactory(model=sepsis, version="3.0.0", status=VersionStatus.DRAFT)
    url = reverse("registry:version_transition", args=[sepsis.slug, "3.0.0"])

    response = engineer_client.post(url, {"to_status": "approved", "reason": "skip review"})

    assert "to_status" in errors_of(response, "transition")
    version.refresh_from_db()
    assert version.status == VersionStatus.DRAFT


# --- Inventory -------------------------------------------------------------------------------

@pytest.fixture
def three_models(director: Any, ml_engineer: Any) -> dict[str, ClinicalModel]:
    other = UserFactory(username="dr-other")
    north = SiteFactory(code="NORTH")
    models = {
        "sepsis": ClinicalModelFactory(slug="sepsis", name="Sepsis EWS", risk_tier="high",
                                       clinical_owner=director, technical_owner=ml_engineer,
                                       keywords="deterioration"),
        "readmit": ClinicalModelFactory(slug="readmit", name="Readmission 30d",
                                        risk_tier="moderate", clinical_owner=other,
                                        technical_owner=ml_engineer),
        "noshow": ClinicalModelFactory(slug="noshow", name="No-show outreach", risk_tier="low",
                                       status=ModelStatus.RETIRED, clinical_owner=other,
                                       technical_owner=other),
    }
    services.deployment_start(actor=None, version=ModelVersionFactory(model=models["sepsis"]),
                              site=north, reason="release R-1")
    services.deployment_start(actor=None, version=ModelVersionFactory(model=models["readmit"]),
                              site=north, reason="shadow trial", mode="shadow")
    return models


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, {"sepsis", "readmit", "noshow"}),
        ({"risk_tier": "high"}, {"sepsis"}),
        ({"status": "retired"}, {"noshow"}),
        ({"owner": "director"}, {"sepsis"}),
        ({"owner": "ml_engineer"}, {"sepsis", "readmit"}),
        ({"site": "NORTH"}, {"sepsis"}),
        ({"q": "deterioration"}, {"sepsis"}),
        ({"q": "outreach"}, {"noshow"}),
        ({"risk_tier": "moderate", "owner": "ml_engineer"}, {"readmit"}),
    ],
)
def test_it_narrows_the_inventory_with_filters(
    client_for: Any, three_models: dict[str, ClinicalModel], director: Any, ml_engineer: Any,
    query: dict[str, str], expected: set[str],
) -> None:
    people = {"director": director, "ml_engineer": ml_engineer}
    params = dict(query)
    if "owner" in params:
        params["owner"] = people[params["owner"]].pk
    if "site" in params:
        params["site"] = Site.objects.get(code=params["site"]).pk

    response = client_for("viewer").get(reverse("registry:inventory"), params)

    assert {m.slug for m in response.context["models"]} == expected


def test_it_reports_a_bad_filter_and_ignores_it(client_for: Any,
                                                three_models: dict[str, ClinicalModel]) -> None:
    response = client_for("viewer").get(reverse("registry:inventory"), {"risk_tier": "extreme"})

    assert "risk_tier" in response.context["filters"].errors
    assert len(response.context["models"]) == 3


def test_it_shows_tier_version_sites_and_frozen_marker(
    client_for: Any, three_models: dict[str, ClinicalModel]
) -> None:
    deployment = Deployment.objects.get(model=three_models["sepsis"])
    services.deployment_set_frozen(actor=None, deployment=deployment, frozen=True,
                                   reason="calibration drift")

    page = client_for("viewer").get(reverse("registry:inventory")).content.decode()

    assert 'class="badge tier-high"' in page
    assert deployment.version.version in page
    assert "NORTH" in page and "shadow" in page
    assert "FROZEN" in page


# --- Model and version pages -----------------------------------------------------------------

def test_it_shows_versions_and_deployments_per_site(client_for: Any,
                                                    sepsis: ClinicalModel) -> None:
    switch_versions(sepsis, SiteFactory(code="NORTH", name="North General"))
    FeatureSpecFactory(version=ModelVersion.objects.get(version="1.1.0"))

    response = client_for("viewer").get(reverse("registry:model_detail", args=[sepsis.slug]))

    page = response.content.decode()
    assert "North General" in page
    assert "superseded by 1.1.0" in page
    assert [v.feature_count for v in response.context["versions"]] == [1, 0]
    assert reverse("registry:history", args=[sepsis.slug]) in page


def test_it_answers_404_for_unknown_records(client_for: Any, sepsis: ClinicalModel) -> None:
    client = client_for("viewer")

    assert client.get(reverse("registry:model_detail", args=["nope"])).status_code == 404
    assert client.get(reverse("registry:version_detail",
                              args=[sepsis.slug, "9.9.9"])).status_code == 404


# --- Freeze ----------------------------------------------------------------------------------

def test_it_freezes_and_unfreezes_a_deployment_with_a_reason(
    client_for: Any, sepsis: ClinicalModel
) -> None:
    _, new = switch_versions(sepsis, SiteFactory(code="NORTH"))
    running = Deployment.objects.get(version=new)
    client = client_for("medical_director")
    url = reverse("registry:deployment_freeze", args=[sepsis.slug, running.pk])
    prefix = f"deployment-{running.pk}"

    frozen = client.post(url, {f"{prefix}-frozen": "1", f"{prefix}-reason": "Red calibration"})
    running.refresh_from_db()
    assert frozen.status_code == 302 and running.frozen
    assert running.frozen_reason == "Red calibration"
    assert AuditEvent.objects.filter(action="deployment.freeze").exists()

    client.post(url, {f"{prefix}-frozen": "0", f"{prefix}-reason": "Recalibrated"})
    running.refresh_from_db()
    assert not running.frozen


def test_it_refuses_to_freeze_without_a_reason(client_for: Any, sepsis: ClinicalModel) -> None:
    _, new = switch_versions(sepsis, SiteFactory(code="NORTH"))
    running = Deployment.objects.get(version=new)
    prefix = f"deployment-{running.pk}"

    response = client_for("incident_commander").post(
        reverse("registry:deployment_freeze", args=[sepsis.slug, running.pk]),
        {f"{prefix}-frozen": "1", f"{prefix}-reason": ""},
    )

    assert response.status_code == 200
    assert "reason" in response.context["deployments"][0].freeze_form.errors
    running.refresh_from_db()
    assert not running.frozen


def test_it_shows_the_kill_switch_only_to_those_who_may_use_it(
    client_for: Any, sepsis: ClinicalModel
) -> None:
    switch_versions(sepsis, SiteFactory(code="NORTH"))
    url = reverse("registry:model_detail", args=[sepsis.slug])

    assert "Freeze" in client_for("medical_director").get(url).content.decode()
    assert "Freeze</button>" not in client_for("ml_engineer").get(url).content.decode()


# --- Live ------------------------------------------------------------------------------------

def test_it_answers_which_version_was_live_before_and_after_a_switch(
    client_for: Any, sepsis: ClinicalModel
) -> None:
    north = SiteFactory(code="NORTH")
    old, new = switch_versions(sepsis, north)
    client = client_for("viewer")

    def ask(moment: str) -> Any:
        return client.get(reverse("registry:live"),
                          {"model": sepsis.slug, "site": "NORTH", "at": moment})

    before = ask("2024-02-15T12:00")
    after = ask("2024-03-01T08:00:01")
    earlier = ask("2023-12-31T23:59")

    assert [d.version for d in before.context["answer"]] == [old]
    assert "release R-1" in before.content.decode()
    assert "superseded by 1.1.0" in before.content.decode()
    assert [d.version for d in after.context["answer"]] == [new]
    assert earlier.context["answer"] == []
    assert "Nothing was live" in earlier.content.decode()


def test_it_reads_the_moment_as_utc(client_for: Any, sepsis: ClinicalModel) -> None:
    switch_versions(sepsis, SiteFactory(code="NORTH"))

    response = client_for("viewer").get(
        reverse("registry:live"), {"model": sepsis.slug, "site": "NORTH", "at": "2024-03-01T07:59"}
    )

    assert response.context["query"].cleaned_data["at"] == dt.datetime(2024, 3, 1, 7, 59,
                                                                       tzinfo=UTC)
    assert response.context["answer"][0].version.version == "1.0.0"


def test_it_lists_every_running_deployment(client_for: Any, sepsis: ClinicalModel) -> None:
    switch_versions(sepsis, SiteFactory(code="NORTH"))

    response = client_for("viewer").get(reverse("registry:live"))

    assert [d.version.version for d in response.context["running"]] == ["1.1.0"]
    assert response.context["answer"] is None


# --- History ---------------------------------------------------------------------------------

def test_it_shows_audit_events_only_to_audit_readers(client_for: Any, engineer_client: Client,
                                                     ml_engineer: Any, director: Any) -> None:
    engineer_client.post(reverse("registry:model_register"), model_form_data(director, ml_engineer))
    url = reverse("registry:history", args=["sepsis-ews"])

    audited = client_for("compliance_officer").get(url)
    plain = engineer_client.get(url)

    assert [e.action for e in audited.context["audit_events"]] == ["model.register"]
    assert plain.context["audit_events"] is None
    assert "registered" in plain.content.decode()


# --- Sites and feeds -------------------------------------------------------------------------

def test_it_registers_a_site(engineer_client: Client) -> None:
    response = engineer_client.post(reverse("registry:site_create"),
                                    {"code": "NORTH", "name": "North General"})

    assert response.status_code == 302
    assert Site.objects.filter(code="NORTH").exists()
    assert "North General" in engineer_client.get(reverse("registry:sites")).content.decode()


def test_it_refuses_a_duplicate_or_malformed_site_code(engineer_client: Client) -> None:
    SiteFactory(code="NORTH")

    duplicate = engineer_client.post(reverse("registry:site_create"),
                                     {"code": "NORTH", "name": "Again"})
    malformed = engineer_client.post(reverse("registry:site_create"),
                                     {"code": "north general", "name": "Spaces"})

    assert "code" in errors_of(duplicate) and "code" in errors_of(malformed)
    assert Site.objects.count() == 1


def test_it_registers_a_feed_and_lists_the_features_that_depend_on_it(
    client_for: Any, ml_engineer: Any, sepsis: ClinicalModel
) -> None:
    client = client_for("data_engineer")
    response = client.post(reverse("registry:feed_create"), {
        "slug": "labs-core", "name": "Core labs", "source_system": "labs",
        "expected_cadence_minutes": "60", "owner": ml_engineer.pk,
    })
    assert response.status_code == 302
    feed = DataFeed.objects.get(slug="labs-core")
    FeatureSpecFactory(version=ModelVersionFactory(model=sepsis, version="1.0.0"),
                       name="lactate", feed=feed)

    page = client.get(reverse("registry:feeds")).content.decode()

    assert "Core labs" in page and "lactate" in page and "sepsis-ews 1.0.0" in page


def test_it_refuses_a_feed_without_a_cadence(client_for: Any, ml_engineer: Any) -> None:
    response = client_for("data_engineer").post(reverse("registry:feed_create"), {
        "slug": "labs-core", "name": "Core labs", "source_system": "labs",
        "owner": ml_engineer.pk,
    })

    assert "expected_cadence_minutes" in errors_of(response)
    assert not DataFeed.objects.exists()


# --- Access ----------------------------------------------------------------------------------

def page_urls(model: ClinicalModel) -> dict[str, str]:
    version = ModelVersionFactory(model=model, version="1.0.0", status=VersionStatus.DRAFT)
    deployment = services.deployment_start(
        actor=None, version=ModelVersionFactory(model=model, version="1.1.0"),
        site=SiteFactory(code="NORTH"), reason="release R-1",
    )
    return {
        "inventory": reverse("registry:inventory"),
        "model_detail": reverse("registry:model_detail", args=[model.slug]),
        "history": reverse("registry:history", args=[model.slug]),
        "version_detail": reverse("registry:version_detail", args=[model.slug, version.version]),
        "live": reverse("registry:live"),
        "sites": reverse("registry:sites"),
        "feeds": reverse("registry:feeds"),
        "model_register": reverse("registry:model_register"),
        "model_edit": reverse("registry:model_edit", args=[model.slug]),
        "version_register": reverse("registry:version_register", args=[model.slug]),
        "version_transition": reverse("registry:version_transition",
                                      args=[model.slug, version.version]),
        "deployment_freeze": reverse("registry:deployment_freeze",
                                     args=[model.slug, deployment.pk]),
        "site_create": reverse("registry:site_create"),
        "feed_create": reverse("registry:feed_create"),
    }


READ_PAGES = ("inventory", "model_detail", "history", "version_detail", "live", "sites", "feeds")
WRITE_PAGES = ("model_register", "model_edit", "version_register", "version_transition",
               "deployment_freeze", "site_create", "feed_create")


def test_it_shows_the_viewer_every_page_but_no_form(client_for: Any,
                                                    sepsis: ClinicalModel) -> None:
    urls = page_urls(sepsis)
    client = client_for("viewer")

    for name in READ_PAGES:
        assert client.get(urls[name]).status_code == 200, name
    for name in WRITE_PAGES:
        assert client.get(urls[name]).status_code == 403, name
        assert client.post(urls[name], {}).status_code == 403, name
    inventory = client.get(urls["inventory"]).content.decode()
    assert "Register a model" not in inventory
    assert "Register a model" in client_for("ml_engineer").get(urls["inventory"]).content.decode()


def test_it_sends_anonymous_visitors_to_the_login_page(client: Client,
                                                       sepsis: ClinicalModel) -> None:
    for name, url in page_urls(sepsis).items():
        response = client.post(url) if name in WRITE_PAGES else client.get(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("accounts:login")), name


def test_it_refuses_pages_to_service_accounts(sepsis: ClinicalModel) -> None:
    client = Client()
    client.force_login(UserFactory(username="svc", role="service_account"))

    assert client.get(reverse("registry:inventory")).status_code == 403
