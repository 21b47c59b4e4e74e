"""The compliance officer's audit export in Chromium, on the seeded demo: filter the trail, open
the export from it, choose one model, download the JSON Lines file, and the inspector's
stdlib-only verifier accepts it; the export is listed with the file's sha256."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import ROOT, Server, log_in

MODEL = "sepsis-ews"
VERIFIER = ROOT / "tools" / "verify_audit_export.py"


def test_a_compliance_officer_exports_one_models_trail_and_it_verifies(
    page: Any, vigil_server: Server, tmp_path: Path
) -> None:
    log_in(page, "compliance")
    page.goto("/audit/?action=release.approved")
    page.locator("#export-trail").click()
    expect(page.locator("#audit-export-form")).to_be_visible()
    expect(page.locator("#export-action")).to_have_value("release.approved")

    # One model, every action: clear the action the trail was filtered by.
    page.fill("#export-action", "")
    page.select_option("#export-model", MODEL)
    page.select_option("#export-format", "jsonl")
    with page.expect_download() as download_info:
        page.locator("#export-download").click()
    download = download_info.value
    assert download.suggested_filename.startswith(f"vigil-audit-{MODEL}-")
    path = tmp_path / download.suggested_filename
    download.save_as(path)

    done = subprocess.run(
        [sys.executable, "-I", "-S", str(VERIFIER), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"filters: model={MODEL}" in done.stdout

    lines = [json.loads(line) for line in path.read_bytes().splitlines()]
    events = [line for line in lines if line["type"] == "event"]
    assert events and lines[-1]["rows"] == len(events)
    assert any(e["action"] == "release.approved" for e in events)
    others = {"readmit-30d", "noshow-outreach"}
    assert not any(e["payload"].get("model") in others for e in events)

    # The export is in the trail, with the sha256 of exactly the file the browser saved.
    page.goto("/audit/export/")
    row = page.locator("#recent-exports tbody tr").first
    expect(row).to_contain_text("JSONL")
    expect(row.locator("code.sha256")).to_have_text(hashlib.sha256(path.read_bytes()).hexdigest())
