"""The per-model audit packet: every section, in JSON and in the PDF; the bundle with its
manifest; the audit events behind it (all of them in the bundle, the newest in the PDF); no
patient data; the download recorded; and the page and buttons by role."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile

import pytest
from django.apps import apps
from django.urls import NoReverseMatch, include, path, reverse
from django.utils import timezone

from config import urls as project_urls
from governance import packet, packet_urls, reviews
from governance import urls as governance_urls
from governance.audit import chain
from governance.audit.models import AuditEvent
from governance.audit.services import record
from monitoring.models import DeferralPolicy, MetricResult, Override
from tests.governance.test_lineage import deployed_recalibration, predict

pytestmark = pytest.mark.django_db

# Until the project's URLconf includes the packet routes, the tests mount them beside it.
urlpatterns = [
    path(
        "governance/",
        include(([*governance_urls.urlpatterns, *packet_urls.urlpatterns], "governance")),
    ),
    *project_urls.urlpatterns,
]

TITLES = [title for _, title in packet.SECTIONS]


@pytest.fixture(autouse=True)
def mounted(settings):
    try:
        reverse("governance:packet-model", args=["x"])
    except NoReverseMatch:
        settings.ROOT_URLCONF = __name__


@pytest.fixture
def history(gate_setup, user_for, director):
    """A model with a signed recalibration, predictions (one deferred, one overridden), a
    metric result, an incident with a timeline, and a held review meeting."""
    from datetime import date

    model = gate_setup.version.model
    DeferralPolicy.objects.create(
        version=gate_setup.version, number=1, min_confidence=0.5, reason="confidence floor"
    )
    release = deployed_recalibration(gate_setup, user_for, thresholds={"alert": 0.7})
    acted = predict(gate_setup, score=0.2)
    predict(gate_setup, score=0.7, confidence=0.1)  # deferred: low confidence
    Override.objects.create(
        event=acted, clinician_role="nurse", reason_code="clinical_judgement",
        final_action="escalated", occurred_at=timezone.now(), submitted_by=director,
    )  # fmt: skip
    MetricResult.objects.create(
        model=model, version=gate_setup.version, site=gate_setup.site, slice_key="all",
        layer="prediction_quality", metric="calibration_slope", window_days=30,
        window_start=date(2024, 1, 1), window_end=date(2024, 1, 30), value=0.7, low=0.6,
        high=0.8, n=400, baseline=1.0, band="red", clears_threshold=True,
    )  # fmt: skip
    incident_model = apps.get_model("incidents", "Incident")
    incident = incident_model.objects.create(
        number=41, model=model, site=gate_setup.site, slice_key="site=NORTH",
        title="Calibration slope red at NORTH", severity="SEV2", band="red",
        layer="prediction_quality", routed_role="ml_engineer", ack_deadline=timezone.now(),
        impact={"patients_affected_estimate": 12, "harm": "none found"},
        review={"corrective_actions": [{"text": "recalibrate", "owner": "ml"}]},
    )  # fmt: skip
    incident.timeline.create(kind="triggered", text="Raised by the calibration monitor")
    record(actor=None, action="incident.triggered", target=incident, summary="INC-41 raised",
           payload={"model": model.slug})  # fmt: skip
    today = timezone.now().date()
    meeting = reviews.review_meeting_plan(actor=director, model=model, scheduled_for=today)
    reviews.review_minutes_record(
        actor=director, meeting=meeting, attendees="Dr A, Dr B",
        minutes="Calibration drift discussed; recalibration approved.",
        decisions=["Keep the model live"], actions=[],
    )  # fmt: skip
    return model, release


def test_it_assembles_every_section(history):
    model, release = history
    data = packet.assemble(model)
    assert [s["title"] for s in data["sections"]] == TITLES
    assert data["card"]["slug"] == model.slug
    (version,) = data["versions"]
    assert version["artifact_sha256"] == "d" * 64
    assert [s["status"] for s in version["status_history"]][:3] == [
        "draft", "candidate", "approved",
    ]  # fmt: skip
    (row,) = data["releases"]
    assert row["number"] == release.number and row["content_intact"] is True
    assert {s["meaning"] for s in row["signatures"]} == {"authorship", "approval"}
    north = data["deployments"]["NORTH"]
    assert [d["release"] for d in north] == [release.number, None]  # newest first
    assert data["monitoring"]["by_month"] == [
        {"month": "2024-01", "layer": "prediction_quality",
         "bands": {"red": 1, "orange": 0, "yellow": 0, "green": 0, "insufficient": 0}},
    ]  # fmt: skip
    (incident,) = data["incidents"]["items"]
    assert incident["impact"]["patients_affected_estimate"] == 12
    assert incident["timeline"][0]["text"] == "Raised by the calibration monitor"
    assert data["workflow"]["predictions"] == 2 and data["workflow"]["deferred"] == 1
    assert data["workflow"]["overridden"] == 1
    (meeting,) = data["review_meetings"]
    assert meeting["minutes"].startswith("Calibration drift") and meeting["attendees"]
    assert data["audit"]["count"] > 5


def test_it_holds_no_patient_data(history, gate_setup):
    model, _ = history
    text = json.dumps(packet.assemble(model))
    assert "case-0001" not in text and "case_key" not in text
    assert '"heart_rate": 112' not in text and "112" not in text


def test_the_audit_rule_finds_the_models_events_and_no_others(history):
    from tests.factories import ClinicalModelFactory, ModelVersionFactory

    model, release = history
    other = ModelVersionFactory(model=ClinicalModelFactory(slug="readmit-30d"))
    record(actor=None, action="test.other", target=other.model, summary="other model",
           payload={"model": other.model.slug})  # fmt: skip
    events = packet.model_audit_events(model)
    actions = set(events.values_list("action", flat=True))
    assert {"release.deployed", "signature.sign", "incident.triggered"} <= actions
    assert "test.other" not in actions
    types = set(events.values_list("object_type", flat=True))
    assert {"registry.modelversion", "registry.deployment", "governance.release"} <= types


def test_the_pdf_opens_with_every_section(history):
    model, _ = history
    data = packet.assemble(model)
    pdf = packet.packet_pdf(model, data)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    text = pdf_text(pdf)
    for number, title in enumerate(TITLES, 1):
        assert f"{number}. {title}" in text, title
    assert "INC-41" in text and "Dr A, Dr B" in text


def test_the_pdf_lists_the_newest_audit_events_and_the_count(history):
    model, _ = history
    data = packet.assemble(model)
    events = packet.latest_audit_events(model, limit=3)
    from governance.packet_pdf import render

    pdf = render(data, events)
    text = pdf_text(pdf)
    assert f"{data['audit']['count']} audit events" in text
    assert "The newest 3 are listed here" in text
    newest = packet.model_audit_events(model).order_by("-seq")
    assert all(e.hash[:16] in text for e in newest[:3])
    assert newest[3].hash[:16] not in text


def test_the_bundle_has_its_files_and_a_true_manifest(history):
    model, _ = history
    blob = packet.bundle_zip(model)
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        names = set(archive.namelist())
        assert names == {"packet.json", "packet.pdf", "model-card.json", "model-card.md",
                         "audit-events.jsonl", "manifest.json"}  # fmt: skip
        manifest = json.loads(archive.read("manifest.json"))
        for entry in manifest["files"]:
            data = archive.read(entry["name"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["name"]
            assert len(data) == entry["size"]
        lines = archive.read("audit-events.jsonl").decode().splitlines()
        bundle = json.loads(archive.read("packet.json"))
    assert len(lines) == manifest["audit_events"] == bundle["audit"]["count"]
    stored = {e.seq: e.hash for e in AuditEvent.objects.all()}
    for line in map(json.loads, lines):
        content = {k: v for k, v in line.items() if k != "hash"}
        assert chain.event_hash(content) == line["hash"] == stored[line["seq"]]
    assert [json.loads(x)["seq"] for x in lines] == sorted(json.loads(x)["seq"] for x in lines)


def test_downloading_is_recorded_with_the_sha256s(history, compliance):
    model, _ = history
    made = packet.packet_download(actor=compliance, model=model, kind="zip")
    event = AuditEvent.objects.filter(action="audit.packet").get()
    assert event.actor == compliance and event.payload["model"] == model.slug
    assert event.payload["sha256"] == hashlib.sha256(made.data).hexdigest() == made.sha256
    assert set(event.payload["files"]) >= {"packet.pdf", "packet.json", "audit-events.jsonl"}
    pdf = packet.packet_download(actor=compliance, model=model, kind="pdf")
    assert pdf.content_type == "application/pdf" and pdf.name.endswith(".pdf")


def test_only_compliance_may_download(history, user_for):
    from django.core.exceptions import PermissionDenied

    model, _ = history
    for role in ("medical_director", "ml_engineer", "viewer"):
        with pytest.raises(PermissionDenied):
            packet.packet_download(actor=user_for(role), model=model, kind="pdf")
    assert not AuditEvent.objects.filter(action="audit.packet").exists()


@pytest.mark.parametrize(
    ("role", "page", "download"),
    [
        ("compliance_officer", 200, 200),
        ("medical_director", 200, 403),
        ("ml_engineer", 403, 403),
        ("viewer", 403, 403),
        ("reviewer", 403, 403),
    ],
)
def test_the_page_and_downloads_follow_the_roles(history, client_for, role, page, download):
    model, _ = history
    client = client_for(role)
    assert client.get(f"/governance/models/{model.slug}/packet/").status_code == page
    response = client.post(f"/governance/models/{model.slug}/packet/download/", {"format": "pdf"})
    assert response.status_code == download


def test_the_page_lists_every_section_and_the_buttons(history, client_for):
    model, _ = history
    html = client_for("compliance_officer").get(f"/governance/models/{model.slug}/packet/")
    text = html.content.decode()
    for title in TITLES:
        assert title in text
    assert "Download PDF" in text and "Download bundle (zip)" in text


def test_the_downloads_answer_files(history, client_for):
    model, _ = history
    client = client_for("compliance_officer")
    url = f"/governance/models/{model.slug}/packet/download/"
    pdf = client.post(url, {"format": "pdf"})
    assert pdf["Content-Type"] == "application/pdf"
    assert f'filename="audit-packet-{model.slug}-' in pdf["Content-Disposition"]
    assert pdf_text(pdf.content).count(". ") and "9. Audit events" in pdf_text(pdf.content)
    bundle = client.post(url, {"format": "zip"})
    assert bundle["Content-Type"] == "application/zip"
    assert zipfile.is_zipfile(io.BytesIO(bundle.content))
    bad = client.post(url, {"format": "docx"})
    assert bad.status_code == 400 and "pdf or zip" in bad.content.decode()
    assert client.get(url).status_code == 405
    missing = client.get("/governance/models/no-such-model/packet/")
    assert missing.status_code == 404


# --- reading the PDF without a PDF library -------------------------------------------------------

_TEXT = re.compile(rb"\((?P<s>(?:\\.|[^\\)])*)\)\s*Tj")


def pdf_text(pdf: bytes) -> str:
    """The text of an uncompressed reportlab PDF: each ``(...) Tj`` string, unescaped, one per
    line (enough to find a title; reportlab writes one Tj per line of a paragraph)."""
    out = []
    for match in _TEXT.finditer(pdf):
        raw = match.group("s")
        raw = re.sub(rb"\\([()\\])", rb"\1", raw)
        out.append(raw.decode("latin-1"))
    return "\n".join(out)
