from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser

from accounts.management.commands._operator import as_command_error
from accounts.services import service_account_create


class Command(BaseCommand):
    help = "Create a model service's account; prints its API token once (only a hash is kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="a slug, e.g. sepsis-scorer")
        parser.add_argument("--models", required=True, help="comma-separated model slugs")

    def handle(self, *args: Any, **options: Any) -> None:
        slugs = [s.strip() for s in options["models"].split(",") if s.strip()]
        try:
            issued = service_account_create(actor=None, name=options["name"], model_slugs=slugs)
        except ValidationError as exc:
            raise as_command_error(exc) from exc
        names = ", ".join(
            issued.account.clinical_models.order_by("slug").values_list("slug", flat=True)
        )
        self.stdout.write(f"Service account {issued.account.name} may log for: {names}")
        self.stdout.write("Token (shown once, store it in the model service's secret store):")
        self.stdout.write(issued.token)
