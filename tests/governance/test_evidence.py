"""The evidence a release carries: a validation set turned into metrics, subgroups, a regression
check and backtests, and a shadow deployment's results."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from scipy import special
from sklearn.metrics import roc_auc_score

from governance.evidence import (
    AUC_MARGIN,
    current_version_at,
    evaluate_validation_set,
    evidence_summary,
    exact_auc,
    shadow_results,
    verdict,
)
from monitoring.models import Outcome, PredictionEvent
from tests.monitoring.conftest import gate_setup  # noqa: F401

pytestmark = pytest.mark.django_db

BANDS = ["18-39", "40-64", "65+"]
START = datetime(2024, 1, 1, tzinfo=UTC)


def synthetic_set(n: int = 3000, seed: int = 7, blind_band: str | None = "65+") -> dict[str, Any]:
    """Rows whose truth is known: scores are the true risk (calibrated, AUC ≈ 0.75), except in
    ``blind_band`` where the score is noise (AUC ≈ 0.5)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    risk = special.expit(-1.5 + 1.2 * x)
    label = (rng.random(n) < risk).astype(int)
    band = rng.choice(BANDS, size=n)
    score = risk.copy()
    blind = band == blind_band
    score[blind] = rng.permutation(risk[blind])
    return {
        "score": np.round(score, 6),
        "label": label,
        "age_band": band,
        "sex": rng.choice(["F", "M"], size=n),
        "site": rng.choice(["NORTH", "SOUTH"], size=n),
        "occurred_at": [START + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 180, n)],
    }


def as_csv(columns: dict[str, Any], *, time: bool = True) -> bytes:
    n = len(columns["score"])
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["age", "heart_rate", "lactate", "care_unit", "on_dialysis", "score", "label"]
    header += ["age_band", "sex", "site"] + (["occurred_at"] if time else [])
    writer.writerow(header)
    for i in range(n):
        row = [50 + i % 40, 80 + i % 50, "", "ward", "false", columns["score"][i]]
        row += [columns["label"][i], columns["age_band"][i], columns["sex"][i]]
        row += [columns["site"][i]] + ([columns["occurred_at"][i].isoformat()] if time else [])
        writer.writerow(row)
    return out.getvalue().encode()


def recorded(auc: float, slope: float = 1.0, n: int = 1000) -> dict[str, Any]:
    return {
        "auc": {"value": auc, "ci_low": auc - 0.03, "ci_high": auc + 0.03, "n": n},
        "calibration_slope": {"value": slope, "ci_low": slope - 0.1, "ci_high": slope + 0.1},
    }


def truth(columns: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    """What a model scoring the true risk achieves on these rows: sklearn's AUC, slope 1."""
    auc = float(roc_auc_score(columns["label"][mask], columns["score"][mask]))
    return recorded(auc, n=int(mask.sum()))


@pytest.fixture
def versions(gate_setup):  # noqa: F811
    """(candidate 2.0.0 in shadow at NORTH, current 1.0.0 live at NORTH whose recorded
    validation is what the true risk scores on the synthetic set: the candidate matches it
    everywhere but where it is blind)."""
    current = gate_setup.version
    good = synthetic_set(blind_band=None)
    everyone = np.ones(len(good["score"]), dtype=bool)
    current.validation_results = {
        "overall": truth(good, everyone),
        "subgroups": {f"age_band={b}": truth(good, good["age_band"] == b) for b in BANDS}
        | {"sex=F": {"auroc": truth(good, good["sex"] == "F")["auc"]}}
        | {"race=Black": recorded(0.74)},
    }
    current.save()
    shadow = gate_setup.deploy("2.0.0", mode="shadow", at=datetime(2021, 1, 1, tzinfo=UTC))
    return shadow.version, current


def test_it_measures_overall_auc_exactly_as_sklearn(versions):
    candidate, current = versions
    columns = synthetic_set()
    data = as_csv(columns)
    evidence = evaluate_validation_set(
        version=candidate, data=data, filename="val.csv", current_version=current
    )
    overall = evidence["overall"]
    assert overall["auc"]["value"] == pytest.approx(
        roc_auc_score(columns["label"], columns["score"]), abs=1e-12
    )
    assert overall["auc"]["ci_low"] < overall["auc"]["value"] < overall["auc"]["ci_high"]
    assert overall["n"] == 3000 and overall["events"] == int(columns["label"].sum())
    assert set(overall) >= {"calibration_intercept", "calibration_slope", "oe", "ece", "brier"}
    brier = np.mean((columns["score"] - columns["label"]) ** 2)
    moments = columns["occurred_at"]
    assert overall["brier"]["value"] == pytest.approx(brier, rel=1e-9)
    assert evidence["dataset"] == {
        "rows": 3000,
        "events": overall["events"],
        "sha256": hashlib.sha256(data).hexdigest(),
        "filename": "val.csv",
        "period": [min(moments).isoformat(), max(moments).isoformat()],
        "sites": evidence["dataset"]["sites"],
    }
    assert sum(evidence["dataset"]["sites"].values()) == 3000
    assert evidence["problems"] == []
    assert json.loads(json.dumps(evidence, allow_nan=False)) == evidence  # storable as JSON


def test_it_matches_sklearn_with_tied_scores():
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(500), 1)  # heavy ties
    labels = (rng.random(500) < scores).astype(float)
    assert exact_auc(scores, labels).value == pytest.approx(roc_auc_score(labels, scores))


def test_it_flags_the_subgroup_made_worse(versions):
    candidate, current = versions
    evidence = evaluate_validation_set(
        version=candidate, data=as_csv(synthetic_set()), filename="val.csv",
        current_version=current,
    )  # fmt: skip
    verdicts = {(r["subgroup"], r["metric"]): r for r in evidence["regression"]}
    for metric in ("auc", "calibration_slope"):
        assert verdicts[("age_band=65+", metric)]["verdict"] == "worse"
        for band in ("18-39", "40-64"):  # untouched: the same as the current version
            assert verdicts[(f"age_band={band}", metric)]["verdict"] == "no worse"
    row = verdicts[("age_band=65+", "auc")]
    assert row["candidate"]["ci_high"] < row["current"]["value"] - AUC_MARGIN
    assert row["delta"] == pytest.approx(row["candidate"]["value"] - row["current"]["value"])
    assert verdicts[("sex=F", "auc")]["current"]["n"] > 0  # recorded under the name "auroc"
    assert verdicts[("sex=M", "auc")]["verdict"] == "insufficient"  # nothing recorded
    assert verdicts[("race=Black", "auc")]["reason"].startswith("the validation set has no rows")
    assert "recorded validation results" in evidence["regression_basis"]
    lines = evidence_summary(evidence)
    worse = next(line for line in lines if "subgroups worse than the current" in line)
    assert "age_band=65+ AUC 0.4" in worse and "age_band=18-39" not in worse


def test_a_subgroup_with_few_events_is_insufficient(versions):
    candidate, current = versions
    columns = synthetic_set()
    columns["sex"][:] = "F"
    columns["sex"][:40] = "M"  # about 9 events among 40 rows
    columns["label"][:40] = np.r_[np.ones(5, int), np.zeros(35, int)]
    evidence = evaluate_validation_set(
        version=candidate, data=as_csv(columns), filename="val.csv", current_version=current
    )
    male = evidence["subgroups"]["sex=M"]
    assert male == {"n": 40, "events": 5, "insufficient": True}
    assert any("too few events" in line and "sex=M" in line for line in evidence_summary(evidence))


def test_backtest_windows_cover_every_row_once(versions):
    candidate, _ = versions
    columns = synthetic_set(n=1000)
    evidence = evaluate_validation_set(
        version=candidate, data=as_csv(columns), filename="val.csv", windows=4
    )
    tests = evidence["backtests"]
    assert [t["n"] for t in tests] == [250, 250, 250, 250]
    assert sum(t["events"] for t in tests) == int(columns["label"].sum())
    bounds = [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in (
        t["window"] for t in tests)]  # fmt: skip
    assert all(a <= b for a, b in bounds)
    assert all(bounds[i][1] <= bounds[i + 1][0] for i in range(3))
    assert bounds[0][0] == min(columns["occurred_at"])
    assert bounds[-1][1] == max(columns["occurred_at"])
    assert all("auc" in t for t in tests)
    assert evidence["regression"] == []
    assert evidence["problems"] == ["No current version to compare with: no regression check."]


def test_without_a_time_column_backtests_are_skipped_with_a_message(versions):
    candidate, current = versions
    evidence = evaluate_validation_set(
        version=candidate, data=as_csv(synthetic_set(), time=False), filename="val.csv",
        current_version=current,
    )  # fmt: skip
    assert evidence["backtests"] == []
    assert evidence["problems"] == ["The validation set has no occurred_at column: no backtests."]
    assert evidence["dataset"]["period"] is None


def test_a_bad_file_lists_every_problem_and_computes_nothing(versions):
    candidate, _ = versions
    text = as_csv(synthetic_set(n=30)).decode().splitlines()
    header = text[0].split(",")
    rows = [line.split(",") for line in text[1:]]
    rows[2][header.index("score")] = "1.4"
    rows[4][header.index("label")] = "2"
    rows[5][header.index("care_unit")] = "theatre"
    rows[6][header.index("occurred_at")] = "yesterday"
    data = "\n".join(",".join(r) for r in [header, *rows]).encode()
    with pytest.raises(ValidationError) as caught:
        evaluate_validation_set(version=candidate, data=data, filename="val.csv")
    messages = caught.value.message_dict["file"]
    assert "score: missing or not a number in [0, 1]: 1 row (row 3)" in messages
    assert "label: missing or not 0 or 1: 1 row (row 5)" in messages
    assert "care_unit: 'theatre' is not a declared category: 1 row (row 6)" in messages
    assert "occurred_at: missing or not an ISO date or datetime: 1 row (row 7)" in messages
    assert any("30 rows; a validation set needs at least 50" in m for m in messages)


def test_a_file_with_wrong_columns_names_them_all(versions):
    candidate, _ = versions
    data = b"age,heart_rate,care_unit,on_dialysis,lactate,risk,outcome,age_band,sex,ward\n1,2\n"
    with pytest.raises(ValidationError) as caught:
        evaluate_validation_set(version=candidate, data=data, filename="val.csv")
    messages = caught.value.message_dict["file"]
    assert "the file has no 'score' column" in messages
    assert "the file has no 'label' column" in messages
    assert any("not in the version's spec: risk, outcome, ward" in m for m in messages)


def test_an_unreadable_file_is_a_file_problem(versions):
    candidate, _ = versions
    for data, name, expected in (
        (b"\xff\xfe\x00garbage", "val.csv", "not a readable UTF-8 CSV"),
        (b"not parquet", "val.parquet", "not a readable Parquet file"),
        (b"score,label\n", "val.xlsx", "upload a .csv or .parquet file"),
    ):
        with pytest.raises(ValidationError) as caught:
            evaluate_validation_set(version=candidate, data=data, filename=name)
        assert expected in caught.value.message_dict["file"][0], name


def test_the_slope_rule_punishes_both_directions():
    def cand(low: float, high: float) -> dict[str, Any]:
        return {"value": (low + high) / 2, "ci_low": low, "ci_high": high, "n": 100}

    assert verdict("calibration_slope", cand(0.6, 0.8), 1.0) == "worse"
    assert verdict("calibration_slope", cand(1.2, 1.4), 1.0) == "worse"
    assert verdict("calibration_slope", cand(0.85, 1.1), 1.0) == "no worse"
    assert verdict("calibration_slope", cand(0.95, 1.05), 0.7) == "better"
    assert verdict("auc", cand(0.70, 0.76), 0.80) == "worse"
    assert verdict("auc", cand(0.76, 0.80), 0.80) == "no worse"


def test_current_version_is_the_one_live_at_the_sites(versions, gate_setup):  # noqa: F811
    _, current = versions
    model = current.model
    assert current_version_at(model=model, sites=[gate_setup.site]) == current
    assert current_version_at(model=model, sites=[]) is None


def test_shadow_results_from_a_shadow_deployments_events(versions, gate_setup):  # noqa: F811
    candidate, _ = versions
    rng = np.random.default_rng(11)
    now = datetime.now(UTC)
    items = []
    for i in range(80):
        features = {"age": 64, "heart_rate": 112, "care_unit": "ward"}
        if i % 4 == 0:
            features.pop("heart_rate")  # a required input missing: the live gate would defer
        items.append(gate_setup.payload(
            version="2.0.0", case_key=f"case-{i}", score=round(float(rng.random()), 4),
            occurred_at=(now - timedelta(days=3, minutes=i)).isoformat(), features=features,
        ))  # fmt: skip
    response = gate_setup.client.post("/api/v1/predictions/bulk/", items, format="json")
    assert response.status_code == 200, response.json()
    events = list(PredictionEvent.objects.filter(version=candidate).order_by("pk"))
    assert len(events) == 80 and {e.mode for e in events} == {"shadow"}
    labels = {e.pk: int(rng.random() < e.score) for e in events[:60]}
    for e in events[:60]:
        Outcome.objects.create(
            event=e, label=1 - labels[e.pk], observed_at=now, submitted_by=gate_setup.director
        )
    for original in Outcome.objects.filter(event__in=events[:60]):  # every label corrected
        Outcome.objects.create(
            event=original.event, label=labels[original.event_id], observed_at=now,
            corrects=original, submitted_by=gate_setup.director,
        )  # fmt: skip

    shadow = shadow_results(version=candidate, sites=[gate_setup.site])

    assert shadow["predictions"] == 80 and shadow["labelled"] == 60
    assert shadow["would_defer"] == 20 and shadow["would_act"] == 60
    labelled = events[:60]
    y = [labels[e.pk] for e in labelled]
    assert shadow["events"] == sum(y)
    assert shadow["auc"]["value"] == pytest.approx(roc_auc_score(y, [e.score for e in labelled]))
    assert shadow["sites"] == {"NORTH": 80}
    summary = evidence_summary({"shadow": shadow})
    assert summary[0].startswith("Shadow: 80 predictions, 20 would have deferred; AUC")
    assert shadow_results(version=candidate, sites=[gate_setup.site], since=now) is None
    assert shadow_results(version=gate_setup.version, sites=[gate_setup.site]) is None


def test_it_reads_parquet_like_csv(versions):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    candidate, _ = versions
    columns = synthetic_set(n=400)
    n = len(columns["score"])
    table = pa.table({
        "age": [50 + i % 40 for i in range(n)], "heart_rate": [80.0 + i % 50 for i in range(n)],
        "lactate": [None] * n, "care_unit": ["ward"] * n, "on_dialysis": [False] * n,
        "score": columns["score"], "label": columns["label"],
        "age_band": columns["age_band"].tolist(), "sex": columns["sex"].tolist(),
        "site": columns["site"].tolist(),
        "occurred_at": pa.array(columns["occurred_at"], pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    from_parquet = evaluate_validation_set(
        version=candidate, data=buffer.getvalue(), filename="val.parquet"
    )
    from_csv = evaluate_validation_set(version=candidate, data=as_csv(columns), filename="v.csv")
    assert from_parquet["overall"] == from_csv["overall"]
    assert from_parquet["backtests"] == from_csv["backtests"]
