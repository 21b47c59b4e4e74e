"""``manage.py governance_checks``: run the governance checks now (what beat runs hourly)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from governance import checks, reviews


class Command(BaseCommand):
    help = (
        "Check that every live deployment has a complete set of valid signatures, reviews and "
        "review actions are not overdue and deployed models' cards are complete; raise or "
        "resolve the governance alerts. Also plans the review meetings due within a week."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.localdate()
        planned = reviews.prepare_due_meetings(today)
        reviews.flag_overdue_actions(today)
        findings = checks.run(today)
        for finding in findings:
            self.stdout.write(f"{finding.band:6} {finding.kind:22} {finding.summary}")
        counts = checks.summary(findings)
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(findings)} finding(s) {counts or ''}; {len(planned)} meeting(s) planned."
            )
        )
