from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from governance import demo


class Command(BaseCommand):
    help = (
        "Load the demo data (a user per role, sites, feeds, three models with versions and "
        "deployments) through the services, so all of it is audited. Idempotent. The demo "
        f"password comes from ${demo.DEMO_PASSWORD_ENV} (default {demo.DEFAULT_DEMO_PASSWORD!r})."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        password = demo.demo_password()
        log = demo.seed_demo(password=password, write=self.stdout.write)
        if log.created:
            self.stdout.write(self.style.SUCCESS(f"Demo data loaded: {log.created} change(s)."))
        else:
            self.stdout.write(self.style.SUCCESS("Demo data already present: nothing changed."))
        if log.tokens:
            self.stdout.write(
                "\nService-account tokens (shown once; only their hashes are stored):"
            )
            for name, token in sorted(log.tokens.items()):
                self.stdout.write(f"  {name}: {token}")
        self.stdout.write("\nDemo logins (every role):")
        for line in demo.login_table(password):
            self.stdout.write(f"  {line}")
