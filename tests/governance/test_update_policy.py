"""The written recalibration and retraining policy: validation per field, who may write it,
its history and audit, and its pages."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import include, path

import config.urls
from governance import recalibration as svc
from governance.api import recal as recal_api
from governance.audit.models import AuditEvent
from governance.models import UpdatePolicy
from tests.factories import ClinicalModelFactory

# The site's URLs plus the update API, whether or not governance/api/urls.py includes it yet.
urlpatterns = [path("api/v1/", include(recal_api.urlpatterns)), *config.urls.urlpatterns]
PAGES = pytest.mark.urls(__name__)


@pytest.fixture
def model(db: None) -> Any:
    return ClinicalModelFactory(slug="readmit")


def fields(owner: Any, **changes: Any) -> dict[str, Any]:
    base = {
        "triggers": {
            "sustained_drift": "PSI > 0.25 on a top-5 feature for 3 windows",
            "guideline_change": "Sepsis-3 definition revised",
        },
        "retraining_owner": owner,
        "validation_requirements": "Temporal validation, AUC CI and calibration slope reported.",
        "approval_gates": "ML lead, medical director, quality & safety.",
        "permitted_data": "De-identified inpatient EHR from deployed sites, 2 years back.",
        "leakage_controls": "Features frozen at prediction time; split by patient and time.",
        "min_window_events": 300,
    }
    base.update(changes)
    return base


def test_it_writes_a_policy_with_history_and_audit(model, director, ml_engineer):
    policy = svc.update_policy_save(actor=director, model=model, fields=fields(ml_engineer))
    assert policy.retraining_owner == ml_engineer and policy.min_window_events == 300
    assert set(policy.triggers) == {"sustained_drift", "guideline_change"}
    assert policy.history.count() == 1
    event = AuditEvent.objects.get(action="update_policy.create")
    assert event.payload["triggers"] == ["guideline_change", "sustained_drift"]


def test_it_changes_only_the_fields_given(model, director, ml_engineer):
    svc.update_policy_save(actor=director, model=model, fields=fields(ml_engineer))
    policy = svc.update_policy_save(
        actor=ml_engineer, model=model, fields={"min_window_events": 800}
    )
    assert policy.min_window_events == 800 and policy.updated_by == ml_engineer
    assert policy.approval_gates.startswith("ML lead")
    assert policy.history.count() == 2
    assert AuditEvent.objects.get(action="update_policy.change").payload["changed"] == [
        "min_window_events"
    ]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"triggers": {}}, "triggers", "at least one trigger"),
        ({"triggers": {"solar_flare": "x"}}, "triggers", "Unknown trigger solar_flare"),
        ({"triggers": {"sustained_drift": " "}}, "triggers", "missing for sustained_drift"),
        ({"triggers": ["sustained_drift"]}, "triggers", "at least one trigger"),
        ({"retraining_owner": "nobody"}, "retraining_owner", "Name the person"),
        ({"validation_requirements": "  "}, "validation_requirements", "cannot be empty"),
        ({"approval_gates": 3}, "approval_gates", "cannot be empty"),
        ({"permitted_data": "x" * 10_001}, "permitted_data", "At most"),
        ({"leakage_controls": ""}, "leakage_controls", "cannot be empty"),
        ({"min_window_events": 5}, "min_window_events", "between 20"),
        ({"min_window_events": "many"}, "min_window_events", "whole number"),
        ({"min_window_events": True}, "min_window_events", "whole number"),
        ({"colour": "blue"}, "colour", "Unknown field"),
    ],
)
def test_each_bad_field_is_named(model, director, ml_engineer, change, field, message):
    with pytest.raises(ValidationError) as caught:
        svc.update_policy_save(actor=director, model=model, fields=fields(ml_engineer, **change))
    errors = caught.value.message_dict
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert not UpdatePolicy.objects.exists()


def test_a_new_policy_needs_every_field(model, director):
    with pytest.raises(ValidationError) as caught:
        svc.update_policy_save(actor=director, model=model, fields={"min_window_events": 200})
    assert set(caught.value.message_dict) == {
        "triggers",
        "retraining_owner",
        *svc.TEXT_FIELDS,
    }


def test_the_owner_must_be_able_to_propose_a_release(model, director, user_for):
    reviewer = user_for("reviewer")
    with pytest.raises(ValidationError, match="cannot propose a release"):
        svc.update_policy_save(actor=director, model=model, fields=fields(reviewer))
    policy = svc.update_policy_save(
        actor=director, model=model, fields=fields("test-medical_director")
    )
    assert policy.retraining_owner == director


@pytest.mark.parametrize(
    "role", ["viewer", "reviewer", "compliance_officer", "quality_safety", "incident_commander"]
)
def test_only_policy_roles_may_write_it(model, user_for, ml_engineer, role):
    with pytest.raises(PermissionDenied):
        svc.update_policy_save(actor=user_for(role), model=model, fields=fields(ml_engineer))


@PAGES
def test_every_role_may_read_the_page_but_only_editors_see_the_form(model, client_for):
    url = f"/governance/models/{model.slug}/updates/"
    page = client_for("viewer").get(url)
    assert page.status_code == 200
    assert b"No written update policy" in page.content
    assert client_for("viewer").get(url + "policy/").status_code == 403
    assert client_for("ml_engineer").get(url + "policy/").status_code == 200


@PAGES
def test_the_policy_form_saves(model, client_for, ml_engineer):
    url = f"/governance/models/{model.slug}/updates/policy/"
    response = client_for("medical_director").post(
        url,
        {
            "triggers": ["sustained_drift"],
            "note_sustained_drift": "slope red twice",
            "retraining_owner": ml_engineer.pk,
            "validation_requirements": "v",
            "approval_gates": "a",
            "permitted_data": "p",
            "leakage_controls": "l",
            "min_window_events": 150,
        },
    )
    assert response.status_code == 302
    policy = UpdatePolicy.objects.get(model=model)
    assert policy.triggers == {"sustained_drift": "slope red twice"}
    assert policy.min_window_events == 150


@PAGES
def test_a_bad_policy_form_shows_the_service_errors(model, client_for, user_for):
    url = f"/governance/models/{model.slug}/updates/policy/"
    response = client_for("medical_director").post(
        url,
        {
            "triggers": ["new_data_source"],
            "retraining_owner": user_for("ml_engineer").pk,
            "validation_requirements": "v",
            "approval_gates": "a",
            "permitted_data": "p",
            "leakage_controls": "l",
            "min_window_events": 5,
        },
    )
    assert response.status_code == 200
    assert b"missing for new_data_source" in response.content
    assert b"between 20" in response.content
    assert not UpdatePolicy.objects.exists()


@PAGES
def test_the_page_shows_a_written_policy(model, client_for, director, ml_engineer):
    svc.update_policy_save(actor=director, model=model, fields=fields(ml_engineer))
    page = client_for("quality_safety").get(f"/governance/models/{model.slug}/updates/")
    assert b"PSI &gt; 0.25 on a top-5 feature" in page.content
    assert b"300 labelled cases" in page.content
    assert b"recommend-form" not in page.content  # quality & safety cannot run the ladder


@PAGES
def test_the_api_writes_and_reads_the_policy(model, api_for, ml_engineer):
    url = f"/api/v1/models/{model.slug}/update-policy/"
    assert api_for("viewer").get(url).status_code == 404
    body = {**fields(ml_engineer), "retraining_owner": "test-ml_engineer"}
    assert api_for("viewer").put(url, body, format="json").status_code == 403
    created = api_for("ml_engineer").put(url, body, format="json")
    assert created.status_code == 200, created.content
    assert created.json()["retraining_owner"] == "test-ml_engineer"
    bad = api_for("ml_engineer").put(url, {"min_window_events": 1}, format="json")
    assert bad.status_code == 400 and "min_window_events" in bad.json()
    read = api_for("viewer").get(url)
    assert read.status_code == 200 and read.json()["min_window_events"] == 300
