"""Audit trail exports: filtered, streamed, with a manifest, recorded, and verifiable offline
by ``tools/verify_audit_export.py`` with nothing but Python's standard library."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.test import Client

from governance.audit import chain
from governance.audit.exports import ExportFilters, audit_export
from governance.audit.models import AuditEvent
from governance.audit.services import record
from tests.factories import ClinicalModelFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
VERIFIER = ROOT / "tools" / "verify_audit_export.py"
URL = "/audit/export/"


# fmt: off
def _register(actor: Any, slug: str, pk: int) -> None:
    record(actor=actor, action="model.register", object_type="registry.clinicalmodel",
           object_id=pk, summary=f"Registered model {slug}", payload={"slug": slug})


@pytest.fixture
def trail(ml_engineer: Any, director: Any) -> dict[str, list[int]]:
    """Two models' interleaved events, plus events about neither. Returns seqs by owner."""
    _register(ml_engineer, "sepsis-ews", 1)
    _register(ml_engineer, "readmit-30d", 2)
    record(actor=ml_engineer, action="version.register", object_type="registry.modelversion",
           object_id=10, summary="Registered sepsis-ews 1.0", payload={"model": "sepsis-ews"})
    record(actor=ml_engineer, action="version.register", object_type="registry.modelversion",
           object_id=20, summary="Registered readmit-30d 1.0", payload={"model": "readmit-30d"})
    record(actor=None, actor_label="mallory", action="auth.login_failed",
           object_type="auth.user", summary="Failed login for =HYPERLINK(x)")
    # No model in the payload: it belongs to sepsis-ews through its version (object 10).
    record(actor=director, action="version.transition", object_type="registry.modelversion",
           object_id=10, summary="sepsis-ews 1.0 validated → approved", payload={"to": "approved"})
    record(actor=director, action="version.transition", object_type="registry.modelversion",
           object_id=20, summary="readmit-30d 1.0 validated → approved", payload={"to": "approved"})
    record(actor=director, action="release.sign", object_type="governance.release",
           object_id=5, summary="Signed REL-5 (sepsis-ews)", payload={"model": "sepsis-ews"})
    return {"sepsis-ews": [1, 3, 6, 8], "readmit-30d": [2, 4, 7], "neither": [5]}
# fmt: on


def export_bytes(by: Any = None, fmt: str = "jsonl", **filters: Any) -> bytes:
    """The export by ``by`` (``None``: the system), as one byte string."""
    return b"".join(audit_export(actor=by, filters=ExportFilters(**filters), fmt=fmt))


def lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def verify(tmp_path: Path, data: bytes) -> subprocess.CompletedProcess[str]:
    """The inspector's command, in an isolated Python with no site-packages (stdlib only)."""
    path = tmp_path / "export.jsonl"
    path.write_bytes(data)
    return subprocess.run(
        [sys.executable, "-I", "-S", str(VERIFIER), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def rewrite(data: bytes, change: Any) -> bytes:
    rows = data.splitlines(keepends=True)
    change(rows)
    return b"".join(rows)


# --- JSON Lines -----------------------------------------------------------------------------


def test_it_exports_the_whole_trail_from_genesis_and_the_file_verifies(trail, tmp_path):
    data = export_bytes()
    parsed = lines(data)
    assert parsed[0]["type"] == "header" and parsed[0]["filters"]["model"] is None
    assert [line["seq"] for line in parsed[1:-1]] == list(range(1, 9))
    assert all(line["type"] == "event" for line in parsed[1:-1])
    manifest = parsed[-1]
    assert manifest["rows"] == 8 and manifest["links"] == 0
    assert manifest["sha256"] == hashlib.sha256(data.rsplit(b"\n", 2)[0] + b"\n").hexdigest()
    done = verify(tmp_path, data)
    assert done.returncode == 0, done.stderr
    assert "8 with content, 0 hash-only links" in done.stdout and "from genesis" in done.stdout


def test_a_model_filter_keeps_its_events_and_only_hash_links_of_the_others(trail, tmp_path):
    data = export_bytes(model="sepsis-ews")
    parsed = lines(data)
    events = [line for line in parsed if line["type"] == "event"]
    links = [line for line in parsed if line["type"] == "link"]
    assert [e["seq"] for e in events] == trail["sepsis-ews"]
    assert [e["action"] for e in events][2] == "version.transition"  # found via its version
    assert sorted(link["seq"] for link in links) == [2, 4, 5, 7]
    assert all(set(link) == {"type", "seq", "prev_hash", "hash"} for link in links)
    assert b"readmit-30d" not in data and b"mallory" not in data
    done = verify(tmp_path, data)
    assert done.returncode == 0, done.stderr
    assert "4 with content, 4 hash-only links" in done.stdout


def test_a_narrow_filter_exports_only_its_range_and_still_verifies(trail, tmp_path):
    data = export_bytes(action="version.transition")
    parsed = lines(data)
    assert parsed[0]["range"] == {"first_seq": 6, "last_seq": 7}
    assert [(line["type"], line["seq"]) for line in parsed[1:-1]] == [("event", 6), ("event", 7)]
    done = verify(tmp_path, data)
    assert done.returncode == 0, done.stderr
    assert "continues from" in done.stdout


def test_actor_time_and_action_prefix_filters_combine(trail, director):
    data = export_bytes(action="version.*")
    assert [e["seq"] for e in lines(data) if e["type"] == "event"] == [3, 4, 6, 7]
    by_director = lines(export_bytes(actor=director.username))
    assert [e["seq"] for e in by_director if e["type"] == "event"] == [6, 7, 8]
    later = datetime.now(UTC) + timedelta(hours=1)
    empty = lines(export_bytes(since=later))
    assert [line["type"] for line in empty] == ["header", "manifest"]
    assert empty[-1]["rows"] == 0 and empty[-1]["first_event_hash"] is None


def test_an_empty_export_verifies(trail, tmp_path):
    later = datetime.now(UTC) + timedelta(hours=1)
    assert verify(tmp_path, export_bytes(since=later)).returncode == 0


def _alter_summary(rows: list[bytes]) -> None:
    event = json.loads(rows[3])
    event["summary"] = "nothing happened"
    rows[3] = chain.canonical_json(event) + b"\n"


def _relink(rows: list[bytes]) -> None:
    link = json.loads(rows[2])  # seq 2 is a link in the sepsis-ews export
    link["hash"] = "f" * 64
    rows[2] = chain.canonical_json(link) + b"\n"


@pytest.mark.parametrize(
    ("tamper", "complaint"),
    [
        (_alter_summary, "line 4: #3 was altered"),
        (lambda rows: rows.pop(3), "line 4: sequence break: expected #3, found #4"),
        (lambda rows: rows.insert(3, rows.pop(4)), "line 4: sequence break"),
        (_relink, "line 4: #3 does not chain"),
        (lambda rows: rows.pop(-2), "the range ends at #8 but the last line is #7"),
        (lambda rows: rows.pop(), "no manifest line"),
        (lambda rows: rows.__setitem__(-1, rows[-1].replace(b'"rows":4', b'"rows":3')),
         "manifest rows is 3, the file gives 4"),
        (lambda rows: rows.__setitem__(-1, rows[-1].replace(b'"sha256":"', b'"sha256":"0')),
         "manifest sha256"),
    ],
    ids=["altered", "dropped", "reordered", "bad-link", "dropped-last", "no-manifest",
         "wrong-count", "wrong-sha"],
)  # fmt: skip
def test_the_verifier_fails_naming_the_first_bad_line(trail, tmp_path, tamper, complaint):
    data = rewrite(export_bytes(model="sepsis-ews"), tamper)
    done = verify(tmp_path, data)
    assert done.returncode == 1
    assert complaint in done.stderr


def test_the_verifier_refuses_a_link_carrying_content(trail, tmp_path):
    def leak(rows: list[bytes]) -> None:
        link = json.loads(rows[2])
        link["summary"] = "smuggled"
        rows[2] = chain.canonical_json(link) + b"\n"

    done = verify(tmp_path, rewrite(export_bytes(model="sepsis-ews"), leak))
    assert done.returncode == 1 and "line 3: a link must carry exactly" in done.stderr


def test_the_verifier_hashes_exactly_as_the_chain_does():
    spec = __import__("importlib.util").util.spec_from_file_location("verifier", VERIFIER)
    verifier = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(verifier)
    assert verifier.HASHED_FIELDS == chain.HASHED_FIELDS
    content = {name: "x" for name in chain.HASHED_FIELDS} | {"payload": {"é": [1, 2.5, None]}}
    assert verifier.event_hash(content) == chain.event_hash(content)


# --- The export is itself recorded ----------------------------------------------------------


def test_each_export_is_recorded_with_its_manifest_and_file_sha256(trail, compliance):
    export = audit_export(actor=compliance, filters=ExportFilters(model="sepsis-ews"), fmt="jsonl")
    data = b"".join(export)
    event = AuditEvent.objects.get(action="audit.export")
    assert export.event == event and event.actor_label == compliance.username
    assert event.payload["file_sha256"] == hashlib.sha256(data).hexdigest()
    assert event.payload["sha256"] == lines(data)[-1]["sha256"]
    assert event.payload["rows"] == 4 and event.payload["links"] == 4
    assert event.payload["filters"]["model"] == "sepsis-ews" and event.payload["completed"]
    assert event.seq > 8 and b'"audit.export"' not in data  # after the file's fixed range


def test_a_download_cut_short_is_recorded_as_aborted(trail, compliance):
    export = audit_export(actor=compliance, filters=ExportFilters(), fmt="jsonl")
    next(iter(export))
    export.close()
    event = AuditEvent.objects.get(action="audit.export")
    assert event.payload["completed"] is False and "Aborted" in event.summary


def test_a_role_without_the_export_permission_cannot_export(trail, ml_engineer):
    with pytest.raises(PermissionDenied):
        audit_export(actor=ml_engineer, filters=ExportFilters(), fmt="jsonl")
    assert not AuditEvent.objects.filter(action="audit.export").exists()


# --- CSV and PDF ----------------------------------------------------------------------------


def test_csv_holds_the_filtered_events_then_a_manifest_row(trail):
    data = export_bytes(fmt="csv", model="sepsis-ews")
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [int(r["seq"]) for r in rows[:-1]] == trail["sepsis-ews"]
    assert rows[-1]["record"] == "manifest"
    manifest = json.loads(rows[-1]["payload"])
    body = data[: data.rindex(b"manifest,")]
    assert manifest["rows"] == 4 and manifest["sha256"] == hashlib.sha256(body).hexdigest()


def test_csv_cells_cannot_become_spreadsheet_formulas(trail):
    rows = list(csv.DictReader(io.StringIO(export_bytes(fmt="csv", actor="mallory").decode())))
    assert rows[0]["summary"] == "Failed login for =HYPERLINK(x)"  # not at the start: kept
    data = export_bytes(fmt="csv")
    assert b",=" not in data


def test_pdf_is_a_pdf_and_its_sha256_is_recorded(trail, compliance):
    data = export_bytes(by=compliance, fmt="pdf", model="sepsis-ews")
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    event = AuditEvent.objects.get(action="audit.export")
    assert event.payload["format"] == "pdf" and event.payload["rows"] == 4
    assert event.payload["file_sha256"] == hashlib.sha256(data).hexdigest()


# --- The page -------------------------------------------------------------------------------


def test_the_page_offers_the_filters_with_stable_ids(client_for, trail):
    ClinicalModelFactory(slug="sepsis-ews", name="Sepsis early warning")
    response = client_for("compliance_officer").get(URL + "?action=release.sign")
    html = response.content.decode()
    assert response.status_code == 200
    for element in ("audit-export-form", "export-model", "export-date_from", "export-date_to",
                    "export-actor", "export-action", "export-format", "export-download",
                    "recent-exports"):  # fmt: skip
        assert f'id="{element}"' in html
    assert 'value="sepsis-ews"' in html and 'value="release.sign"' in html


def test_the_trail_page_links_its_filters_to_the_export(client_for, trail):
    html = client_for("compliance_officer").get("/audit/?action=release.sign").content.decode()
    assert 'id="export-trail" href="/audit/export/?action=release.sign"' in html
    viewer_html = client_for("viewer").get("/audit/").content.decode()
    assert 'id="export-trail"' not in viewer_html


def test_the_page_streams_a_verifiable_download_and_records_it(client_for, trail, tmp_path):
    ClinicalModelFactory(slug="sepsis-ews")
    form = {"model": "sepsis-ews", "format": "jsonl"}
    response = client_for("compliance_officer").post(URL, form)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert 'attachment; filename="vigil-audit-sepsis-ews-' in response["Content-Disposition"]
    data = b"".join(response.streaming_content)
    response.close()
    assert verify(tmp_path, data).returncode == 0
    event = AuditEvent.objects.get(action="audit.export")
    assert event.payload["file_sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"model": "no-such-model", "format": "jsonl"}, "Select a valid choice"),
        ({"format": "xlsx"}, "Select a valid choice"),
        ({"format": "csv", "date_from": "2026-05-02", "date_to": "2026-05-01"},
         "The end date is before the start date."),
        ({"format": "csv", "date_from": "yesterday"}, "Enter a valid date."),
    ],
)  # fmt: skip
def test_bad_export_input_is_a_400_with_a_message(client_for, trail, form, message):
    response = client_for("compliance_officer").post(URL, form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not AuditEvent.objects.filter(action="audit.export").exists()


@pytest.mark.parametrize("role", ["ml_engineer", "viewer", "reviewer", "medical_director"])
def test_roles_without_the_export_permission_get_403(client_for, role):
    client = client_for(role)
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"format": "jsonl"}).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in():
    response = Client().get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- The command ----------------------------------------------------------------------------


def test_the_command_writes_a_verifiable_file_and_records_it(trail, tmp_path, capsys):
    out = tmp_path / "sepsis.jsonl"
    call_command("export_audit", str(out), "--model", "sepsis-ews")
    stdout = capsys.readouterr().out
    data = out.read_bytes()
    assert hashlib.sha256(data).hexdigest() in stdout and "4 events" in stdout
    assert not (tmp_path / "sepsis.jsonl.partial").exists()
    done = subprocess.run([sys.executable, "-I", "-S", str(VERIFIER), str(out)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert AuditEvent.objects.get(action="audit.export").actor_label == "system"


def test_the_command_writes_csv_and_pdf(trail, tmp_path):
    call_command("export_audit", str(tmp_path / "a.csv"), "--format=csv", "--since=2000-01-01")
    call_command("export_audit", str(tmp_path / "a.pdf"), "--format", "pdf")
    assert (tmp_path / "a.csv").read_text().startswith("record,seq,occurred_at")
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF-")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope"], "no model 'nope' was ever registered"),
        (["--since", "last week"], "is not a date"),
        (["--since", "2026-01-01T00:00:00"], "needs a UTC offset"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "must be after its start"),
        (["--exported-by", "test-ml_engineer"], "does not allow exporting"),
        (["--exported-by", "ghost"], "no active user 'ghost'"),
    ],
)
def test_the_command_rejects_bad_input_clearly(trail, ml_engineer, tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("export_audit", str(tmp_path / "x.jsonl"), *args)
    assert not (tmp_path / "x.jsonl").exists()
