"""``manage.py evaluate_monitors [--model SLUG] [--date YYYY-MM-DD]``: build the missing and
stale daily profiles, then evaluate every window now, in this process."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from monitoring.runner import run_now
from registry.models import ClinicalModel


class Command(BaseCommand):
    help = (
        "Build the missing and stale daily profiles and evaluate every monitoring window "
        "ending on --date (default: today, UTC) for every deployed version with a reference "
        "profile, or only --model's."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", metavar="SLUG", help="only this model")
        parser.add_argument("--date", metavar="YYYY-MM-DD", help="the windows' last day")

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.now().date()
        end = today
        if options["date"]:
            try:
                end = date.fromisoformat(options["date"])
            except ValueError as exc:
                raise CommandError(f"--date {options['date']!r}: use YYYY-MM-DD") from exc
            if end > today:
                raise CommandError(f"--date {end} is in the future (today is {today}, UTC)")
        slug = options["model"]
        if slug and not ClinicalModel.objects.filter(slug=slug).exists():
            raise CommandError(f"--model {slug!r}: no such model")
        summary = run_now(actor=None, window_end=end, model_slug=slug, write=self.stdout.write)
        if not summary.evaluations:
            self.stdout.write(
                self.style.WARNING(
                    "Nothing to evaluate: no deployed version has a reference profile yet "
                    "(upload one on the version's page or through the API)."
                )
            )
            return
        bands = ", ".join(f"{n} {b}" for b, n in sorted(summary.bands.items()))
        self.stdout.write(
            self.style.SUCCESS(
                f"Built {summary.built_days} daily profile(s) from {summary.built_events} "
                f"events; {summary.evaluations} evaluation(s), {summary.results} results: {bands}"
            )
        )
