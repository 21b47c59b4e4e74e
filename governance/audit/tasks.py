from __future__ import annotations

import logging

from celery import shared_task

from governance.audit.models import ChainVerification
from governance.audit.services import chain_verify

logger = logging.getLogger(__name__)


@shared_task
def verify_audit_chain() -> dict[str, object]:
    """Scheduled verification. A break is logged at CRITICAL; the governance alert that pages
    compliance arrives with the incidents app."""
    result = chain_verify(actor=None, trigger=ChainVerification.Trigger.SCHEDULE)
    if not result.ok:
        logger.critical("audit chain broken at event #%s: %s", result.broken_seq, result.reason)
    return {"ok": result.ok, "count": result.event_count, "broken_seq": result.broken_seq}
