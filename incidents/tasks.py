"""Celery tasks of the incidents app: thin wrappers around its services."""

from __future__ import annotations

from celery import shared_task

from incidents.alerts import lift_expired
from incidents.notify import deliver_notifications  # noqa: F401  (registers the task)
from incidents.services import escalate_overdue


@shared_task
def escalate() -> int:
    """Unacknowledged incidents past their deadline escalate (every minute)."""
    return len(escalate_overdue())


@shared_task
def lift_suppressions() -> int:
    return lift_expired()
