from __future__ import annotations

import logging

from celery import shared_task

from governance.audit.selectors import verify_stored_chain

logger = logging.getLogger(__name__)


@shared_task
def verify_audit_chain() -> dict[str, object]:
    """Scheduled verification. A break is logged at CRITICAL; the governance-alert routing that
    pages compliance arrives with the incidents app."""
    verdict = verify_stored_chain()
    if not verdict.ok:
        logger.critical("audit chain broken at event #%s: %s", verdict.broken_seq, verdict.reason)
    return {"ok": verdict.ok, "count": verdict.count, "broken_seq": verdict.broken_seq}
