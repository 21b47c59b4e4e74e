"""Celery task of retention: a thin wrapper around ``governance.retention.purge_due``."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from governance import retention


@shared_task
def purge_expired() -> dict[str, Any]:
    """Every day: delete the prediction events past retention that no legal hold keeps."""
    return retention.purge_due().payload()
