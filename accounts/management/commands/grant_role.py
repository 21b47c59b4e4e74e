from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser

from accounts.management.commands._operator import as_command_error, via
from accounts.services import ROLE_NAMES, role_set


class Command(BaseCommand):
    help = "Grant a role to a person (or take it away with --revoke); audited."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=ROLE_NAMES)
        parser.add_argument("--revoke", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        granted = not options["revoke"]
        try:
            role_set(
                actor=None,
                username=options["username"],
                role=options["role"],
                granted=granted,
                via=via("grant_role"),
            )
        except ValidationError as exc:
            raise as_command_error(exc) from exc
        verb = "Granted" if granted else "Revoked"
        self.stdout.write(f"{verb} {options['role']} for {options['username']}.")
