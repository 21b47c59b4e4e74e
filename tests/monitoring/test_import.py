"""``manage.py import_predictions``: CSV and Parquet through the gate, replays, rejected rows."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.services import service_account_create
from governance.audit.models import AuditEvent
from monitoring import importing
from monitoring.api.serializers import PredictionInSerializer
from monitoring.models import PredictionEvent, ReviewCase

pytestmark = pytest.mark.django_db

HEADER = [
    "occurred_at",
    "case_key",
    "score",
    "confidence",
    "age",
    "heart_rate",
    "lactate",
    "care_unit",
    "on_dialysis",
    "age_band",
    "sex",
]
WHEN = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)


def row(n: int, **overrides: Any) -> dict[str, Any]:
    cells: dict[str, Any] = {
        "occurred_at": (WHEN + timedelta(minutes=n)).isoformat(),
        "case_key": f"case-{n:04d}",
        "score": "0.31",
        "confidence": "0.9",
        "age": "64",
        "heart_rate": "112",
        "lactate": "2.1",
        "care_unit": "ward",
        "on_dialysis": "false",
        "age_band": "40-64",
        "sex": "F",
    }
    cells.update(overrides)
    return cells


def write_csv(path: Path, rows: list[dict[str, Any]], header: list[str] | None = None) -> Path:
    columns = header or list(rows[0])
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        for cells in rows:
            writer.writerow([cells.get(name, "") for name in columns])
    return path


def run(path: Path, **options: Any) -> str:
    out, err = io.StringIO(), io.StringIO()
    options = {"model": "sepsis-ews", "site": "NORTH", "service": "sepsis-scorer", **options}
    call_command("import_predictions", str(path), stdout=out, stderr=err, **options)
    return out.getvalue()


def summary_count(output: str, label: str) -> int:
    line = next(line for line in output.splitlines() if line.strip().startswith(label))
    return int(line.split()[-1].replace(",", ""))


def rejected_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_it_imports_a_csv_file_through_the_gate(gate_setup, tmp_path):
    path = write_csv(tmp_path / "scores.csv", [row(1), row(2, score="0.7"), row(3)])
    output = run(path)
    assert summary_count(output, "accepted (act)") == 3
    assert summary_count(output, "rejected") == 0
    event = PredictionEvent.objects.get(occurred_at=WHEN + timedelta(minutes=1))
    assert event.features == {
        "age": 64,
        "heart_rate": 112,
        "lactate": 2.1,
        "care_unit": "ward",
        "on_dialysis": False,
    }
    assert event.cohort == {"age_band": "40-64", "sex": "F"}
    assert (event.score, event.confidence, event.action) == (0.31, 0.9, "act")
    assert (
        event.version == gate_setup.version and event.submitted_by.username == "svc-sepsis-scorer"
    )


def test_it_imports_a_parquet_file(gate_setup, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "event_id": [str(uuid.uuid4()), None],
            "occurred_at": pa.array([WHEN, WHEN + timedelta(hours=1)], pa.timestamp("us", "UTC")),
            "case_key": ["case-1", "case-2"],
            "score": [0.2, 0.4],
            "age": [70, 55],
            "heart_rate": [88.0, 300.0],
            "lactate": [None, float("nan")],
            "care_unit": ["icu", "ed"],
            "on_dialysis": [True, None],
            "sex": ["M", "F"],
        }
    )
    path = tmp_path / "scores.parquet"
    pq.write_table(table, path)
    output = run(path)
    assert summary_count(output, "accepted (act)") == 1
    assert summary_count(output, "deferred to a human") == 1
    first, second = PredictionEvent.objects.order_by("occurred_at")
    assert first.event_id == uuid.UUID(table["event_id"][0].as_py())
    assert first.features == {
        "age": 70,
        "heart_rate": 88.0,
        "care_unit": "icu",
        "on_dialysis": True,
    }
    assert second.action == "defer" and second.problems[0]["code"] == "out_of_range"
    assert "lactate" not in second.features  # NaN and null are missing values


def test_a_parquet_time_without_a_zone_is_refused_whole(gate_setup, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "naive.parquet"
    naive = datetime(2024, 1, 1)  # noqa: DTZ001 - the very thing under test
    pq.write_table(pa.table({"occurred_at": [naive], "case_key": ["c"], "score": [0.1]}), path)
    with pytest.raises(CommandError, match="without a time zone"):
        run(path)
    assert not PredictionEvent.objects.exists()


def test_running_the_same_file_again_stores_nothing_new(gate_setup, tmp_path):
    path = write_csv(tmp_path / "scores.csv", [row(n) for n in range(7)] + [row(9, age="400")])
    run(path)
    stored = list(PredictionEvent.objects.order_by("event_id").values_list("event_id", flat=True))
    assert len(stored) == 8
    again = run(path, chunk_rows=3)
    assert summary_count(again, "replayed") == 8
    for label in ("accepted (act)", "deferred to a human", "rejected"):
        assert summary_count(again, label) == 0
    ids = PredictionEvent.objects.values_list("event_id", flat=True).order_by("event_id")
    assert list(ids) == stored
    assert ReviewCase.objects.count() == 1


def test_the_derived_event_id_is_the_rows_case_key_and_instant(gate_setup, tmp_path):
    # The same instant written in two zones is one prediction; chunking does not matter.
    same = row(1, occurred_at="2024-03-01T10:31:00+02:00")
    path = write_csv(tmp_path / "scores.csv", [row(1), row(2), same])
    output = run(path, chunk_rows=1)
    assert summary_count(output, "accepted (act)") == 2
    assert summary_count(output, "replayed") == 1
    expected = importing.derived_event_id(
        model="sepsis-ews",
        site="NORTH",
        case_key="case-0001",
        occurred_at="2024-03-01T08:31:00+00:00",
    )
    assert PredictionEvent.objects.filter(event_id=expected).exists()
    PredictionEvent.objects.all().delete()
    ReviewCase.objects.all().delete()
    output = run(path, chunk_rows=100)  # the repeat in one chunk waits for the next gate call
    assert summary_count(output, "accepted (act)") == 2
    assert summary_count(output, "replayed") == 1


def test_an_out_of_range_value_is_stored_and_deferred(gate_setup, tmp_path):
    path = write_csv(tmp_path / "scores.csv", [row(1, heart_rate="400")])
    output = run(path)
    assert summary_count(output, "deferred to a human") == 1
    assert summary_count(output, "invalid_input") == 1
    event = PredictionEvent.objects.get()
    assert event.action == "defer" and event.features["heart_rate"] == 400
    assert [p["code"] for p in event.problems] == ["out_of_range"]
    assert ReviewCase.objects.get().event == event


def test_empty_cells_are_missing_values(gate_setup, tmp_path):
    path = write_csv(
        tmp_path / "scores.csv",
        [row(1, lactate="", on_dialysis="", confidence=""), row(2, heart_rate=" ")],
    )
    output = run(path)
    assert summary_count(output, "accepted (act)") == 1
    assert summary_count(output, "missing_required_input") == 1
    clean = PredictionEvent.objects.get(action="act")
    assert "lactate" not in clean.features and clean.confidence is None
    assert PredictionEvent.objects.get(action="defer").problems[0]["code"] == "missing_required"


def test_an_unknown_column_is_an_unexpected_feature(gate_setup, tmp_path):
    path = write_csv(tmp_path / "scores.csv", [{**row(1), "shoe_size": "44"}, {**row(2)}])
    output = run(path)
    assert summary_count(output, "deferred to a human") == 1  # row 2's cell is empty
    event = PredictionEvent.objects.get(action="defer")
    assert event.problems[0]["code"] == "unexpected_feature"
    assert event.problems[0]["feature"] == "shoe_size"
    assert "shoe_size" not in event.features  # named as a problem, its value not kept


def test_a_version_column_reaches_a_shadow_deployment(gate_setup, ml_engineer, tmp_path):
    gate_setup.deploy("1.1.0-rc", mode="shadow", at=datetime(2021, 1, 1, tzinfo=UTC))
    rows = [{**row(1), "version": "1.1.0-rc"}, {**row(2), "version": ""}, row(3, version="9")]
    output = run(write_csv(tmp_path / "scores.csv", rows, header=[*HEADER, "version"]))
    assert summary_count(output, "shadow (logged only)") == 1
    assert summary_count(output, "accepted (act)") == 1  # an empty version: the live one
    assert summary_count(output, "version_mismatch") == 1
    assert not ReviewCase.objects.exists()


def test_rejected_rows_go_to_a_file_with_their_error(gate_setup, tmp_path):
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    rows = [
        row(1),
        {**row(2), "event_id": "not-a-uuid"},
        row(3, occurred_at="yesterday"),
        row(4, occurred_at="2024-03-01T08:30:00"),
        row(5, score="high"),
        row(6, score="1.5"),
        row(7, occurred_at=future),
        row(8, case_key=""),
    ]
    header = ["event_id", *HEADER]
    path = write_csv(tmp_path / "scores.csv", rows, header=header)
    with path.open("a") as stream:
        stream.write("only,three,cells\n")
    output = run(path)
    assert summary_count(output, "accepted (act)") == 1
    assert summary_count(output, "rejected") == 8
    assert summary_count(output, "invalid") == 6
    assert summary_count(output, "time_in_future") == 1
    assert summary_count(output, "malformed_row") == 1
    rejected = rejected_rows(tmp_path / "scores.rejected.csv")
    assert [r["case_key"] for r in rejected] == [
        "case-0002",
        "case-0003",
        "case-0004",
        "case-0005",
        "case-0006",
        "case-0007",
        "",
        "cells",
    ]
    assert list(rejected[0])[: len(header)] == header  # the original columns, then the error
    by_key = {r["case_key"]: r for r in rejected}
    assert by_key["case-0002"]["event_id"] == "not-a-uuid"
    assert by_key["case-0002"]["error"].startswith("event_id: ")
    assert by_key["case-0003"]["error"].startswith("occurred_at: Datetime has wrong format")
    assert by_key["case-0004"]["error"] == "occurred_at: Give the time zone (e.g. ...Z or +00:00)."
    assert by_key["case-0005"]["error"] == "score: A valid number is required."
    assert "less than or equal to 1.0" in by_key["case-0006"]["error"]
    assert by_key["case-0007"]["error_code"] == "time_in_future"
    assert by_key[""]["error"] == "case_key: This field is required."
    assert by_key["cells"]["error_code"] == "malformed_row"  # padded to the header's width
    assert by_key["cells"]["error"] == "3 cells for 12 columns"
    assert PredictionEvent.objects.count() == 1


def test_the_rejected_rows_file_can_be_placed_elsewhere(gate_setup, tmp_path):
    path = write_csv(tmp_path / "scores.csv", [row(1, score="x")])
    elsewhere = tmp_path / "bad.csv"
    output = run(path, rejected=str(elsewhere))
    assert str(elsewhere) in output
    assert rejected_rows(elsewhere)[0]["error_code"] == "invalid"
    assert not (tmp_path / "scores.rejected.csv").exists()


def test_an_unknown_site_is_a_command_error(gate_setup, tmp_path):
    path = write_csv(tmp_path / "scores.csv", [row(1)])
    with pytest.raises(CommandError, match="no site 'SOUTH'"):
        run(path, site="SOUTH")
    assert not PredictionEvent.objects.exists()
    assert not (tmp_path / "scores.rejected.csv").exists()


def test_an_unknown_model_or_service_is_a_command_error(gate_setup, tmp_path):
    path = write_csv(tmp_path / "scores.csv", [row(1)])
    with pytest.raises(CommandError, match="no model 'nope'"):
        run(path, model="nope")
    with pytest.raises(CommandError, match="no service account 'nobody'"):
        run(path, service="nobody")


def test_a_service_not_scoped_to_the_model_is_a_command_error(
    gate_setup, other_model_version, tmp_path
):
    other_model_version()
    service_account_create(actor=None, name="readmit-scorer", model_slugs=["readmit-30d"])
    path = write_csv(tmp_path / "scores.csv", [row(1)])
    with pytest.raises(CommandError, match="may not log predictions for sepsis-ews"):
        run(path, service="readmit-scorer")
    assert not PredictionEvent.objects.exists()


def test_a_header_without_the_required_columns_is_a_command_error(gate_setup, tmp_path):
    path = write_csv(tmp_path / "scores.csv", [{"case_key": "c", "age": "3"}])
    with pytest.raises(CommandError, match="lacks required column.*occurred_at, score"):
        run(path)


def test_an_unreadable_file_is_a_command_error(gate_setup, tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run(tmp_path / "missing.csv")
    path = tmp_path / "scores.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(CommandError, match="not a readable Parquet file"):
        run(path)
    with pytest.raises(CommandError, match="--format"):
        run(write_csv(tmp_path / "scores.txt", [row(1)]))


def test_an_import_is_one_audit_event_with_its_counts(gate_setup, tmp_path):
    path = write_csv(tmp_path / "scores.csv", [row(1), row(2, score="x")])
    run(path)
    event = AuditEvent.objects.filter(action="predictions.import").get()
    assert event.payload["act"] == 1 and event.payload["rejected"] == 1
    assert event.payload["file"] == "scores.csv" and "import_predictions" in event.payload["via"]


# --- The fast path never accepts what the API's serializer refuses ---------------------------

cell_text = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "0.5",
            " 0.5 ",
            "1",
            "1.0000001",
            "-0",
            "nan",
            "inf",
            "1e-3",
            "true",
            "x",
            "\x00",
            "2024-03-01T08:30:00Z",
            "2024-03-01T08:30:00",
            "2024-13-01T08:30:00Z",
            "2024-03-01 08:30+05:30",
            "6f1d8e52-3c0b-4b8e-9a57-0a5b2f0e6c11",
            "{6f1d8e52-3c0b-4b8e-9a57-0a5b2f0e6c11}",
            "a" * 201,
            '[{"feature": "age", "contribution": 0.1}]',
            '[1, "x", null, {"a": [1]}]',
            "[null]",
            '[{"feature": "age", "contribution": null}, 0.2]',
            '{"a": 1}',
            "[NaN]",
            "[" + "1," * 50 + "1]",
        ]
    ),
    st.text(max_size=12),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cells=st.fixed_dictionaries(
        {},
        optional={
            name: cell_text
            for name in ["event_id", "occurred_at", "case_key", "score", "confidence", "version"]
            + ["top_factors", "age", "care_unit", "sex", "extra"]
        },
    )
)
def test_the_fast_path_agrees_with_the_serializer(cells):
    layout = importing.layout_for(
        list(cells) + [c for c in importing.REQUIRED_COLUMNS if c not in cells],
        features={"age": "numeric", "care_unit": "categorical"},
        cohorts=frozenset({"sex"}),
    )
    raw = importing.raw_prediction(
        importing.Row(1, cells, list(cells.values())), layout, model="m", site="S"
    )
    fast = importing._fast_prediction(raw)
    if fast is None:
        return
    serializer = PredictionInSerializer(data=raw)
    assert serializer.is_valid(), (raw, serializer.errors)
    assert serializer.to_prediction() == fast
    assert serializer.to_prediction().body_hash() == fast.body_hash()


def test_the_progress_bar_shows_rows_rate_and_time_left():
    from monitoring.management.commands.import_predictions import ProgressBar

    bar = ProgressBar(io.StringIO())
    known = importing.Progress(rows=250, total_rows=1000, bytes_read=0, total_bytes=0, elapsed=5.0)
    assert bar.render(known) == (
        "[######..................]  25% 250/1,000 rows, 50 rows/s, 0m15s left"
    )
    by_bytes = importing.Progress(
        rows=10_000, total_rows=None, bytes_read=5_000_000, total_bytes=20_000_000, elapsed=4.0
    )
    assert "10,000 rows, 5.0/20.0 MB, 2,500 rows/s, 0m12s left" in bar.render(by_bytes)


def test_a_null_top_factor_goes_to_the_serializer_which_refuses_it():
    raw = {
        "event_id": "6f1d8e52-3c0b-4b8e-9a57-0a5b2f0e6c11", "model": "m", "site": "S",
        "occurred_at": "2024-03-01T08:30:00Z", "case_key": "k", "score": 0.3,
        "features": {}, "cohort": {}, "top_factors": [None],
    }  # fmt: skip
    assert importing._fast_prediction(raw) is None
    assert not PredictionInSerializer(data=raw).is_valid()
