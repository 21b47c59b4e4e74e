"""A broken audit chain as a red governance-layer alert (``governance.audit.signals``).

The audit trail imports no other app, so the scheduled verification only says what it found;
this turns ``chain_broken`` into a ``governance.findings.Finding`` of kind
``audit_chain_broken`` and hands it to ``incidents.governance_alerts.on_checked``, the path every
governance finding takes (deduplicated alert, the model's governance incident, routed by the
RACI to compliance, never a freeze). ``chain_verified`` resolves it.

The chain belongs to no model, but an alert and an incident belong to one. A break puts in doubt
the record of every model that is treating patients, so each model with a live deployment gets
the alert (its own governance incident, its own RACI routing and its own packet shows it). With
nothing live, the earliest registered model with a version carries it, so the break is never
left without an alert; with no model at all there is nothing to attach it to, and the CRITICAL
log line of the verification task stands alone.
"""

from __future__ import annotations

import logging
from typing import Any

from governance.findings import Finding
from incidents.alerts import fingerprint
from incidents.governance_alerts import SLICE, on_checked
from incidents.models import Alert, AlertStatus
from registry.models import ClinicalModel, Deployment

log = logging.getLogger(__name__)

KIND = "audit_chain_broken"
KEY = "chain"
RESPONSE = (
    "Treat the audit trail as possibly altered: re-run the verification from the audit trail "
    "page, compare the event named with the last verified export or database backup, preserve "
    "the database and its logs, and find who had SQL access since the last intact verification. "
    "Restore or annotate the record, and keep the incident open until the chain verifies."
)
IMPACT = (
    "The evidence of what the model decided and who approved it can no longer be shown to be "
    "untouched until the break is explained."
)


def models_to_alert() -> list[ClinicalModel]:
    live = Deployment.objects.filter(ended_at__isnull=True).values("model_id")
    models = list(ClinicalModel.objects.filter(pk__in=live).order_by("pk"))
    if models:
        return models
    first = ClinicalModel.objects.filter(versions__isnull=False).order_by("pk").first()
    return [first] if first else []


def on_chain_broken(sender: Any, *, verification: Any, **_: Any) -> None:
    summary = (
        f"Audit chain broken at event #{verification.broken_seq}: {verification.reason}"
    )[:300]
    details = {
        "broken_seq": verification.broken_seq,
        "verified_events": verification.event_count,
        "verification": verification.pk,
    }
    findings = [
        Finding(kind=KIND, model_id=m.pk, summary=summary, key=KEY, band="red", details=details)
        for m in models_to_alert()
    ]
    if not findings:
        log.critical("audit chain broken, but no model is registered to carry the alert")
        return
    on_checked(sender, kinds=[KIND], findings=findings)
    _explain(findings)


def on_chain_verified(sender: Any, *, verification: Any, **_: Any) -> None:
    on_checked(sender, kinds=[KIND], findings=[])


def _explain(findings: list[Finding]) -> None:
    """The generic governance text speaks of releases and signatures; say what to do here."""
    fps = [fingerprint(f.model_id, SLICE, f"{KIND}:{KEY}") for f in findings]
    for alert in Alert.objects.filter(fingerprint__in=fps, status=AlertStatus.OPEN):
        alert.payload = {**alert.payload, "recommended_response": RESPONSE,
                         "clinical_impact": IMPACT}  # fmt: skip
        alert.save(update_fields=["payload"])
