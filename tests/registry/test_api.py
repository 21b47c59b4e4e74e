"""The registry API: CRUD per role, role denials, bad input, filters, pagination, and the
"which version was live at site S at time T" question."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import service_account_create
from governance.audit.models import AuditEvent
from registry import services
from registry.models import (
    ClinicalModel,
    CohortColumn,
    DataFeed,
    Deployment,
    DeploymentMode,
    FeatureSpec,
    ModelStatus,
    ModelVersion,
    RiskTier,
    Site,
    VersionStatus,
)
from tests.conftest import ROLES
from tests.factories import (
    ClinicalModelFactory,
    FeatureSpecFactory,
    ModelVersionFactory,
    SiteFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

API = "/api/v1"
GOVERNED = (
    ClinicalModel,
    ModelVersion,
    FeatureSpec,
    CohortColumn,
    DataFeed,
    Site,
    Deployment,
    AuditEvent,
)


def row_counts() -> dict[str, int]:
    """Rows per governed model; the audit trail without the refusals it records."""
    counts = {model.__name__: model.objects.count() for model in GOVERNED}
    counts["AuditEvent"] = AuditEvent.objects.exclude(action="access.denied").count()
    return counts


def model_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "slug": "aki-risk",
        "name": "Acute kidney injury risk",
        "summary": "Predicts AKI within 48 hours of admission.",
        "intended_use": "Flags inpatients for a nephrology-informed review.",
        "intended_population": "Adults admitted to medical wards.",
        "intended_setting": "Adult inpatient wards",
        "risk_tier": "high",
        "clinical_owner": "owner-clinical",
        "technical_owner": "owner-tech",
        "contact": "aki-model@hospital.test",
    }
    body.update(overrides)
    return body


def version_body(version: str = "2.0.0", **overrides: Any) -> dict[str, Any]:
    body = {
        "version": version,
        "artifact_uri": f"s3://models/sepsis/{version}/model.onnx",
        "artifact_sha256": "c" * 64,
        "training_data_source": "EHR extract, three hospitals",
        "training_window_start": "2021-01-01",
        "training_window_end": "2023-12-31",
        "training_set_size": 50000,
        "label_definition": "Sepsis-3 criteria met within 48 hours.",
        "decision_thresholds": {"alert": 0.4},
        "features": [
            {
                "name": "heart_rate",
                "dtype": "numeric",
                "unit": "bpm",
                "min_value": 0,
                "max_value": 300,
            },
            {
                "name": "sex",
                "dtype": "categorical",
                "categories": ["F", "M", "X"],
                "required": False,
                "missing_allowed": True,
            },
        ],
        "cohorts": [{"name": "age_band", "values": ["18-39", "40-64", "65+"]}],
    }
    body.update(overrides)
    return body


@pytest.fixture
def world(db: None) -> SimpleNamespace:
    """One high-tier model with two approved versions; 1.0.0 live at NORTH for ten days."""
    clinical, tech = UserFactory(username="owner-clinical"), UserFactory(username="owner-tech")
    model = ClinicalModelFactory(
        slug="sepsis",
        name="Sepsis early warning",
        risk_tier=RiskTier.HIGH,
        clinical_owner=clinical,
        technical_owner=tech,
    )
    v1 = ModelVersionFactory(model=model, version="1.0.0")
    FeatureSpecFactory(version=v1, name="heart_rate")
    v2 = ModelVersionFactory(model=model, version="1.1.0")
    site = SiteFactory(code="NORTH", name="North Hospital")
    deployment = services.deployment_start(
        actor=None,
        version=v1,
        site=site,
        reason="initial release",
        at=timezone.now() - dt.timedelta(days=10),
    )
    return SimpleNamespace(
        model=model,
        v1=v1,
        v2=v2,
        site=site,
        deployment=deployment,
        clinical=clinical,
        tech=tech,
    )


def service_client(model_slug: str = "sepsis") -> APIClient:
    issued = service_account_create(actor=None, name="sepsis-svc", model_slugs=[model_slug])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    return client


# --- The role × verb matrix ---------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    method: str
    url: Callable[[SimpleNamespace], str]
    body: Callable[[SimpleNamespace], dict[str, Any]]
    allowed: frozenset[str]
    prepare: Callable[[SimpleNamespace], None] | None = None


def _freeze(w: SimpleNamespace) -> None:
    services.deployment_set_frozen(actor=None, deployment=w.deployment, frozen=True, reason="test")


WRITES: dict[str, Write] = {
    "register model": Write(
        "post", lambda w: f"{API}/models/", lambda w: model_body(), frozenset({"ml_engineer"})
    ),
    "update model": Write(
        "patch",
        lambda w: f"{API}/models/sepsis/",
        lambda w: {"known_limitations": "Not validated in obstetrics.", "reason": "card review"},
        frozenset({"ml_engineer"}),
    ),
    "register version": Write(
        "post",
        lambda w: f"{API}/models/sepsis/versions/",
        lambda w: version_body(),
        frozenset({"ml_engineer"}),
    ),
    "transition version": Write(
        "post",
        lambda w: f"{API}/models/sepsis/versions/1.1.0/transition/",
        lambda w: {"status": "retired", "reason": "superseded before launch"},
        frozenset({"ml_engineer"}),
    ),
    "create site": Write(
        "post",
        lambda w: f"{API}/sites/",
        lambda w: {"code": "SOUTH", "name": "South Clinic"},
        frozenset({"ml_engineer"}),
    ),
    "create feed": Write(
        "post",
        lambda w: f"{API}/feeds/",
        lambda w: {
            "slug": "labs",
            "name": "Lab results",
            "source_system": "labs",
            "expected_cadence_minutes": 60,
            "owner": "owner-tech",
        },
        frozenset({"ml_engineer", "data_engineer"}),
    ),
    "deploy": Write(
        "post",
        lambda w: f"{API}/deployments/",
        lambda w: {"model": "sepsis", "version": "1.1.0", "site": "NORTH", "reason": "release R-7"},
        frozenset({"medical_director"}),
    ),
    "end deployment": Write(
        "post",
        lambda w: f"{API}/deployments/{w.deployment.pk}/end/",
        lambda w: {"reason": "site stops using the model"},
        frozenset({"medical_director"}),
    ),
    "freeze": Write(
        "post",
        lambda w: f"{API}/deployments/{w.deployment.pk}/freeze/",
        lambda w: {"reason": "calibration red"},
        frozenset({"medical_director", "incident_commander"}),
    ),
    "unfreeze": Write(
        "post",
        lambda w: f"{API}/deployments/{w.deployment.pk}/unfreeze/",
        lambda w: {"reason": "feed fixed"},
        frozenset({"medical_director", "incident_commander"}),
        prepare=_freeze,
    ),
}

READS: list[Callable[[SimpleNamespace], str]] = [
    lambda w: f"{API}/models/",
    lambda w: f"{API}/models/sepsis/",
    lambda w: f"{API}/models/sepsis/versions/",
    lambda w: f"{API}/models/sepsis/versions/1.0.0/",
    lambda w: f"{API}/sites/",
    lambda w: f"{API}/sites/NORTH/",
    lambda w: f"{API}/feeds/",
    lambda w: f"{API}/deployments/",
    lambda w: f"{API}/deployments/{w.deployment.pk}/",
    lambda w: (
        f"{API}/deployments/live/?model=sepsis&site=NORTH&at={timezone.now():%Y-%m-%dT%H:%M:%SZ}"
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", sorted(WRITES))
def test_it_allows_each_write_to_exactly_its_roles(case, role, world, api_for):
    write = WRITES[case]
    if write.prepare:
        write.prepare(world)
    before = row_counts()
    response = getattr(api_for(role), write.method)(
        write.url(world), write.body(world), format="json"
    )
    if role in write.allowed:
        assert response.status_code in (200, 201), response.content
        assert AuditEvent.objects.count() > before["AuditEvent"]
    else:
        assert response.status_code == 403, response.content
        assert row_counts() == before
        refusal = AuditEvent.objects.filter(action="access.denied").order_by("-seq").first()
        assert refusal is not None and refusal.actor_label == f"test-{role}"


@pytest.mark.parametrize("role", ROLES)
def test_it_lets_every_role_read_the_registry(role, world, api_for):
    client = api_for(role)
    for url in READS:
        response = client.get(url(world))
        assert response.status_code == 200, (url(world), response.content)


def test_it_refuses_service_account_tokens_everywhere(world):
    client = service_client()
    for url in READS:
        assert client.get(url(world)).status_code == 403
    before = row_counts()
    for write in WRITES.values():
        response = getattr(client, write.method)(write.url(world), write.body(world), format="json")
        assert response.status_code == 403, write
    assert row_counts()["Deployment"] == before["Deployment"]


def test_it_asks_anonymous_clients_to_authenticate(world):
    client = APIClient()
    for url in READS:
        assert client.get(url(world)).status_code in (401, 403)
    for write in WRITES.values():
        response = getattr(client, write.method)(write.url(world), write.body(world), format="json")
        assert response.status_code in (401, 403)
    assert client.get(f"{API}/models/").status_code == 401


def test_it_refuses_a_revoked_service_token(world):
    client = service_client()
    account = world.model.service_accounts.get()
    account.is_active = False
    account.save()
    assert client.get(f"{API}/models/").status_code == 401


# --- Happy paths, with audit and history ---------------------------------------------------


def test_it_registers_a_model_with_audit_event_and_history(world, api_for, ml_engineer):
    response = api_for("ml_engineer").post(f"{API}/models/", model_body(), format="json")
    assert response.status_code == 201, response.content
    assert response.data["slug"] == "aki-risk"
    assert response.data["clinical_owner"] == "owner-clinical"
    model = ClinicalModel.objects.get(slug="aki-risk")
    event = AuditEvent.objects.get(action="model.register", object_id=str(model.pk))
    assert event.actor == ml_engineer and event.actor_role == "ml_engineer"
    assert model.history.get().history_user == ml_engineer


def test_it_updates_a_model_with_a_reason(world, api_for, ml_engineer):
    response = api_for("ml_engineer").patch(
        f"{API}/models/sepsis/",
        {
            "status": "suspended",
            "known_limitations": "Not for paediatrics.",
            "reason": "QA finding 12",
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.data["status"] == "suspended"
    world.model.refresh_from_db()
    assert world.model.known_limitations == "Not for paediatrics."
    latest = world.model.history.first()
    assert latest.history_user == ml_engineer and latest.history_change_reason == "QA finding 12"
    event = AuditEvent.objects.get(action="model.update", object_id=str(world.model.pk))
    assert event.actor == ml_engineer
    assert event.payload["changed_fields"] == ["known_limitations", "status"]


def test_it_retrieves_a_model_by_slug(world, api_for):
    response = api_for("viewer").get(f"{API}/models/sepsis/")
    assert response.status_code == 200
    assert response.data["risk_tier"] == "high" and response.data["technical_owner"] == "owner-tech"
    assert api_for("viewer").get(f"{API}/models/nope/").status_code == 404


def test_it_registers_a_version_with_features_and_cohorts(world, api_for, ml_engineer):
    response = api_for("ml_engineer").post(
        f"{API}/models/sepsis/versions/", version_body(), format="json"
    )
    assert response.status_code == 201, response.content
    assert (
        response.data["status"] == "draft" and response.data["created_by"] == ml_engineer.username
    )
    assert [f["name"] for f in response.data["features"]] == ["heart_rate", "sex"]
    assert response.data["cohorts"][0]["values"] == ["18-39", "40-64", "65+"]
    version = ModelVersion.objects.get(model=world.model, version="2.0.0")
    assert version.features.count() == 2 and version.cohorts.count() == 1
    assert (
        AuditEvent.objects.get(action="version.register", object_id=str(version.pk)).actor
        == ml_engineer
    )
    assert version.history.get().history_user == ml_engineer
    assert version.features.get(name="sex").history.get().history_user == ml_engineer


def test_it_links_a_feature_to_its_feed(world, api_for, ml_engineer):
    services.datafeed_create(
        actor=None,
        fields={
            "slug": "vitals",
            "name": "Vitals",
            "source_system": "ehr_vitals",
            "expected_cadence_minutes": 15,
            "owner": ml_engineer,
        },
    )
    body = version_body(features=[{"name": "heart_rate", "dtype": "numeric", "feed": "vitals"}])
    response = api_for("ml_engineer").post(f"{API}/models/sepsis/versions/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.data["features"][0]["feed"] == "vitals"


def test_it_lists_and_retrieves_versions_with_dotted_names(world, api_for):
    client = api_for("viewer")
    listing = client.get(f"{API}/models/sepsis/versions/")
    assert [v["version"] for v in listing.data["results"]] == ["1.1.0", "1.0.0"]
    detail = client.get(f"{API}/models/sepsis/versions/1.0.0/")
    assert detail.status_code == 200 and detail.data["features"][0]["name"] == "heart_rate"
    assert client.get(f"{API}/models/sepsis/versions/9.9.9/").status_code == 404
    missing = client.get(f"{API}/models/nope/versions/")
    assert missing.status_code == 404 and "nope" in missing.data["detail"]


def test_it_moves_a_version_through_its_statuses(world, api_for, ml_engineer):
    client = api_for("ml_engineer")
    client.post(f"{API}/models/sepsis/versions/", version_body(), format="json")
    url = f"{API}/models/sepsis/versions/2.0.0/transition/"
    response = client.post(url, {"status": "candidate", "reason": "validation done"}, format="json")
    assert response.status_code == 200 and response.data["status"] == "candidate"
    refused = client.post(url, {"status": "deployed", "reason": "skip ahead"}, format="json")
    assert refused.status_code == 400 and "status" in refused.data
    no_reason = client.post(url, {"status": "approved"}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.data
    version = ModelVersion.objects.get(version="2.0.0")
    assert version.status == VersionStatus.CANDIDATE
    assert version.history.first().history_change_reason == "validation done"
    assert AuditEvent.objects.filter(action="version.transition", actor=ml_engineer).count() == 1


def test_it_creates_and_retrieves_sites_and_feeds(world, api_for, ml_engineer):
    client = api_for("ml_engineer")
    site = client.post(f"{API}/sites/", {"code": "SOUTH", "name": "South Clinic"}, format="json")
    assert site.status_code == 201 and site.data["code"] == "SOUTH"
    assert client.get(f"{API}/sites/SOUTH/").data["name"] == "South Clinic"
    assert Site.objects.get(code="SOUTH").history.get().history_user == ml_engineer
    feed = client.post(
        f"{API}/feeds/",
        {
            "slug": "labs",
            "name": "Lab results",
            "source_system": "labs",
            "expected_cadence_minutes": 60,
            "owner": "owner-tech",
            "description": "LIS HL7 feed",
        },
        format="json",
    )
    assert feed.status_code == 201, feed.content
    assert client.get(f"{API}/feeds/labs/").data["owner"] == "owner-tech"
    assert (
        AuditEvent.objects.filter(
            action__in=["site.create", "datafeed.create"], actor=ml_engineer
        ).count()
        == 2
    )


def test_it_deploys_by_version_id_and_supersedes_the_live_one(world, api_for, director):
    response = api_for("medical_director").post(
        f"{API}/deployments/",
        {"version_id": world.v2.pk, "site": "NORTH", "reason": "release R-7"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.data["version"] == "1.1.0" and response.data["started_by"] == director.username
    world.deployment.refresh_from_db()
    assert world.deployment.ended_at is not None
    assert world.deployment.end_reason == "superseded by 1.1.0"
    new = Deployment.objects.get(pk=response.data["id"])
    assert new.history.get().history_user == director
    assert (
        AuditEvent.objects.get(action="deployment.start", object_id=str(new.pk)).actor == director
    )


def test_it_deploys_in_shadow_mode_without_ending_the_live_one(world, api_for):
    response = api_for("medical_director").post(
        f"{API}/deployments/",
        {
            "model": "sepsis",
            "version": "1.1.0",
            "site": "NORTH",
            "mode": "shadow",
            "reason": "silent trial",
        },
        format="json",
    )
    assert response.status_code == 201 and response.data["mode"] == "shadow"
    world.deployment.refresh_from_db()
    assert world.deployment.ended_at is None


def test_it_freezes_unfreezes_and_ends_a_deployment(world, api_for, director):
    client = api_for("medical_director")
    base = f"{API}/deployments/{world.deployment.pk}"
    frozen = client.post(f"{base}/freeze/", {"reason": "calibration red"}, format="json")
    assert frozen.status_code == 200 and frozen.data["frozen"] is True
    again = client.post(f"{base}/freeze/", {"reason": "twice"}, format="json")
    assert again.status_code == 400 and "frozen" in again.data
    thawed = client.post(f"{base}/unfreeze/", {"reason": "recalibrated"}, format="json")
    assert thawed.status_code == 200 and thawed.data["frozen"] is False
    ended = client.post(f"{base}/end/", {"reason": "pilot over"}, format="json")
    assert ended.status_code == 200 and ended.data["is_active"] is False
    assert ended.data["ended_by"] == director.username
    actions = list(
        AuditEvent.objects.filter(object_id=str(world.deployment.pk), actor=director).values_list(
            "action", flat=True
        )
    )
    assert actions == ["deployment.freeze", "deployment.unfreeze", "deployment.end"]
    assert client.post(f"{base}/end/", {"reason": "again"}, format="json").status_code == 400
    reasons = [h.history_change_reason for h in world.deployment.history.order_by("history_date")]
    assert reasons[-3:] == ["calibration red", "recalibrated", "pilot over"]


# --- Bad input: 400 with field errors, nothing half-saved ----------------------------------


def post_bad(client: APIClient, url: str, body: Any, **kwargs: Any) -> dict[str, Any]:
    before = row_counts()
    response = client.post(url, body, **{"format": "json", **kwargs})
    assert response.status_code == 400, response.content
    assert row_counts() == before
    return response.json()


@pytest.mark.parametrize(
    ("features", "error_key"),
    [
        (
            [{"name": "hr", "dtype": "numeric", "min_value": 10, "max_value": 1}],
            "features[0].max_value",
        ),
        (
            [{"name": "hr", "dtype": "numeric"}, {"name": "sex", "dtype": "categorical"}],
            "features[1].categories",
        ),
        ([{"name": "hr", "dtype": "text"}], "features[0].dtype"),
        ([{"name": "hr", "dtype": "boolean", "min_value": 0}], "features[0].min_value"),
        (
            [{"name": "hr", "dtype": "numeric", "required": True, "missing_allowed": True}],
            "features[0].missing_allowed",
        ),
        (
            [{"name": "hr", "dtype": "numeric"}, {"name": "hr", "dtype": "numeric"}],
            "features[1].name",
        ),
        ([{"name": "2bad", "dtype": "numeric"}], "features[0].name"),
        ([{"name": "hr", "dtype": "numeric", "min_value": "high"}], "features[0].min_value"),
        ([{"name": "hr", "dtype": "numeric", "feed": "no-such-feed"}], "features[0].feed"),
        ([], "features"),
    ],
)
def test_it_rejects_invalid_feature_specs(features, error_key, world, api_for):
    errors = post_bad(
        api_for("ml_engineer"), f"{API}/models/sepsis/versions/", version_body(features=features)
    )
    assert error_key in errors, errors


def test_it_rejects_a_duplicate_version(world, api_for):
    errors = post_bad(
        api_for("ml_engineer"), f"{API}/models/sepsis/versions/", version_body("1.0.0")
    )
    assert "already has a version" in errors["version"][0]


def test_it_rejects_a_malformed_sha256(world, api_for):
    errors = post_bad(
        api_for("ml_engineer"),
        f"{API}/models/sepsis/versions/",
        version_body(artifact_sha256="ABC123"),
    )
    assert "sha256" in errors["artifact_sha256"][0]


def test_it_rejects_an_inverted_training_window(world, api_for):
    errors = post_bad(
        api_for("ml_engineer"),
        f"{API}/models/sepsis/versions/",
        version_body(training_window_start="2024-01-01", training_window_end="2023-01-01"),
    )
    assert "training_window_end" in errors


def test_it_rejects_an_unknown_risk_tier(world, api_for):
    errors = post_bad(api_for("ml_engineer"), f"{API}/models/", model_body(risk_tier="extreme"))
    assert "risk_tier" in errors


def test_it_rejects_a_duplicate_model_slug_and_unknown_owner(world, api_for):
    errors = post_bad(
        api_for("ml_engineer"), f"{API}/models/", model_body(slug="sepsis", clinical_owner="ghost")
    )
    assert set(errors) >= {"slug", "clinical_owner"}


def test_it_rejects_unknown_fields_top_level_and_nested(world, api_for):
    client = api_for("ml_engineer")
    errors = post_bad(client, f"{API}/models/", model_body(risk_teir="high"))
    assert errors["risk_teir"] == ["Unknown field."]
    body = version_body(features=[{"name": "hr", "dtype": "numeric", "colour": "red"}])
    errors = post_bad(client, f"{API}/models/sepsis/versions/", body)
    assert errors["features[0].colour"] == ["Unknown field."]
    errors = post_bad(client, f"{API}/models/sepsis/versions/", version_body(status="approved"))
    assert errors["status"] == ["Unknown field."]


def test_it_rejects_bad_json(world, api_for):
    errors = post_bad(
        api_for("ml_engineer"),
        f"{API}/models/",
        '{"slug": "x", ',
        content_type="application/json",
        format=None,
    )
    assert "JSON parse error" in errors["detail"]
    errors = post_bad(api_for("ml_engineer"), f"{API}/models/", [1, 2, 3])
    assert "non_field_errors" in errors


def test_it_requires_a_reason_and_keeps_the_slug_on_update(world, api_for):
    client = api_for("ml_engineer")
    before = row_counts()
    response = client.patch(f"{API}/models/sepsis/", {"name": "Renamed"}, format="json")
    assert response.status_code == 400 and "reason" in response.data
    response = client.patch(
        f"{API}/models/sepsis/", {"slug": "other", "reason": "rename"}, format="json"
    )
    assert response.status_code == 400 and "never changes" in response.data["slug"][0]
    response = client.patch(
        f"{API}/models/sepsis/", {"risk_tier": "extreme", "reason": "re-tier"}, format="json"
    )
    assert response.status_code == 400 and "risk_tier" in response.data
    assert row_counts() == before
    world.model.refresh_from_db()
    assert world.model.name == "Sepsis early warning" and world.model.slug == "sepsis"


def test_it_rejects_unknown_site_and_bad_deployments(world, api_for):
    client = api_for("medical_director")
    url = f"{API}/deployments/"
    errors = post_bad(
        client, url, {"model": "sepsis", "version": "1.1.0", "site": "NOWHERE", "reason": "x"}
    )
    assert errors["site"] == ["Unknown site 'NOWHERE'."]
    errors = post_bad(
        client, url, {"model": "sepsis", "version": "7.0", "site": "NORTH", "reason": "x"}
    )
    assert "has no version '7.0'" in errors["version"][0]
    errors = post_bad(client, url, {"site": "NORTH", "reason": "x"})
    assert "version" in errors
    errors = post_bad(
        client, url, {"version_id": world.v2.pk, "model": "sepsis", "site": "NORTH", "reason": "x"}
    )
    assert "version_id" in errors
    errors = post_bad(client, url, {"version_id": world.v1.pk, "site": "NORTH", "reason": "again"})
    assert "already live" in errors["version"][0]
    errors = post_bad(
        client, url, {"version_id": world.v2.pk, "site": "NORTH", "mode": "canary", "reason": "x"}
    )
    assert "mode" in errors
    draft = ModelVersionFactory(model=world.model, version="3.0.0", status=VersionStatus.DRAFT)
    errors = post_bad(client, url, {"version_id": draft.pk, "site": "NORTH", "reason": "too early"})
    assert "only an approved version" in errors["version"][0]
    errors = post_bad(client, url, {"version_id": world.v2.pk, "site": "NORTH"})
    assert "reason" in errors


def test_it_rejects_a_blank_reason_on_actions(world, api_for):
    errors = post_bad(
        api_for("medical_director"),
        f"{API}/deployments/{world.deployment.pk}/freeze/",
        {"reason": ""},
    )
    assert "reason" in errors


# --- Filters and pagination ---------------------------------------------------------------


@pytest.fixture
def inventory(world: SimpleNamespace) -> SimpleNamespace:
    other = UserFactory(username="owner-other")
    readmit = ClinicalModelFactory(
        slug="readmission",
        name="30-day readmission",
        risk_tier=RiskTier.MODERATE,
        clinical_owner=other,
        technical_owner=world.tech,
        summary="Readmission within 30 days.",
    )
    noshow = ClinicalModelFactory(
        slug="no-show",
        name="No-show outreach",
        risk_tier=RiskTier.LOW,
        status=ModelStatus.PROPOSED,
        clinical_owner=other,
        technical_owner=other,
    )
    south = SiteFactory(code="SOUTH")
    shadow = ModelVersionFactory(model=readmit, version="1.0.0")
    services.deployment_start(
        actor=None, version=shadow, site=south, reason="trial", mode=DeploymentMode.SHADOW
    )
    world.readmit, world.noshow, world.south, world.other = readmit, noshow, south, other
    return world


def slugs(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(item["slug"] for item in response.data["results"])


def test_it_filters_models(inventory, api_for):
    client = api_for("viewer")
    assert slugs(client.get(f"{API}/models/", {"risk_tier": "high"})) == ["sepsis"]
    assert slugs(client.get(f"{API}/models/", {"status": "proposed"})) == ["no-show"]
    assert slugs(client.get(f"{API}/models/", {"owner": "owner-tech"})) == ["readmission", "sepsis"]
    assert slugs(client.get(f"{API}/models/", {"owner": inventory.other.pk})) == [
        "no-show",
        "readmission",
    ]
    assert slugs(client.get(f"{API}/models/", {"site": "NORTH"})) == ["sepsis"]
    assert slugs(client.get(f"{API}/models/", {"site": "SOUTH"})) == []  # shadow only
    assert slugs(client.get(f"{API}/models/", {"search": "readmission"})) == ["readmission"]
    assert slugs(client.get(f"{API}/models/", {"search": "SEPSIS", "risk_tier": "high"})) == [
        "sepsis"
    ]


def test_it_rejects_unknown_filter_values(inventory, api_for):
    client = api_for("viewer")
    response = client.get(f"{API}/models/", {"risk_tier": "extreme"})
    assert response.status_code == 400 and "risk_tier" in response.data
    response = client.get(f"{API}/models/", {"site": "NOWHERE"})
    assert response.status_code == 400 and "site" in response.data
    response = client.get(f"{API}/deployments/", {"model": "nope"})
    assert response.status_code == 400 and "model" in response.data


def test_it_filters_deployments(inventory, api_for):
    client = api_for("viewer")
    api_for("medical_director").post(
        f"{API}/deployments/",
        {"version_id": inventory.v2.pk, "site": "NORTH", "reason": "R-7"},
        format="json",
    )

    def versions(**params: Any) -> list[str]:
        response = client.get(f"{API}/deployments/", params)
        assert response.status_code == 200, response.content
        return sorted(f"{d['model']}@{d['site']}:{d['version']}" for d in response.data["results"])

    assert versions(model="sepsis") == ["sepsis@NORTH:1.0.0", "sepsis@NORTH:1.1.0"]
    assert versions(model="sepsis", active="true") == ["sepsis@NORTH:1.1.0"]
    assert versions(active="false") == ["sepsis@NORTH:1.0.0"]
    assert versions(site="SOUTH") == ["readmission@SOUTH:1.0.0"]
    assert versions(mode="shadow") == ["readmission@SOUTH:1.0.0"]


def test_it_paginates_lists(inventory, api_for):
    client = api_for("viewer")
    first = client.get(f"{API}/models/", {"page_size": 2})
    assert first.data["count"] == 3 and len(first.data["results"]) == 2
    assert first.data["next"] is not None and first.data["previous"] is None
    second = client.get(first.data["next"])
    assert len(second.data["results"]) == 1 and second.data["next"] is None
    names = [m["name"] for m in first.data["results"] + second.data["results"]]
    assert names == sorted(names)
    assert client.get(f"{API}/models/", {"page": 9}).status_code == 404


def test_it_orders_lists_on_request(inventory, api_for):
    response = api_for("viewer").get(f"{API}/models/", {"ordering": "-slug"})
    assert [m["slug"] for m in response.data["results"]] == ["sepsis", "readmission", "no-show"]


# --- Which version was live at site S at time T ---------------------------------------------


def live(client: APIClient, at: dt.datetime | str, **overrides: str) -> Any:
    params = {
        "model": "sepsis",
        "site": "NORTH",
        "at": at if isinstance(at, str) else at.isoformat(),
    }
    params.update(overrides)
    return client.get(f"{API}/deployments/live/", params)


def test_it_answers_which_version_was_live_before_and_after_a_switch(world, api_for):
    client = api_for("viewer")
    before_launch = timezone.now() - dt.timedelta(days=20)
    during_v1 = timezone.now() - dt.timedelta(days=5)
    assert live(client, during_v1).data["version"] == "1.0.0"

    switch = api_for("medical_director").post(
        f"{API}/deployments/",
        {"version_id": world.v2.pk, "site": "NORTH", "reason": "R-7"},
        format="json",
    )
    assert switch.status_code == 201
    after_switch = timezone.now()

    answer = live(client, during_v1)
    assert answer.status_code == 200
    assert answer.data["version"] == "1.0.0" and answer.data["id"] == world.deployment.pk
    assert answer.data["ended_at"] is not None
    assert live(client, after_switch).data["version"] == "1.1.0"
    in_other_zone = after_switch.astimezone(dt.timezone(dt.timedelta(hours=-5)))
    assert live(client, in_other_zone).data["version"] == "1.1.0"
    missing = live(client, before_launch)
    assert missing.status_code == 404
    assert "No version of sepsis was live at NORTH" in missing.data["detail"]


def test_it_ignores_shadow_deployments_when_asked_what_was_live(world, api_for):
    services.deployment_end(actor=None, deployment=world.deployment, reason="pause")
    services.deployment_start(
        actor=None, version=world.v2, site=world.site, reason="trial", mode=DeploymentMode.SHADOW
    )
    assert live(api_for("viewer"), timezone.now()).status_code == 404


def test_it_rejects_bad_live_questions(world, api_for):
    client = api_for("viewer")
    response = client.get(f"{API}/deployments/live/")
    assert response.status_code == 400 and set(response.data) == {"model", "site", "at"}
    response = live(client, "2024-05-01T12:00:00")
    assert response.status_code == 400 and "timezone" in response.data["at"][0]
    response = live(client, "yesterday")
    assert response.status_code == 400 and "ISO 8601" in response.data["at"][0]
    response = live(client, timezone.now(), site="NOWHERE")
    assert response.status_code == 400 and response.data["site"] == ["Unknown site 'NOWHERE'."]
    response = live(client, timezone.now(), model="nope")
    assert response.status_code == 400 and response.data["model"] == ["Unknown model 'nope'."]
