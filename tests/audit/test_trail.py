"""The stored trail: append-only in the database, verified by the management command."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from governance.audit.models import AuditEvent
from governance.audit.services import IdentifierInPayload, record

pytestmark = pytest.mark.django_db


def append(n: int) -> list[AuditEvent]:
    return [
        record(actor=None, action="test.event", summary=f"event {i}", payload={"i": i})
        for i in range(n)
    ]


def test_it_chains_each_event_to_the_previous_one():
    events = append(3)
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[1].prev_hash == events[0].hash and events[2].prev_hash == events[1].hash


def test_it_refuses_raw_sql_update_and_delete():
    event = append(1)[0]
    for statement in (
        f"UPDATE audit_auditevent SET summary = 'x' WHERE id = {event.pk}",
        f"DELETE FROM audit_auditevent WHERE id = {event.pk}",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement)
    event.refresh_from_db()
    assert event.summary == "event 0"


def test_it_refuses_orm_updates_and_deletes():
    event = append(1)[0]
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).update(summary="x")
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()
    event.summary = "x"
    with pytest.raises(TypeError):
        event.save()


def test_verify_command_passes_on_an_intact_chain(capsys):
    append(4)
    call_command("verify_audit_chain")
    assert "4 events" in capsys.readouterr().out


def test_verify_command_names_the_first_tampered_event():
    events = append(5)
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER audit_event_no_update")
        cursor.execute("UPDATE audit_auditevent SET summary = 'nothing happened' WHERE seq = 3")
    with pytest.raises(CommandError, match=r"#3\b"):
        call_command("verify_audit_chain")
    assert events[2].seq == 3


def test_verify_command_catches_deleted_newest_events():
    append(5)
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER audit_event_no_delete")
        cursor.execute("DELETE FROM audit_auditevent WHERE seq >= 4")
    with pytest.raises(CommandError, match="#4"):
        call_command("verify_audit_chain")


def test_it_refuses_patient_identifiers_in_payloads():
    with pytest.raises(IdentifierInPayload):
        record(actor=None, action="x", summary="x", payload={"context": {"MRN": "123"}})
    assert not AuditEvent.objects.exists()


def test_it_records_actor_name_and_role(ml_engineer):
    event = record(actor=ml_engineer, action="x", summary="y")
    assert event.actor == ml_engineer
    assert event.actor_label == ml_engineer.username
    assert event.actor_role == "ml_engineer"


def test_the_scheduled_task_keeps_its_verdict_and_records_the_check():
    from governance.audit.models import ChainVerification
    from governance.audit.tasks import verify_audit_chain

    append(3)
    result = verify_audit_chain.delay().get()
    assert result == {"ok": True, "count": 3, "broken_seq": None}
    stored = ChainVerification.objects.get()
    assert stored.ok and stored.event_count == 3 and stored.trigger == "schedule"
    assert AuditEvent.objects.order_by("-seq").first().action == "audit.verify"
