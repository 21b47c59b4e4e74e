"""Decision lineage: for one logged prediction, the version, thresholds, score mapping, deferral
policy and signed release that produced it, on a page and through one API call."""

from __future__ import annotations

import uuid

import pytest
from django.urls import NoReverseMatch, Resolver404, include, path, resolve, reverse

from config import urls as project_urls
from governance import deploy, lineage, lineage_urls, releases, signing
from governance import urls as governance_urls
from governance.api import lineage as lineage_api
from monitoring.models import DeferralPolicy, PredictionEvent
from registry.models import Deployment
from registry.services import deployment_set_frozen
from tests.factories import PASSWORD, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db

# Until the project's URLconf includes the lineage routes, the tests mount them beside it (one
# ``governance`` namespace holding both, so the pages' links to releases still reverse).
urlpatterns = [
    path(
        "governance/",
        include(([*governance_urls.urlpatterns, *lineage_urls.urlpatterns], "governance")),
    ),
    path("api/v1/", include(lineage_api.urlpatterns)),
    *project_urls.urlpatterns,
]

MAPPING = {"method": "logistic", "intercept": -0.5, "slope": 0.8}


@pytest.fixture(autouse=True)
def mounted(settings):
    try:
        reverse("governance:lineage-search")
        resolve(f"/api/v1/decisions/{uuid.uuid4()}/lineage/")
    except (NoReverseMatch, Resolver404):
        settings.ROOT_URLCONF = __name__


def predict(gate, **overrides):
    response = gate.post(**overrides)
    assert response.status_code == 201, response.content
    return PredictionEvent.objects.get(event_id=response.json()["event_id"])


def deployed_recalibration(gate, user_for, **fields):
    fields = {
        "actor": user_for("ml_engineer"),
        "model": gate.version.model,
        "kind": "recalibration",
        "title": "Recalibrate after the lactate assay change",
        "rationale": "O/E 1.4 at NORTH for 30 days; ranking unchanged.",
        "sites": [gate.site],
        "score_mapping": MAPPING,
        **fields,
    }
    release = releases.release_create(**fields)
    releases.release_submit(actor=release.author, release=release, password=PASSWORD)
    signing.release_sign(actor=user_for("medical_director"), release=release, password=PASSWORD)
    release.refresh_from_db()
    deploy.release_deploy(actor=user_for("medical_director"), release=release)
    release.refresh_from_db()
    return release


@pytest.fixture
def recalibrated(gate_setup, user_for):
    """An event judged at go-live, a policy v1, then a signed recalibration with thresholds
    0.7 and an event judged under it."""
    before = predict(gate_setup, score=0.7)
    DeferralPolicy.objects.create(
        version=gate_setup.version, number=1, threshold_margin=0.05, reason="near-threshold v1",
        safety_rules=[{"code": "S1", "text": "Dialysis goes to a human", "condition":
                       {"feature": "on_dialysis", "op": "==", "value": True}}],
    )  # fmt: skip
    release = deployed_recalibration(gate_setup, user_for, thresholds={"alert": 0.7})
    after = predict(gate_setup, score=0.7)
    return before, release, after


def test_it_names_the_release_version_thresholds_policy_and_mapping(gate_setup, recalibrated):
    _, release, after = recalibrated
    answer = lineage.lineage(after)
    live = Deployment.objects.get(site=gate_setup.site, ended_at__isnull=True)
    assert answer["event_id"] == str(after.event_id)
    assert answer["version"]["version"] == "1.0.0"
    assert answer["version"]["artifact_sha256"] == gate_setup.version.artifact_sha256
    assert answer["deployment"]["id"] == live.pk and answer["deployment"]["site"] == "NORTH"
    assert answer["config"] == {
        "score_mapping": MAPPING,
        "thresholds": {"alert": 0.7},
        "thresholds_source": "deployment",
    }
    assert answer["policy"]["number"] == 1 and answer["policy"]["builtin"] is False
    assert answer["policy"]["rules"]["threshold_margin"] == 0.05
    assert answer["policy"]["rules"]["safety_rules"][0]["code"] == "S1"
    assert answer["release"]["number"] == release.number
    assert answer["release"]["content_intact"] is True
    signatures = answer["release"]["signatures"]
    assert [(s["meaning"], s["valid"]) for s in signatures] == [
        ("authorship", True),
        ("approval", True),
    ]
    director = release.signatures.get(meaning="approval")
    assert signatures[1]["printed_name"] == director.printed_name
    assert signatures[1]["content_sha256"] == release.content_sha256
    assert answer["decision"]["raw_score"] == 0.7
    assert answer["decision"]["score"] == pytest.approx(after.score)
    assert answer["decision"]["action"] == after.action
    actions = {e["action"] for e in answer["audit_events"]}
    assert "release.deployed" in actions


def test_an_event_from_before_the_recalibration_names_the_old_config(gate_setup, recalibrated):
    before, _, _ = recalibrated
    answer = lineage.lineage(before)
    assert answer["deployment"]["id"] == gate_setup.deployment.pk
    assert answer["config"] == {
        "score_mapping": {},
        "thresholds": {"alert": 0.6},
        "thresholds_source": "version",
    }
    assert answer["policy"] == {"number": 0, "builtin": True, "rules": None}
    assert answer["release"] is None  # the go-live was started outside a release
    assert answer["decision"]["raw_score"] is None and answer["decision"]["score"] == 0.7


def test_a_void_signature_shows_as_void(gate_setup, recalibrated):
    _, release, after = recalibrated
    approval = release.signatures.get(meaning="approval")
    approval.voided_at = approval.signed_at
    approval.void_reason = "signed in error"
    approval.save(update_fields=["voided_at", "void_reason"])
    rows = {s["meaning"]: s for s in lineage.lineage(after)["release"]["signatures"]}
    assert rows["approval"]["valid"] is False and rows["approval"]["state"] == "void"
    assert rows["authorship"]["valid"] is True


def test_it_tells_a_frozen_deployment_and_the_reason_code(gate_setup, director):
    deployment_set_frozen(
        actor=director, deployment=gate_setup.deployment, frozen=True, reason="red calibration"
    )
    event = predict(gate_setup)
    answer = lineage.lineage(event)
    assert answer["decision"]["action"] == "defer"
    assert answer["deployment"]["frozen_at_decision"] is True
    assert "frozen_deployment" in [r["code"] for r in answer["decision"]["reasons"]]


def test_the_api_answers_in_one_call_without_patient_data(gate_setup, recalibrated, api_for):
    _, release, after = recalibrated
    response = api_for("compliance_officer").get(f"/api/v1/decisions/{after.event_id}/lineage/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["release"]["number"] == release.number
    assert body["config"]["thresholds"] == {"alert": 0.7}
    text = response.content.decode()
    for secret in ("case-0001", after.case_key_hash, "heart_rate", "features", "case_key"):
        assert secret not in text


def test_the_api_is_a_404_for_an_unknown_or_unseen_event(gate_setup, recalibrated, api_for):
    _, _, after = recalibrated
    unknown = api_for("medical_director").get(f"/api/v1/decisions/{uuid.uuid4()}/lineage/")
    assert unknown.status_code == 404
    # a reviewer assigned to another site cannot see NORTH's decisions
    reviewer = api_for("reviewer")
    assert reviewer.get(f"/api/v1/decisions/{after.event_id}/lineage/").status_code == 404


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("compliance_officer", 200),
        ("medical_director", 200),
        ("viewer", 403),
        ("ml_engineer", 403),
        ("data_engineer", 403),
    ],
)
def test_the_api_follows_the_roles(gate_setup, recalibrated, api_for, role, status):
    _, _, after = recalibrated
    response = api_for(role).get(f"/api/v1/decisions/{after.event_id}/lineage/")
    assert response.status_code == status


def test_a_reviewer_sees_the_decisions_of_their_own_site(gate_setup, recalibrated, api_for):
    from registry.models import SiteAssignment

    _, _, after = recalibrated
    reviewer = UserFactory(username="rev-north", role="reviewer")
    SiteAssignment.objects.create(user=reviewer, site=gate_setup.site)
    SiteAssignment.objects.create(user=reviewer, site=SiteFactory(code="SOUTH"))
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(reviewer)
    assert client.get(f"/api/v1/decisions/{after.event_id}/lineage/").status_code == 200


def test_a_service_account_cannot_read_a_lineage(gate_setup, recalibrated):
    _, _, after = recalibrated
    response = gate_setup.client.get(f"/api/v1/decisions/{after.event_id}/lineage/")
    assert response.status_code == 403


def test_the_page_shows_the_lineage(gate_setup, recalibrated, client_for):
    _, release, after = recalibrated
    page = client_for("compliance_officer").get(f"/governance/decisions/{after.event_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-number="{release.number}"' in html
    assert 'id="lineage-policy" data-number="1"' in html
    assert "alert = 0.7" in html and "intercept -0.5" in html
    assert gate_setup.version.artifact_sha256 in html
    assert "case-0001" not in html and after.case_key_hash not in html


def test_the_search_box_finds_an_event_or_says_why_not(gate_setup, recalibrated, client_for):
    _, _, after = recalibrated
    client = client_for("medical_director")
    found = client.get("/governance/decisions/", {"event_id": str(after.event_id)})
    assert found.status_code == 302 and found.url.endswith(f"/decisions/{after.event_id}/")
    bad = client.get("/governance/decisions/", {"event_id": "not-a-uuid"})
    assert bad.status_code == 400 and "Enter an event id as a UUID" in bad.content.decode()
    missing = client.get("/governance/decisions/", {"event_id": str(uuid.uuid4())})
    assert missing.status_code == 404 and "No prediction event" in missing.content.decode()
    assert client.get("/governance/decisions/").status_code == 200


def test_the_pages_refuse_roles_without_access(gate_setup, recalibrated, client_for):
    _, _, after = recalibrated
    assert client_for("viewer").get("/governance/decisions/").status_code == 403
    assert client_for("viewer").get(f"/governance/decisions/{after.event_id}/").status_code == 403
    # a reviewer with no site assignment: the event is not theirs to see
    assert client_for("reviewer").get(f"/governance/decisions/{after.event_id}/").status_code == 404
