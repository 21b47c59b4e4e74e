from __future__ import annotations

import logging

from celery import shared_task

from governance.audit.models import ChainVerification
from governance.audit.services import chain_verify
from governance.audit.signals import chain_broken, chain_verified

logger = logging.getLogger(__name__)


@shared_task
def verify_audit_chain() -> dict[str, object]:
    """Scheduled verification. A break is logged at CRITICAL and sent as ``chain_broken``
    (incidents raises the red governance alert that pages compliance); an intact chain is sent
    as ``chain_verified`` (the alert resolves). Sent after the verdict is committed."""
    result = chain_verify(actor=None, trigger=ChainVerification.Trigger.SCHEDULE)
    if not result.ok:
        logger.critical("audit chain broken at event #%s: %s", result.broken_seq, result.reason)
        chain_broken.send(sender=ChainVerification, verification=result)
    else:
        chain_verified.send(sender=ChainVerification, verification=result)
    return {"ok": result.ok, "count": result.event_count, "broken_seq": result.broken_seq}
