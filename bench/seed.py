"""Migrate the benchmark database and create the world (bench/world.py); the service token is
written to $BENCH_DIR/token (shown once, like every token).

    . bench/env.sh && .venv/bin/python -m bench.seed
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from bench import world
    from registry.models import ClinicalModel

    call_command("migrate", verbosity=0, interactive=False)
    token_file = Path(os.environ.get("BENCH_DIR", "/tmp/vigil-bench")) / "token"
    if ClinicalModel.objects.filter(slug=world.MODEL).exists():
        print(f"already seeded; the token is in {token_file}", file=sys.stderr)
        return
    token = world.seed()
    token_file.write_text(token)
    token_file.chmod(0o600)
    print(f"seeded {world.MODEL} at {world.SITE}; token in {token_file}", file=sys.stderr)


if __name__ == "__main__":
    main()
