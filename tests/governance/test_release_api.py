"""The release API drives change control end to end, as a hospital's release pipeline would."""

from __future__ import annotations

import pytest

from registry.models import Deployment
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def propose(api, gate, **overrides):
    body = {
        "model": gate.version.model.slug, "kind": "recalibration", "title": "Recalibrate",
        "rationale": "O/E 1.4", "sites": [gate.site.code],
        "score_mapping": {"method": "logistic", "intercept": -0.5, "slope": 0.8},
    }  # fmt: skip
    body.update(overrides)
    return api.post("/api/v1/releases/", body, format="json")


def test_a_pipeline_proposes_submits_signs_and_deploys(gate_setup, api_for, user_for):
    engineer, director = api_for("ml_engineer"), api_for("medical_director")
    created = propose(engineer, gate_setup)
    assert created.status_code == 201, created.content
    rid = created.json()["id"]
    assert created.json()["status"] == "draft" and created.json()["version"] == "1.0.0"
    wrong = engineer.post(
        f"/api/v1/releases/{rid}/submit/", {"username": "test-ml_engineer", "password": "x"}
    )
    assert wrong.status_code == 400 and "password" in wrong.json()
    submitted = engineer.post(
        f"/api/v1/releases/{rid}/submit/",
        {"username": "test-ml_engineer", "password": PASSWORD},
    )
    assert submitted.json()["status"] == "submitted"
    missing = director.post(f"/api/v1/releases/{rid}/sign/", {"password": PASSWORD})
    assert missing.status_code == 400 and "username" in missing.json()  # every component
    signed = director.post(
        f"/api/v1/releases/{rid}/sign/",
        {"username": "test-medical_director", "password": PASSWORD},
    )
    body = signed.json()
    assert body["status"] == "approved" and body["missing_signatures"] == []
    approval = [x for x in body["signatures"] if x["meaning"] == "approval"][0]
    assert approval["printed_name"] == user_for("medical_director").get_full_name()
    assert approval["content_sha256"] == body["content_sha256"] and approval["valid"]
    deployed = engineer.post(f"/api/v1/releases/{rid}/deploy/")
    assert deployed.status_code == 200, deployed.content
    assert deployed.json()["status"] == "deployed"
    listing = api_for("viewer").get(f"/api/v1/deployments/?model={gate_setup.version.model.slug}")
    live = [d for d in listing.json()["results"] if d["is_active"]][0]
    assert live["releases"] == [rid] and live["score_mapping"]["slope"] == 0.8


def test_bad_input_gets_a_clear_400_and_roles_a_403(gate_setup, api_for):
    engineer = api_for("ml_engineer")
    bad = propose(engineer, gate_setup, kind="teleport", sites=["NOWHERE"])
    assert bad.status_code == 400 and {"kind", "sites"} <= set(bad.json())
    unknown = propose(engineer, gate_setup, version="9.9")
    assert unknown.status_code == 400 and "no version" in str(unknown.json()["version"])
    assert propose(api_for("viewer"), gate_setup).status_code == 403
    rid = propose(engineer, gate_setup).json()["id"]
    assert api_for("viewer").post(f"/api/v1/releases/{rid}/deploy/").status_code == 403
    refused = api_for("medical_director").post(f"/api/v1/releases/{rid}/deploy/")
    assert refused.status_code == 400 and "approved" in str(refused.json())


def test_rollback_through_the_api(gate_setup, api_for):
    engineer, director = api_for("ml_engineer"), api_for("medical_director")
    rid = propose(engineer, gate_setup).json()["id"]
    engineer.post(f"/api/v1/releases/{rid}/submit/",
                  {"username": "test-ml_engineer", "password": PASSWORD})  # fmt: skip
    director.post(f"/api/v1/releases/{rid}/sign/",
                  {"username": "test-medical_director", "password": PASSWORD})  # fmt: skip
    engineer.post(f"/api/v1/releases/{rid}/deploy/")
    rollback = engineer.post(
        "/api/v1/releases/rollback/",
        {"model": gate_setup.version.model.slug, "sites": [gate_setup.site.code],
         "rationale": "Calibration worse after the change", "incident": 3},
        format="json",
    )  # fmt: skip
    assert rollback.status_code == 201, rollback.content
    done = director.post(
        f"/api/v1/releases/{rollback.json()['id']}/sign/",
        {"username": "test-medical_director", "password": PASSWORD},
    )
    assert done.json()["status"] == "deployed"
    live = Deployment.objects.get(site=gate_setup.site, ended_at__isnull=True)
    assert live.score_mapping == {} and live.version == gate_setup.version


def test_awaiting_lists_what_my_roles_still_need_to_sign(gate_setup, api_for):
    engineer = api_for("ml_engineer")
    rid = propose(engineer, gate_setup).json()["id"]
    engineer.post(f"/api/v1/releases/{rid}/submit/",
                  {"username": "test-ml_engineer", "password": PASSWORD})  # fmt: skip
    mine = api_for("medical_director").get("/api/v1/releases/?awaiting=true").json()
    assert [r["id"] for r in mine["results"]] == [rid]
    theirs = api_for("quality_safety").get("/api/v1/releases/?awaiting=true").json()
    assert theirs["results"] == []  # a moderate-tier release needs no quality signature
