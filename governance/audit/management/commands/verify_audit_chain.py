from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from governance.audit.selectors import verify_stored_chain


class Command(BaseCommand):
    help = "Recompute the audit hash chain; exit non-zero naming the first broken event."

    def handle(self, *args: Any, **options: Any) -> None:
        verdict = verify_stored_chain()
        if not verdict.ok:
            raise CommandError(
                f"audit chain BROKEN at event #{verdict.broken_seq}: {verdict.reason} "
                f"({verdict.count} events verified before it)"
            )
        self.stdout.write(f"audit chain OK: {verdict.count} events, head {verdict.last_hash}")
