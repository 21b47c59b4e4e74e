"""Decision lineage: which version, thresholds, deferral policy and signed release produced one
logged prediction.

Everything is read as it stood when the gate judged the event (``received_at``): the event names
its deployment and deferral policy, and a deployment's configuration (score mapping, thresholds,
policy number) is pinned at creation and never overwritten, so a later recalibration is a new
deployment and cannot change an earlier event's answer. Where the deployment pinned no
thresholds the gate used the version's own, read here from the version's history as of the
decision; whether the deployment was frozen is read the same way.

The lineage carries no patient data: never the case key (or its hash) nor a feature value, and
reasons as their codes with fixed labels only (a reason's own text may quote the case's values).
Scores, the action and the reason codes are what the case page shows too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q

from accounts.permissions import has_perms, is_service_account
from governance.audit.models import AuditEvent
from governance.models import Release
from governance.releases import content_hash
from governance.review_pack import DEFERRAL_LABELS
from monitoring.models import DeferralPolicy, PredictionEvent
from monitoring.review import may_review_site
from registry.models import Deployment, ModelVersion

VIEW_AUDIT = "audit.view_auditevent"
VIEW_CASES = "monitoring.view_reviewcase"
#: The audit events shown with a lineage, newest first.
AUDIT_LIMIT = 50


def may_view(user: Any, event: PredictionEvent) -> bool:
    """Who may see an event's lineage: whoever reads the audit trail (medical director,
    compliance), and case viewers for the events of the sites whose cases they may open
    (minimum necessary: a reviewer at NORTH learns nothing about SOUTH's decisions)."""
    if is_service_account(user):
        return False
    if has_perms(user, [VIEW_AUDIT]):
        return True
    return has_perms(user, [VIEW_CASES]) and may_review_site(user, event.site_id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _as_of(history: Any, at: datetime) -> Any:
    """The historical row in force at ``at`` (None when history starts later)."""
    return history.filter(history_date__lte=at).order_by("-history_date", "-history_id").first()


def _version(event: PredictionEvent) -> tuple[dict[str, Any], dict[str, float]]:
    version: ModelVersion = event.version
    then = _as_of(ModelVersion.history.filter(id=version.pk), event.received_at) or version
    thresholds = dict(then.decision_thresholds or {})
    return (
        {
            "id": version.pk,
            "version": version.version,
            "artifact_uri": version.artifact_uri,
            "artifact_sha256": version.artifact_sha256,
            "code_ref": version.code_ref,
            "status_at_decision": then.status,
            "thresholds_at_decision": thresholds,
        },
        thresholds,
    )


def _deployment(event: PredictionEvent) -> dict[str, Any]:
    d: Deployment = event.deployment
    then = _as_of(Deployment.history.filter(id=d.pk), event.received_at) or d
    return {
        "id": d.pk,
        "site": d.site.code,
        "site_name": d.site.name,
        "mode": d.mode,
        "started_at": _iso(d.started_at),
        "started_by": d.started_by.get_username(),
        "reason": d.reason,
        "ended_at": _iso(d.ended_at),
        "frozen_at_decision": bool(then.frozen),
        "frozen_reason_at_decision": then.frozen_reason if then.frozen else "",
        "pinned": {
            "score_mapping": d.score_mapping or {},
            "thresholds": d.thresholds,
            "deferral_policy_number": d.deferral_policy_number,
        },
    }


def _policy(event: PredictionEvent) -> dict[str, Any]:
    """The deferral policy the event was judged by; number 0 is the built-in rules."""
    row = event.policy
    if row is None and event.policy_number:
        row = DeferralPolicy.objects.filter(
            version_id=event.version_id, number=event.policy_number
        ).first()
    if row is None:
        return {"number": event.policy_number, "builtin": True, "rules": None}
    return {
        "number": row.number,
        "builtin": False,
        "reason": row.reason,
        "created_at": _iso(row.created_at),
        "created_by": row.created_by.get_username() if row.created_by else "system",
        "rules": {
            "min_confidence": row.min_confidence,
            "threshold_margin": row.threshold_margin,
            "population_exclusions": row.population_exclusions,
            "safety_rules": row.safety_rules,
        },
    }


def signature_rows(release: Release) -> list[dict[str, Any]]:
    """Every signature manifestation of ``release``: printed name, meaning, time, the hash it
    signed, and whether it still stands (void when voided or when the content changed)."""
    current = content_hash(release)
    rows = []
    for s in release.signatures.select_related("signer").order_by("signed_at", "pk"):
        if s.voided_at is not None:
            state = "void"
        elif s.content_sha256 != current:
            state = "void: content changed since signing"
        else:
            state = "valid"
        rows.append(
            {
                "printed_name": s.printed_name,
                "signer": s.signer.get_username(),
                "role": s.role,
                "meaning": s.meaning,
                "signed_at": _iso(s.signed_at),
                "content_sha256": s.content_sha256,
                "valid": state == "valid",
                "state": state,
                "voided_at": _iso(s.voided_at),
                "void_reason": s.void_reason,
            }
        )
    return rows


def _release(deployment: Deployment) -> dict[str, Any] | None:
    """The release that started the deployment; None: it was started outside a release."""
    release = deployment.releases.select_related("model", "version").order_by("pk").first()
    if release is None:
        return None
    current = content_hash(release)
    return {
        "id": release.pk,
        "number": release.number,
        "kind": release.kind,
        "title": release.title,
        "status": release.status,
        "approved_at": _iso(release.approved_at),
        "deployed_at": _iso(release.deployed_at),
        "content_sha256": release.content_sha256,
        "content_sha256_now": current,
        "content_intact": release.content_sha256 == current,
        "signatures": signature_rows(release),
    }


def _reasons(event: PredictionEvent) -> list[dict[str, str]]:
    codes = [r.get("code", "") for r in event.reasons or () if isinstance(r, dict)]
    return [{"code": c, "label": DEFERRAL_LABELS.get(c, c.replace("_", " "))} for c in codes if c]


def audit_events_about(deployment_id: int, release_id: int | None) -> list[dict[str, Any]]:
    """The audit events about the deployment and the release behind it, newest first."""
    wanted = Q(object_type="registry.deployment", object_id=str(deployment_id))
    if release_id is not None:
        wanted |= Q(object_type="governance.release", object_id=str(release_id))
    rows = AuditEvent.objects.filter(wanted).order_by("-seq")[:AUDIT_LIMIT]
    return [
        {
            "seq": e.seq,
            "occurred_at": _iso(e.occurred_at),
            "actor": e.actor_label,
            "action": e.action,
            "object_type": e.object_type,
            "object_id": e.object_id,
            "summary": e.summary,
            "hash": e.hash,
        }
        for e in rows
    ]


def lineage(event: PredictionEvent) -> dict[str, Any]:
    """The full answer for one event, as JSON-ready data (see the module note)."""
    version, version_thresholds = _version(event)
    deployment = _deployment(event)
    pinned = deployment["pinned"]
    release = _release(event.deployment)
    return {
        "event_id": str(event.event_id),
        "model": {"slug": event.model.slug, "name": event.model.name},
        "site": event.site.code,
        "occurred_at": _iso(event.occurred_at),
        "received_at": _iso(event.received_at),
        "mode": event.mode,
        "decision": {
            "action": event.action,
            "score": event.score,
            "raw_score": event.raw_score,
            "confidence": event.confidence,
            "reasons": _reasons(event),
        },
        "version": version,
        "deployment": deployment,
        "config": {
            "score_mapping": pinned["score_mapping"],
            "thresholds": (
                pinned["thresholds"] if pinned["thresholds"] is not None else version_thresholds
            ),
            "thresholds_source": "deployment" if pinned["thresholds"] is not None else "version",
        },
        "policy": _policy(event),
        "release": release,
        "audit_events": audit_events_about(event.deployment_id, release["id"] if release else None),
    }


def event_for_lineage(event_id: Any) -> PredictionEvent | None:
    return (
        PredictionEvent.objects.select_related(
            "model", "site", "version", "deployment__site", "deployment__started_by", "policy"
        )
        .filter(event_id=event_id)
        .first()
    )
