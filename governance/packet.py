"""The per-model audit packet: the chain of evidence for one model, for an inspector.

``assemble(model)`` reads, never writes, and returns JSON-ready data: the model card, every
version with its lineage, every release with its evidence and signature manifestations, the
deployment history per site, the monitoring bands over time, incidents with their timelines,
impact assessments and reviews, deferral and override statistics, review-meeting minutes, and
a summary of the audit events behind all of it. Aggregates and Vigil's own record ids only:
never a case key, a feature value, a reviewer's note on a case or a deferral reason's text.

``bundle_zip(model)`` packs it with the PDF (``governance.packet_pdf``), the model card's JSON
and Markdown exports, every audit event as JSON Lines (streamed from the database) and a
``manifest.json`` naming each file's sha256. ``packet_download`` is the service behind the
download buttons: it checks the role and records ``audit.packet`` with the sha256s.

Which audit events are the model's (``model_audit_q``): those whose payload names the model
(``payload.model`` is its slug), and those whose ``object_type`` / ``object_id`` is one of the
model's records: the model, its versions, features, cohort columns, deployments, deferral
policies, reference profiles and monitoring policy; its releases and signatures, RACI matrix,
update policy, recommendations, review schedule, meetings and action items; its review cases;
its alerts, suppressions and incidents. Events of other models travel in the full audit export
only (``governance.audit``), which also proves there is no gap; each line here carries its own
hash, so any single event can be checked against the stored chain.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.apps import apps
from django.db import models, transaction
from django.db.models import CharField, Count, Q, QuerySet
from django.db.models.functions import Cast, TruncMonth
from django.utils import timezone

from accounts.permissions import require_perms
from governance.audit.models import AuditEvent
from governance.audit.services import record
from governance.lineage import signature_rows
from governance.models import (
    ActionItem,
    RaciMatrix,
    Recommendation,
    Release,
    ReviewMeeting,
    ReviewSchedule,
    Signature,
    UpdatePolicy,
)
from governance.releases import content_hash
from governance.review_pack import BANDS, bands_since, workflow_in
from monitoring.models import (
    DeferralPolicy,
    MetricResult,
    MonitorPolicy,
    ReferenceProfile,
    ReviewCase,
)
from registry.card_exports import card_json, card_markdown
from registry.cards import build_card, card_to_data
from registry.models import (
    ClinicalModel,
    CohortColumn,
    Deployment,
    FeatureSpec,
    ModelVersion,
)

PACKET_VERSION = 1
EXPORT = "audit.export_auditevent"
VIEW = "audit.view_auditevent"
#: The statistics cover the model's whole life: from before any record can exist.
SINCE = date(2000, 1, 1)
#: The PDF lists this many of the newest audit events (the bundle's JSON Lines has them all).
PDF_AUDIT_LIMIT = 500
AUDIT_FILE = "audit-events.jsonl"
#: The packet's sections, in order: (key, title). The PDF and the page use these titles.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("card", "Model card"),
    ("versions", "Versions and their lineage"),
    ("releases", "Releases, evidence and signatures"),
    ("deployments", "Deployment history per site"),
    ("monitoring", "Monitoring summary: bands over time"),
    ("incidents", "Incidents, impact assessments and reviews"),
    ("workflow", "Deferral and override statistics"),
    ("review_meetings", "Review meetings and minutes"),
    ("audit", "Audit events"),
)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


# --- which audit events are the model's -----------------------------------------------------------


def _ids(rows: QuerySet[Any]) -> QuerySet[Any]:
    """The rows' primary keys as text, as a subquery (``AuditEvent.object_id`` is text)."""
    return rows.order_by().annotate(_sid=Cast("pk", CharField())).values("_sid")


def _of(model_class: type[models.Model], rows: QuerySet[Any]) -> Q:
    return Q(object_type=model_class._meta.label_lower, object_id__in=_ids(rows))


def model_audit_q(model: ClinicalModel) -> Q:
    """The rule in the module note, as one filter."""
    incident = apps.get_model("incidents", "Incident")
    alert = apps.get_model("incidents", "Alert")
    suppression = apps.get_model("incidents", "Suppression")
    versions = ModelVersion.objects.filter(model=model)
    q = Q(payload__model=model.slug) | Q(
        object_type=ClinicalModel._meta.label_lower, object_id=str(model.pk)
    )
    for model_class, rows in (
        (ModelVersion, versions),
        (FeatureSpec, FeatureSpec.objects.filter(version__model=model)),
        (CohortColumn, CohortColumn.objects.filter(version__model=model)),
        (Deployment, Deployment.objects.filter(model=model)),
        (DeferralPolicy, DeferralPolicy.objects.filter(version__model=model)),
        (ReferenceProfile, ReferenceProfile.objects.filter(version__model=model)),
        (MonitorPolicy, MonitorPolicy.objects.filter(model=model)),
        (Release, Release.objects.filter(model=model)),
        (Signature, Signature.objects.filter(release__model=model)),
        (RaciMatrix, RaciMatrix.objects.filter(model=model)),
        (UpdatePolicy, UpdatePolicy.objects.filter(model=model)),
        (Recommendation, Recommendation.objects.filter(model=model)),
        (ReviewSchedule, ReviewSchedule.objects.filter(model=model)),
        (ReviewMeeting, ReviewMeeting.objects.filter(model=model)),
        (ActionItem, ActionItem.objects.filter(model=model)),
        (ReviewCase, ReviewCase.objects.filter(model=model)),
        (incident, incident.objects.filter(model=model)),
        (alert, alert.objects.filter(model=model)),
        (suppression, suppression.objects.filter(model=model)),
    ):
        q |= _of(model_class, rows)
    return q


def model_audit_events(model: ClinicalModel) -> QuerySet[AuditEvent]:
    """The model's audit events, in chain order."""
    return AuditEvent.objects.filter(model_audit_q(model)).order_by("seq")


def audit_line(event: AuditEvent) -> dict[str, Any]:
    """One event as its hashed content plus its hash (``chain.event_hash(content) == hash``)."""
    return {**event.content(), "hash": event.hash}


# --- versions -------------------------------------------------------------------------------------


def _status_history(version: ModelVersion) -> list[dict[str, Any]]:
    """Each change of the version's status, oldest first, with who and why."""
    out: list[dict[str, Any]] = []
    rows = ModelVersion.history.filter(id=version.pk).select_related("history_user")
    for row in rows.order_by("history_date", "history_id"):
        if out and out[-1]["status"] == row.status:
            continue
        out.append(
            {
                "at": _iso(row.history_date),
                "status": row.status,
                "by": _username(row.history_user) or "system",
                "reason": row.history_change_reason or "",
            }
        )
    return out


def _policy_row(policy: DeferralPolicy) -> dict[str, Any]:
    return {
        "number": policy.number,
        "min_confidence": policy.min_confidence,
        "threshold_margin": policy.threshold_margin,
        "population_exclusions": policy.population_exclusions,
        "safety_rules": policy.safety_rules,
        "reason": policy.reason,
        "created_at": _iso(policy.created_at),
        "created_by": _username(policy.created_by) or "system",
    }


def _version_row(v: ModelVersion) -> dict[str, Any]:
    validation = v.validation_results if isinstance(v.validation_results, dict) else {}
    return {
        "id": v.pk,
        "version": v.version,
        "status": v.status,
        "created_at": _iso(v.created_at),
        "created_by": _username(v.created_by),
        "artifact_uri": v.artifact_uri,
        "artifact_sha256": v.artifact_sha256,
        "code_ref": v.code_ref,
        "training_data_source": v.training_data_source,
        "training_window": [_iso(v.training_window_start), _iso(v.training_window_end)],
        "training_set_size": v.training_set_size,
        "label_definition": v.label_definition,
        "parameters": v.parameters,
        "decision_thresholds": v.decision_thresholds,
        "validation_overall": validation.get("overall", {}),
        "features": [
            {"name": f.name, "dtype": f.dtype, "unit": f.unit, "required": f.required}
            for f in v.features.all()
        ],
        "cohorts": [c.name for c in v.cohorts.all()],
        "status_history": _status_history(v),
        "deferral_policies": [_policy_row(p) for p in v.deferral_policies.order_by("number")],
        "reference_profiles": [
            {
                "number": r.number,
                "file_name": r.file_name,
                "file_sha256": r.file_sha256,
                "row_count": r.row_count,
                "labelled_count": r.labelled_count,
                "created_at": _iso(r.created_at),
            }
            for r in v.reference_profiles.order_by("number").only(
                "number", "file_name", "file_sha256", "row_count", "labelled_count", "created_at"
            )
        ],
        "releases": [r.number for r in v.releases.order_by("pk")],
        "deployments": list(v.deployments.order_by("pk").values_list("pk", flat=True)),
    }


def versions_of(model: ClinicalModel) -> list[dict[str, Any]]:
    rows = model.versions.select_related("created_by").order_by("created_at", "pk")
    return [_version_row(v) for v in rows]


# --- releases -------------------------------------------------------------------------------------


def _release_row(r: Release) -> dict[str, Any]:
    current = content_hash(r)
    return {
        "id": r.pk,
        "number": r.number,
        "kind": r.kind,
        "status": r.status,
        "title": r.title,
        "rationale": r.rationale,
        "author": _username(r.author),
        "version": r.version.version if r.version else None,
        "sites": sorted(s.code for s in r.sites.all()),
        "score_mapping": r.score_mapping or {},
        "thresholds": r.thresholds,
        "deferral_policy_number": r.deferral_policy_number,
        "restores": r.restores or {},
        "origin": r.origin or {},
        "evidence": r.evidence or {},
        "files": [
            {"name": f.name, "kind": f.kind, "size": f.size, "sha256": f.sha256}
            for f in r.files.order_by("pk").only("name", "kind", "size", "sha256")
        ],
        "created_at": _iso(r.created_at),
        "submitted_at": _iso(r.submitted_at),
        "approved_at": _iso(r.approved_at),
        "deployed_at": _iso(r.deployed_at),
        "closed_at": _iso(r.closed_at),
        "closed_reason": r.closed_reason,
        "deployments": list(r.deployments.order_by("pk").values_list("pk", flat=True)),
        "content_sha256": r.content_sha256,
        "content_sha256_now": current,
        "content_intact": not r.content_sha256 or r.content_sha256 == current,
        "signatures": signature_rows(r),
    }


def releases_of(model: ClinicalModel) -> list[dict[str, Any]]:
    rows = Release.objects.filter(model=model).select_related("model", "version", "author")
    return [_release_row(r) for r in rows.order_by("created_at", "pk")]


# --- deployments ----------------------------------------------------------------------------------


def _freezes(deployment: Deployment) -> list[dict[str, Any]]:
    """Each time the kill switch changed on the deployment, oldest first."""
    out: list[dict[str, Any]] = []
    previous = False
    rows = Deployment.history.filter(id=deployment.pk).select_related("history_user")
    for row in rows.order_by("history_date", "history_id"):
        if bool(row.frozen) != previous:
            out.append(
                {
                    "at": _iso(row.history_date),
                    "frozen": bool(row.frozen),
                    "reason": row.frozen_reason or row.history_change_reason or "",
                    "by": _username(row.history_user) or "system",
                }
            )
            previous = bool(row.frozen)
    return out


def _deployment_row(d: Deployment, release: Release | None) -> dict[str, Any]:
    return {
        "id": d.pk,
        "version": d.version.version,
        "mode": d.mode,
        "started_at": _iso(d.started_at),
        "started_by": _username(d.started_by),
        "reason": d.reason,
        "ended_at": _iso(d.ended_at),
        "ended_by": _username(d.ended_by),
        "end_reason": d.end_reason,
        "frozen": d.frozen,
        "score_mapping": d.score_mapping or {},
        "thresholds": d.thresholds,
        "deferral_policy_number": d.deferral_policy_number,
        "release": release.number if release is not None else None,
        "freezes": _freezes(d),
    }


def deployments_by_site(model: ClinicalModel) -> dict[str, list[dict[str, Any]]]:
    """Every deployment of the model per site code, newest first, with the release behind it
    (``None``: started outside the signed-release workflow)."""
    by_deployment: dict[int, Release] = {}
    for release in Release.objects.filter(model=model).prefetch_related("deployments"):
        for d in release.deployments.all():
            by_deployment.setdefault(d.pk, release)
    rows = Deployment.objects.filter(model=model).select_related(
        "version", "site", "started_by", "ended_by"
    )
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in rows.order_by("site__code", "-started_at", "-pk"):
        out[d.site.code].append(_deployment_row(d, by_deployment.get(d.pk)))
    return dict(out)


# --- monitoring -----------------------------------------------------------------------------------


def bands_by_month(model: ClinicalModel) -> list[dict[str, Any]]:
    """Per month (of the window's end) and layer: how many results fell in each band."""
    rows = (
        MetricResult.objects.filter(model=model)
        .annotate(month=TruncMonth("window_end"))
        .values("month", "layer", "band")
        .annotate(n=Count("pk"))
        .order_by("month", "layer")
    )
    grouped: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        key = (row["month"].strftime("%Y-%m"), row["layer"])
        grouped.setdefault(key, dict.fromkeys(BANDS, 0))[row["band"]] = row["n"]
    return [{"month": m, "layer": layer, "bands": b} for (m, layer), b in grouped.items()]


def monitoring_of(model: ClinicalModel, today: date) -> dict[str, Any]:
    return {"by_month": bands_by_month(model), **bands_since(model, SINCE, today)}


# --- incidents ------------------------------------------------------------------------------------


def _timeline(incident: Any) -> list[dict[str, Any]]:
    return [
        {"at": _iso(t.at), "by": _username(t.actor) or "system", "kind": t.kind, "text": t.text}
        for t in incident.timeline.select_related("actor").order_by("at", "pk")
    ]


def _checks(incident: Any) -> list[dict[str, Any]]:
    return [
        {
            "step": c.step,
            "title": c.step_title,
            "evidence": c.evidence,
            "by": _username(c.checked_by),
            "at": _iso(c.checked_at),
        }
        for c in incident.checks.select_related("checked_by").order_by("step")
    ]


def _incident_row(i: Any) -> dict[str, Any]:
    stamps = ("triggered", "acknowledged", "investigating", "mitigated", "resolved", "closed",
              "cancelled", "merged")  # fmt: skip
    return {
        "number": i.number,
        "title": i.title,
        "site": i.site.code if i.site else None,
        "slice": i.slice_key,
        "severity": i.severity,
        "band": i.band,
        "layer": i.layer,
        "status": i.status,
        "is_drill": i.is_drill,
        "commander": _username(i.commander),
        **{f"{s}_at": _iso(getattr(i, f"{s}_at")) for s in stamps},
        "first_harmful_day": _iso(i.first_harmful_day),
        "remedy": i.remedy,
        "alerts": i.alert_count,
        "impact": i.impact or {},
        "review": i.review or {},
        "runbook_checks": _checks(i),
        "timeline": _timeline(i),
    }


def incidents_of(model: ClinicalModel) -> dict[str, Any]:
    incident = apps.get_model("incidents", "Incident")
    rows = (
        incident.objects.filter(model=model)
        .select_related("site", "commander")
        .annotate(alert_count=Count("alerts"))
        .order_by("triggered_at", "pk")
    )
    items = [_incident_row(i) for i in rows]
    real = [i for i in items if not i["is_drill"]]
    return {
        "count": len(real),
        "drills": len(items) - len(real),
        "with_impact_assessment": sum(1 for i in real if i["impact"]),
        "with_review": sum(1 for i in real if i["review"]),
        "items": items,
    }


# --- review meetings ------------------------------------------------------------------------------


def _action_row(a: ActionItem) -> dict[str, Any]:
    return {
        "id": a.pk,
        "text": a.text,
        "owner": _username(a.owner),
        "due": _iso(a.due),
        "status": a.status,
        "closed_at": _iso(a.closed_at),
        "closed_note": a.closed_note,
    }


def review_meetings_of(model: ClinicalModel) -> list[dict[str, Any]]:
    rows = (
        ReviewMeeting.objects.filter(model=model)
        .select_related("recorded_by")
        .prefetch_related("actions__owner")
        .order_by("scheduled_for", "pk")
    )
    return [
        {
            "id": m.pk,
            "scheduled_for": _iso(m.scheduled_for),
            "period_start": _iso(m.period_start),
            "held_at": _iso(m.held_at),
            "attendees": m.attendees,
            "minutes": m.minutes,
            "decisions": m.decisions,
            "recorded_by": _username(m.recorded_by),
            "actions": [_action_row(a) for a in m.actions.all()],
        }
        for m in rows
    ]


# --- the packet -----------------------------------------------------------------------------------


def audit_summary(model: ClinicalModel) -> dict[str, Any]:
    events = model_audit_events(model)
    first, last = events.first(), events.last()
    return {
        "count": events.count(),
        "first_seq": first.seq if first else None,
        "last_seq": last.seq if last else None,
        "last_hash": last.hash if last else None,
        "file": AUDIT_FILE,
        "rule": "payload.model is the model's slug, or object_type/object_id is one of the "
        "model's records (see governance/packet.py)",
    }


def assemble(model: ClinicalModel, *, today: date | None = None) -> dict[str, Any]:
    """The machine-readable packet (see the module note)."""
    today = today or timezone.now().date()
    return {
        "packet_version": PACKET_VERSION,
        "generated_at": timezone.now().isoformat(),
        "model": {
            "slug": model.slug,
            "name": model.name,
            "risk_tier": model.risk_tier,
            "status": model.status,
        },
        "sections": [{"key": k, "title": t} for k, t in SECTIONS],
        "card": card_to_data(build_card(model)),
        "versions": versions_of(model),
        "releases": releases_of(model),
        "deployments": deployments_by_site(model),
        "monitoring": monitoring_of(model, today),
        "incidents": incidents_of(model),
        "workflow": workflow_in(model, SINCE, today),
        "review_meetings": review_meetings_of(model),
        "audit": audit_summary(model),
    }


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n").encode()


def _audit_lines(model: ClinicalModel) -> Iterator[bytes]:
    for event in model_audit_events(model).iterator(chunk_size=2000):
        line = json.dumps(audit_line(event), ensure_ascii=False, sort_keys=True, default=str)
        yield line.encode() + b"\n"


def latest_audit_events(model: ClinicalModel, limit: int = PDF_AUDIT_LIMIT) -> list[AuditEvent]:
    """The newest ``limit`` events of the model, oldest first (for the PDF)."""
    return list(reversed(model_audit_events(model).order_by("-seq")[:limit]))


def packet_pdf(model: ClinicalModel, packet: dict[str, Any]) -> bytes:
    from governance.packet_pdf import render

    return render(packet, latest_audit_events(model))


def bundle_zip(model: ClinicalModel, *, packet: dict[str, Any] | None = None) -> bytes:
    """The bundle: packet.json, packet.pdf, the card's JSON and Markdown, every audit event as
    JSON Lines, and manifest.json with each file's sha256 and size."""
    packet = packet if packet is not None else assemble(model)
    card = build_card(model)
    files: list[dict[str, Any]] = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in (
            ("packet.json", _json_bytes(packet)),
            ("packet.pdf", packet_pdf(model, packet)),
            ("model-card.json", card_json(card).encode()),
            ("model-card.md", card_markdown(card).encode()),
        ):
            archive.writestr(name, data)
            files.append({"name": name, "sha256": hashlib.sha256(data).hexdigest(),
                          "size": len(data)})  # fmt: skip
        digest, size = hashlib.sha256(), 0
        with archive.open(AUDIT_FILE, "w") as out:  # streamed: flat memory per event
            for line in _audit_lines(model):
                out.write(line)
                digest.update(line)
                size += len(line)
        files.append({"name": AUDIT_FILE, "sha256": digest.hexdigest(), "size": size})
        manifest = {
            "packet_version": PACKET_VERSION,
            "model": model.slug,
            "generated_at": packet["generated_at"],
            "audit_events": packet["audit"]["count"],
            "files": files,
        }
        archive.writestr("manifest.json", _json_bytes(manifest))
    return buffer.getvalue()


# --- the download ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PacketFile:
    name: str
    content_type: str
    data: bytes
    sha256: str
    #: name -> sha256 of each file inside a bundle (empty for the PDF alone)
    contents: dict[str, str]


def _contents(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    return {f["name"]: f["sha256"] for f in manifest["files"]}


def packet_download(*, actor: Any, model: ClinicalModel, kind: str) -> PacketFile:
    """Build the PDF (``kind="pdf"``) or the bundle (``"zip"``) and record ``audit.packet``
    with its sha256 (and, for the bundle, each file's)."""
    require_perms(actor, EXPORT)
    if kind not in ("pdf", "zip"):
        raise ValueError(f"Unknown packet format {kind!r}: use pdf or zip.")
    packet = assemble(model)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    if kind == "pdf":
        data, content_type, contents = packet_pdf(model, packet), "application/pdf", {}
    else:
        data = bundle_zip(model, packet=packet)
        content_type, contents = "application/zip", _contents(data)
    name = f"audit-packet-{model.slug}-{stamp}.{kind}"
    sha256 = hashlib.sha256(data).hexdigest()
    with transaction.atomic():
        record(
            actor=actor,
            action="audit.packet",
            target=model,
            summary=f"Audit packet of {model.slug} downloaded ({kind}, "
            f"{packet['audit']['count']} audit events)",
            payload={"model": model.slug, "format": kind, "file": name, "sha256": sha256,
                     "size": len(data), "files": contents,
                     "audit_events": packet["audit"]["count"]},
        )  # fmt: skip
    return PacketFile(name, content_type, data, sha256, contents)
