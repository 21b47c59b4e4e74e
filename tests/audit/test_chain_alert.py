"""The scheduled chain verification pages compliance the moment the audit chain breaks, and the
alert resolves once the chain verifies again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from governance.audit.models import AuditEvent, ChainVerification
from governance.audit.services import record
from governance.audit.signals import chain_broken, chain_verified
from governance.audit.tasks import verify_audit_chain
from incidents import audit_alerts
from incidents.models import Alert, AlertStatus, Incident
from registry.models import Deployment
from tests.factories import ClinicalModelFactory, ModelVersionFactory
from tests.monitoring.conftest import gate_setup  # noqa: F401

BROKEN_UID = "incidents.audit_alerts.chain_broken"
VERIFIED_UID = "incidents.audit_alerts.chain_verified"


@pytest.fixture(autouse=True)
def receivers() -> Iterator[None]:
    """Connected as ``incidents.apps`` connects them (left alone if that is wired already)."""
    wired = chain_broken.has_listeners(ChainVerification)
    if not wired:
        chain_broken.connect(audit_alerts.on_chain_broken, dispatch_uid=BROKEN_UID)
        chain_verified.connect(audit_alerts.on_chain_verified, dispatch_uid=VERIFIED_UID)
    yield
    if not wired:
        chain_broken.disconnect(dispatch_uid=BROKEN_UID)
        chain_verified.disconnect(dispatch_uid=VERIFIED_UID)


def set_summary(seq: int, summary: str) -> None:
    """Alter a stored event behind the application's back, as an attacker with SQL would."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        else:
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute("UPDATE audit_auditevent SET summary = %s WHERE seq = %s", [summary, seq])


def chain_alerts(**filters: Any) -> list[Alert]:
    return list(Alert.objects.filter(metric__startswith="audit_chain_broken:", **filters))


def test_it_raises_a_red_governance_alert_routed_to_compliance_when_the_chain_breaks(
    gate_setup,  # noqa: F811
):
    victim = AuditEvent.objects.order_by("seq")[1]
    set_summary(victim.seq, "nothing happened")

    result = verify_audit_chain.delay().get()

    assert result["ok"] is False and result["broken_seq"] == victim.seq
    [alert] = chain_alerts(status=AlertStatus.OPEN)
    assert alert.model == gate_setup.version.model
    assert alert.band == "red" and alert.layer == "governance"
    assert alert.routed_role == "compliance_officer"
    assert f"#{victim.seq}" in alert.payload["summary"]
    assert "audit trail" in alert.payload["recommended_response"]
    incident = Incident.objects.get(pk=alert.incident_id)
    assert incident.routed_role == "compliance_officer" and incident.band == "red"
    # A paperwork-and-evidence failure pages people; it never stops a model scoring patients.
    assert not Deployment.objects.filter(frozen=True).exists()


def test_a_repeated_break_updates_the_one_alert(gate_setup):  # noqa: F811
    set_summary(2, "nothing happened")
    verify_audit_chain.delay().get()
    verify_audit_chain.delay().get()
    assert len(chain_alerts()) == 1


def test_the_alert_resolves_once_the_chain_is_repaired(gate_setup):  # noqa: F811
    victim = AuditEvent.objects.order_by("seq")[1]
    set_summary(victim.seq, "nothing happened")
    verify_audit_chain.delay().get()
    assert chain_alerts(status=AlertStatus.OPEN)

    set_summary(victim.seq, victim.summary)  # restored from the last verified export
    result = verify_audit_chain.delay().get()

    assert result["ok"] is True
    [alert] = chain_alerts()
    assert alert.status == AlertStatus.RESOLVED
    assert AuditEvent.objects.filter(action="alert.resolved", object_id=str(alert.pk)).exists()


def test_an_intact_chain_raises_nothing(gate_setup):  # noqa: F811
    assert verify_audit_chain.delay().get()["ok"] is True
    assert chain_alerts() == []


def test_every_model_treating_patients_carries_the_alert(gate_setup):  # noqa: F811
    idle = ModelVersionFactory(model=ClinicalModelFactory(slug="idle-model")).model
    set_summary(2, "nothing happened")
    verify_audit_chain.delay().get()
    assert [a.model for a in chain_alerts()] == [gate_setup.version.model]
    assert idle not in [a.model for a in chain_alerts()]


def test_with_nothing_live_the_first_registered_model_carries_it(db):
    first = ModelVersionFactory(model=ClinicalModelFactory(slug="first-model")).model
    ModelVersionFactory(model=ClinicalModelFactory(slug="second-model"))
    for n in range(3):
        record(actor=None, action="test.append", summary=f"event {n}")
    set_summary(2, "nothing happened")
    verify_audit_chain.delay().get()
    assert [a.model for a in chain_alerts()] == [first]
