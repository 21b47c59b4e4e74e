"""Reading and verifying the stored chain."""

from __future__ import annotations

from collections.abc import Iterator

from governance.audit import chain
from governance.audit.models import AuditEvent, ChainHead


def _links() -> Iterator[chain.Link]:
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        yield chain.Link(content=event.content(), stored_hash=event.hash)


def verify_stored_chain() -> chain.Verdict:
    head = ChainHead.objects.filter(id=1).first()
    return chain.verify(
        _links(),
        expected_count=head.seq if head else 0,
        expected_head=head.hash if head else chain.GENESIS_HASH,
    )
