"""How long a rollback takes, end to end, on a seeded demo database (run by hand).

    VIGIL_VAR_DIR=/tmp/demo-var VIGIL_ENV=development .venv/bin/python manage.py migrate
    VIGIL_VAR_DIR=/tmp/demo-var VIGIL_ENV=development .venv/bin/python manage.py seed_demo
    VIGIL_VAR_DIR=/tmp/demo-var VIGIL_ENV=development .venv/bin/python bench/rollback.py

For each of ``ROUNDS`` rounds at NORTH it deploys a recalibration of sepsis-ews (signed by the
medical director and quality and safety), then times, through the services the pages call:
the rollback proposal, the medical director's signature (password check included: the
production PBKDF2 hasher), which deploys it, and the first prediction through the gate that
gets the restored configuration. Prints each step's median and the total. Writes to the demo
database (it adds releases and predictions): use a scratch copy.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

from accounts.services import service_account_create  # noqa: E402
from governance import deploy, releases, signing  # noqa: E402
from governance.demo import demo_password  # noqa: E402
from monitoring.gate import PredictionIn, gate_predictions  # noqa: E402
from registry.models import ClinicalModel, Site  # noqa: E402

ROUNDS = 5
User = get_user_model()


def main() -> None:
    password = demo_password()
    users = {u.username: u for u in User.objects.filter(username__in=["director", "mlengineer",
                                                                       "quality"])}  # fmt: skip
    model, site = ClinicalModel.objects.get(slug="sepsis-ews"), Site.objects.get(code="NORTH")
    account = service_account_create(
        actor=None, name=f"bench-rollback-{uuid.uuid4().hex[:6]}", model_slugs=[model.slug]
    ).account
    timings: dict[str, list[float]] = {"propose": [], "sign+deploy": [], "first gate": []}
    for round_ in range(ROUNDS):
        recal = releases.release_create(
            actor=users["mlengineer"], model=model, kind="recalibration",
            title=f"bench recalibration {round_}", rationale="bench", sites=[site],
            score_mapping={"method": "logistic", "intercept": -0.3, "slope": 0.9},
        )  # fmt: skip
        releases.release_submit(actor=users["mlengineer"], release=recal, password=password)
        for name in ("director", "quality"):
            signing.release_sign(actor=users[name], release=recal, password=password)
        deploy.release_deploy(actor=users["director"], release=recal)

        t0 = time.perf_counter()
        rollback = releases.rollback_propose(
            actor=users["mlengineer"], model=model, sites=[site], rationale="bench rollback"
        )
        t1 = time.perf_counter()
        signing.release_sign(actor=users["director"], release=rollback, password=password)
        t2 = time.perf_counter()
        (outcome,) = gate_predictions(
            account=account,
            items=[PredictionIn(
                event_id=uuid.uuid4(), model=model.slug, site=site.code,
                occurred_at=datetime.now(UTC), case_key=f"bench-{uuid.uuid4().hex}",
                features={}, score=0.3,
            )],
        )  # fmt: skip
        t3 = time.perf_counter()
        assert outcome.answer is not None and outcome.answer.score == 0.3, outcome
        timings["propose"].append(t1 - t0)
        timings["sign+deploy"].append(t2 - t1)
        timings["first gate"].append(t3 - t2)
        rollback.refresh_from_db()
        print(f"round {round_ + 1}: propose {1000 * (t1 - t0):.0f} ms, sign and deploy "
              f"{1000 * (t2 - t1):.0f} ms (deploy transaction {1000 * rollback.deploy_seconds:.0f}"
              f" ms), first gate answer {1000 * (t3 - t2):.0f} ms")  # fmt: skip
    medians = {k: statistics.median(v) for k, v in timings.items()}
    parts = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in medians.items())
    print(f"median: {parts}; total {1000 * sum(medians.values()):.0f} ms")


if __name__ == "__main__":
    main()
