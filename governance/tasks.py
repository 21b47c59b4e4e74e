"""Celery tasks of governance: thin wrappers around its services."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.utils import timezone

from governance import checks, reviews


@shared_task
def governance_checks() -> dict[str, Any]:
    """Every hour: unsigned or voided live deployments, overdue reviews and actions, incomplete
    model cards, each as a governance-layer alert (resolved when no longer found)."""
    today = timezone.localdate()
    reviews.flag_overdue_actions(today)
    return checks.summary(checks.run(today))


@shared_task
def prepare_reviews() -> int:
    """Every day: plan the meetings due within a week and assemble their packs."""
    return len(reviews.prepare_due_meetings(timezone.localdate()))
