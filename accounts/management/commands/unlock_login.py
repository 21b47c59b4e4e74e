from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser

from accounts.management.commands._operator import as_command_error, via
from accounts.services import login_unlock


class Command(BaseCommand):
    help = "Lift a lock-out after repeated failed logins (once the person is verified); audited."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            login_unlock(actor=None, username=options["username"], via=via("unlock_login"))
        except ValidationError as exc:
            raise as_command_error(exc) from exc
        self.stdout.write(f"Unlocked {options['username']}.")
