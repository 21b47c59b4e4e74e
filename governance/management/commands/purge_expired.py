"""``manage.py purge_expired``: run the retention purge now (what beat runs daily)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from governance import retention


class Command(BaseCommand):
    help = (
        "Delete the prediction events past their retention period (with their outcomes, "
        "overrides and review cases) unless a legal hold keeps them. Daily profiles, metric "
        "results, incidents and the audit trail are kept. The run is recorded in the audit trail."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted; change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = retention.purge_due(dry_run=options["dry_run"])
        d = report.deleted
        verb = "would delete" if report.dry_run else "deleted"
        self.stdout.write(f"cutoff: events before {report.cutoff.isoformat()}")
        self.stdout.write(
            f"{verb}: {d['prediction_event']} prediction events, {d['outcome']} outcomes, "
            f"{d['override']} overrides, {d['review_case']} review cases"
        )
        self.stdout.write(
            f"kept: {report.held_events} under {len(report.holds)} legal hold(s), "
            f"{report.kept_referenced} referred to by other records"
        )
        if report.dry_run:
            self.stdout.write(self.style.WARNING("Dry run: nothing was changed."))
        else:
            self.stdout.write(self.style.SUCCESS("Purge recorded in the audit trail."))
