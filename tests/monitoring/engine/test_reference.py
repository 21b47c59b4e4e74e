"""Uploading reference data: a clean file builds the profile; any mismatch is reported in full
and nothing is stored."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import PermissionDenied
from sklearn.metrics import roc_auc_score

from governance.audit.models import AuditEvent
from monitoring.models import ReferenceProfile
from monitoring.reference import ReferenceProblem, reference_upload
from tests.monitoring.engine.conftest import COLUMNS, rows, write_csv

pytestmark = pytest.mark.django_db


def test_a_clean_file_builds_bins_per_feature_and_baselines_per_cohort(monitored):
    profile = monitored.upload_reference(n=3000)

    assert profile.number == 1 and profile.row_count == 3000 and profile.labelled_count == 3000
    bins = profile.bins
    assert bins["care_unit"] == {"dtype": "categorical", "categories": ["ward", "icu", "ed"]}
    assert bins["on_dialysis"]["categories"] == ["false", "true"]
    edges = bins["heart_rate"]["edges"]
    assert 20 <= len(edges) <= 49 and edges == sorted(edges)
    assert bins["heart_rate"]["std"] == pytest.approx(16, rel=0.15)
    # Slices: everything, each declared cohort value.
    assert set(profile.reference) == {
        "all", "age_band=18-39", "age_band=40-64", "age_band=65+", "sex=F", "sex=M",
    }  # fmt: skip
    whole = profile.reference["all"]
    assert whole["n"] == 3000
    assert sum(whole["features"]["heart_rate"]["counts"]) == 3000
    missing = whole["features"]["lactate"]["missing"]
    assert 100 < missing < 200  # 5% missing in the generator
    # The baseline AUC agrees with scikit-learn on the raw rows (to the score-bin resolution).
    data = rows(3000, seed=1)
    exact = roc_auc_score([r["label"] for r in data], [r["score"] for r in data])
    assert profile.baseline["all"]["auc"]["value"] == pytest.approx(exact, abs=0.01)
    assert profile.baseline["all"]["calibration_oe"]["value"] == pytest.approx(1.0, abs=0.15)
    event = AuditEvent.objects.filter(action="monitoring.reference_uploaded").get()
    assert event.payload["rows"] == 3000 and len(event.payload["file_sha256"]) == 64


def test_uploading_again_makes_the_next_number(monitored):
    monitored.upload_reference(n=400, seed=1)
    second = monitored.upload_reference(n=400, seed=2)
    assert second.number == 2
    assert ReferenceProfile.objects.filter(version=monitored.version).count() == 2


def test_every_mismatch_is_reported_and_nothing_is_stored(monitored, tmp_path):
    data = rows(300, seed=3)
    data[4]["heart_rate"] = "fast"
    data[9]["care_unit"] = "theatre"
    data[10]["care_unit"] = "theatre"
    data[11]["score"] = 1.7
    data[12]["label"] = 2
    data[13]["age_band"] = "90+"
    path = write_csv(tmp_path / "bad.csv", data)

    with pytest.raises(ReferenceProblem) as caught:
        reference_upload(
            actor=monitored.gate.engineer, version=monitored.version, path=path, file_name="bad"
        )
    text = "\n".join(caught.value.problems)
    assert "heart_rate: not a number: 1 row (row 5)" in text
    assert "care_unit: 'theatre' is not a declared category: 2 rows (first at rows 10, 11)" in text
    assert "score: missing or not a number in [0, 1]: 1 row (row 12)" in text
    assert "label: not 0, 1 or blank" in text
    assert "age_band: '90+' is not a declared cohort value" in text
    assert not ReferenceProfile.objects.exists()
    assert not AuditEvent.objects.filter(action="monitoring.reference_uploaded").exists()


def test_a_header_that_does_not_match_the_spec_names_every_column(monitored, tmp_path):
    columns = [c for c in COLUMNS if c not in ("lactate", "sex")] + ["respiratory_rate"]
    path = write_csv(tmp_path / "renamed.csv", rows(300, seed=4), columns)
    with pytest.raises(ReferenceProblem) as caught:
        reference_upload(
            actor=monitored.gate.engineer, version=monitored.version, path=path, file_name="x"
        )
    assert caught.value.problems == [
        "feature(s) of the spec missing from the file: lactate",
        "cohort column(s) missing from the file: sex",
        "column(s) not in the version's spec: respiratory_rate (a renamed or extra input must "
        "be registered in a new version first)",
    ]


def test_too_few_rows_or_labels_is_refused(monitored, tmp_path):
    data = rows(250, seed=5)
    for row in data:
        row["label"] = 0
    path = write_csv(tmp_path / "flat.csv", data)
    with pytest.raises(ReferenceProblem, match="0 positive and 250 negative"):
        reference_upload(
            actor=monitored.gate.engineer, version=monitored.version, path=path, file_name="x"
        )
    path = write_csv(tmp_path / "tiny.csv", rows(50, seed=5))
    with pytest.raises(ReferenceProblem, match="50 rows; a reference needs at least 200"):
        reference_upload(
            actor=monitored.gate.engineer, version=monitored.version, path=path, file_name="x"
        )


def test_parquet_gives_the_same_profile_as_csv(monitored, tmp_path):
    data = rows(500, seed=6)
    csv_profile = reference_upload(
        actor=monitored.gate.engineer,
        version=monitored.version,
        path=write_csv(tmp_path / "ref.csv", data),
        file_name="ref.csv",
    )
    table = pa.Table.from_pylist(data)
    pq.write_table(table, tmp_path / "ref.parquet")
    parquet_profile = reference_upload(
        actor=monitored.gate.engineer,
        version=monitored.version,
        path=tmp_path / "ref.parquet",
        file_name="ref.parquet",
    )
    assert parquet_profile.bins == csv_profile.bins
    assert parquet_profile.reference == csv_profile.reference


def test_only_roles_that_may_upload_can(monitored, user_for):
    path = write_csv(monitored.tmp / "ref.csv", rows(300, seed=7))
    for role in ("viewer", "data_engineer", "reviewer"):
        with pytest.raises(PermissionDenied):
            reference_upload(
                actor=user_for(role), version=monitored.version, path=path, file_name="x"
            )
    assert not ReferenceProfile.objects.exists()
