from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser

from accounts.management.commands._operator import as_command_error, via
from accounts.services import service_account_revoke


class Command(BaseCommand):
    help = "Revoke a model service's token at once (e.g. leaked); audited."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--reason", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            service_account_revoke(
                actor=None,
                name=options["name"],
                reason=options["reason"],
                via=via("revoke_service_account"),
            )
        except ValidationError as exc:
            raise as_command_error(exc) from exc
        self.stdout.write(f"Revoked {options['name']}: its token no longer authenticates.")
