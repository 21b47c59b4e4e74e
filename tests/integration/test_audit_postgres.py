"""The audit trail on PostgreSQL: no fork under concurrency, triggers, tamper detection."""

from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction

from governance.audit.models import AuditEvent
from governance.audit.selectors import verify_stored_chain
from governance.audit.services import record

THREADS = 8
EVENTS_PER_THREAD = 25


def _append_from_threads(threads: int, per_thread: int) -> list[BaseException]:
    """Each thread has its own database connection (Django's are per thread); a barrier
    releases them at once so their appends really overlap."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            barrier.wait(timeout=30)
            for n in range(per_thread):
                record(
                    actor=None,
                    action="test.concurrent",
                    summary=f"thread {worker} event {n}",
                    payload={"thread": worker, "n": n},
                )
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=append, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    return errors


def test_it_never_forks_the_chain_under_concurrent_appends(transactional_db: None) -> None:
    before = AuditEvent.objects.count()

    errors = _append_from_threads(THREADS, EVENTS_PER_THREAD)

    assert errors == []
    total = before + THREADS * EVENTS_PER_THREAD
    verdict = verify_stored_chain()
    assert verdict.ok, verdict.reason
    assert verdict.count == total
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, total + 1))
    payloads = AuditEvent.objects.filter(action="test.concurrent").values_list("payload", flat=True)
    assert sorted((p["thread"], p["n"]) for p in payloads) == [
        (t, n) for t in range(THREADS) for n in range(EVENTS_PER_THREAD)
    ]


def test_it_has_the_append_only_trigger_on_postgres(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger "
            "WHERE tgrelid = 'audit_auditevent'::regclass AND NOT tgisinternal"
        )
        names = {row[0] for row in cursor.fetchall()}
    assert "audit_event_append_only" in names


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET summary = 'rewritten' WHERE seq = %s",
        "DELETE FROM audit_auditevent WHERE seq = %s",
    ],
    ids=["update", "delete"],
)
def test_it_refuses_raw_sql_changes_to_audit_rows(db: None, statement: str) -> None:
    event = record(actor=None, action="test.event", summary="kept forever")

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(statement, [event.seq])

    event.refresh_from_db()
    assert event.summary == "kept forever"
    assert verify_stored_chain().ok


def test_it_names_the_tampered_event_when_the_trigger_is_dropped(db: None) -> None:
    # `db` wraps the test in a transaction: PostgreSQL DDL is transactional, so the rollback at
    # the end restores the dropped trigger for the tests that follow.
    events = [record(actor=None, action="test.event", summary=f"event {n}") for n in range(5)]
    call_command("verify_audit_chain")  # whole before tampering
    victim = events[2]

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER audit_event_append_only ON audit_auditevent")
        cursor.execute(
            "UPDATE audit_auditevent SET summary = %s WHERE seq = %s",
            ["nothing happened here", victim.seq],
        )

    with pytest.raises(CommandError, match=rf"#{victim.seq}\b"):
        call_command("verify_audit_chain")


def test_it_verifies_the_chain_in_a_real_celery_worker(
    transactional_db: None, celery_worker: object
) -> None:
    from celery.result import EagerResult

    from governance.audit.tasks import verify_audit_chain

    for n in range(7):
        record(actor=None, action="test.event", summary=f"event {n}")
    expected = AuditEvent.objects.count()

    result = verify_audit_chain.delay()

    assert not isinstance(result, EagerResult), "the task ran in-process, not in the worker"
    outcome = result.get(timeout=60)
    result.forget()
    assert outcome == {"ok": True, "count": expected, "broken_seq": None}
