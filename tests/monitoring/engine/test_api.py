"""The monitoring engine's API: metric results with filters, reference upload, the policy."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from governance.audit.models import AuditEvent
from monitoring.models import MonitorPolicy, ReferenceProfile
from monitoring.runner import run_now
from tests.monitoring.engine.conftest import rows, write_csv

pytestmark = pytest.mark.django_db


@pytest.fixture
def evaluated(monitored, days_ago):
    monitored.upload_reference(n=1500)
    for back in range(1, 4):
        north = rows(90, seed=400 + back)
        monitored.label(monitored.send(north, day=days_ago(back), site="NORTH"), north)
        south = rows(90, seed=500 + back, hr_shift=30)
        monitored.label(monitored.send(south, day=days_ago(back), site="SOUTH"), south)
    run_now(actor=None, window_end=days_ago(1))
    return monitored


def test_metric_results_filter_by_site_metric_band_and_window(evaluated, api_for, days_ago):
    api = api_for("viewer")
    body = api.get(
        "/api/v1/metric-results/", {"site": "SOUTH", "metric": "psi", "window": 7}
    ).json()
    metrics = {r["metric"] for r in body["results"]}
    assert "psi:heart_rate" in metrics and "psi:score" in metrics
    assert all(r["site"] == "SOUTH" and r["window_days"] == 7 for r in body["results"])
    south_hr = next(r for r in body["results"] if r["metric"] == "psi:heart_rate")
    assert south_hr["band"] == "red" and south_hr["n"] == 270
    assert south_hr["interval"][0] < south_hr["value"] < south_hr["interval"][1]
    assert south_hr["window_end"] == days_ago(1).isoformat()
    assert south_hr["slice"] == "site=SOUTH" and south_hr["layer"] == "prediction_quality"

    red = api.get("/api/v1/metric-results/", {"band": "red", "page_size": 200}).json()
    assert red["count"] > 0 and all(r["band"] == "red" for r in red["results"])
    assert not any(r["site"] == "NORTH" for r in red["results"])

    one = api.get(
        "/api/v1/metric-results/",
        {"metric": "psi:heart_rate", "slice": "all", "layer": "prediction_quality"},
    ).json()
    assert {r["metric"] for r in one["results"]} == {"psi:heart_rate"}
    assert {r["window_days"] for r in one["results"]} == {7, 30}
    assert api.get("/api/v1/metric-results/", {"band": "purple"}).status_code == 400


def test_a_service_token_cannot_read_results(evaluated):
    response = evaluated.gate.client.get("/api/v1/metric-results/")
    assert response.status_code == 403


def test_reference_upload_over_the_api(monitored, api_for):
    url = "/api/v1/models/sepsis-ews/versions/1.0.0/reference-profiles/"
    content = write_csv(monitored.tmp / "ref.csv", rows(400, seed=8)).read_bytes()

    refused = api_for("viewer").post(
        url, {"file": SimpleUploadedFile("ref.csv", content)}, format="multipart"
    )
    assert refused.status_code == 403

    created = api_for("ml_engineer").post(
        url, {"file": SimpleUploadedFile("ref.csv", content), "note": "2024 cohort"},
        format="multipart",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["number"] == 1 and body["row_count"] == 400 and body["note"] == "2024 cohort"
    assert body["features"]["care_unit"]["categories"] == ["ward", "icu", "ed"]
    assert body["baseline"]["all"]["auc"]["value"] > 0.6
    assert api_for("viewer").get(url).json()["results"][0]["number"] == 1


def test_a_bad_reference_file_gets_every_problem_and_stores_nothing(monitored, api_for):
    url = "/api/v1/models/sepsis-ews/versions/1.0.0/reference-profiles/"
    data = rows(300, seed=9)
    data[0]["care_unit"] = "theatre"
    data[1]["score"] = "high"
    content = write_csv(monitored.tmp / "bad.csv", data).read_bytes()
    response = api_for("ml_engineer").post(
        url, {"file": SimpleUploadedFile("bad.csv", content)}, format="multipart"
    )
    assert response.status_code == 400
    problems = response.json()["file"]
    assert any("care_unit: 'theatre'" in p for p in problems)
    assert any(p.startswith("score: missing or not a number") for p in problems)
    wrong_type = api_for("ml_engineer").post(
        url, {"file": SimpleUploadedFile("ref.xlsx", b"x")}, format="multipart"
    )
    assert wrong_type.status_code == 400
    assert "upload a .csv or .parquet file" in wrong_type.json()["file"][0]
    missing = api_for("ml_engineer").post(url, {}, format="multipart")
    assert missing.status_code == 400 and "file" in missing.json()
    assert not ReferenceProfile.objects.exists()
    unknown = api_for("ml_engineer").get(
        "/api/v1/models/sepsis-ews/versions/9.9.9/reference-profiles/"
    )
    assert unknown.status_code == 404


def test_the_policy_reads_defaults_then_saves_with_history(monitored, api_for):
    url = "/api/v1/models/sepsis-ews/monitor-policy/"
    default = api_for("viewer").get(url).json()
    assert default["is_default"] and default["windows"] == [7, 30]
    psi = next(m for m in default["metrics"] if m["metric"] == "psi")
    assert psi["red"] == 0.25 and "Siddiqi" in psi["source"]

    body = {
        "windows": [14, 7],
        "launch_days": 60,
        "thresholds": {"psi": {"yellow": 0.05, "orange": 0.1, "red": 0.2}},
        "min_samples": {"auc": 200},
        "reason": "tighter after the 2026 review",
    }
    assert api_for("viewer").put(url, body, format="json").status_code == 403
    saved = api_for("medical_director").put(url, body, format="json")
    assert saved.status_code == 200, saved.content
    assert saved.json()["windows"] == [7, 14] and not saved.json()["is_default"]
    policy = MonitorPolicy.objects.get()
    assert policy.min_samples == {"auc": 200}
    event = AuditEvent.objects.filter(action="monitoring.policy_changed").get()
    assert event.payload["changed"] == ["launch_days", "min_samples", "thresholds", "windows"]

    body["thresholds"] = {"psi": {"yellow": 0.3, "orange": 0.1}}
    bad = api_for("ml_engineer").put(url, body, format="json")
    assert bad.status_code == 400
    assert "yellow ≤ orange ≤ red" in bad.json()["thresholds"][0]
    body["thresholds"], body["windows"] = {"nonsense": {"red": 1}}, []
    bad = api_for("ml_engineer").put(url, body, format="json").json()
    assert "windows" in bad
    assert MonitorPolicy.objects.get().history.count() == 1
