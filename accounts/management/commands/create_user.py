from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.commands._operator import as_command_error, via
from accounts.services import ROLE_NAMES, user_create


class Command(BaseCommand):
    help = "Create a person's account with one or more roles (the password is prompted for)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--role", required=True, help=f"comma-separated: {', '.join(ROLE_NAMES)}"
        )
        parser.add_argument("--email", required=True)
        parser.add_argument("--first-name", default="")
        parser.add_argument("--last-name", default="")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from standard input (for provisioning scripts)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = self._password(options["password_stdin"])
        try:
            user = user_create(
                actor=None,
                username=options["username"],
                email=options["email"],
                first_name=options["first_name"],
                last_name=options["last_name"],
                password=password,
                roles=[r.strip() for r in options["role"].split(",") if r.strip()],
                via=via("create_user"),
            )
        except ValidationError as exc:
            raise as_command_error(exc) from exc
        self.stdout.write(f"Created {user} with roles {options['role']}.")

    def _password(self, from_stdin: bool) -> str:
        if from_stdin:
            return sys.stdin.readline().rstrip("\n")
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The two passwords differ.")
        return first
