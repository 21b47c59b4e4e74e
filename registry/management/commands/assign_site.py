from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser

from accounts.management.commands._operator import as_command_error, via
from registry.assignments import site_assignment_set


class Command(BaseCommand):
    help = (
        "Assign a person to a site (or take the assignment away with --remove); audited. "
        "Reviewers see the deferred cases of their sites only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("site_code", metavar="SITE_CODE")
        parser.add_argument("--remove", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        assigned = not options["remove"]
        try:
            site_assignment_set(
                actor=None,
                username=options["username"],
                site_code=options["site_code"],
                assigned=assigned,
                via=via("assign_site"),
            )
        except ValidationError as exc:
            raise as_command_error(exc) from exc
        if assigned:
            self.stdout.write(f"Assigned {options['username']} to {options['site_code']}.")
        else:
            self.stdout.write(f"Removed {options['username']} from {options['site_code']}.")
