"""Where a single gate call's time goes, in-process (Django test client, no HTTP server), and
what the proposed query cuts would save. The "what if" steps monkeypatch this process only;
they are measurements for docs/benchmarks.md, not changes to Vigil.

    . bench/env.sh && .venv/bin/python -m bench.breakdown --requests 300
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

from bench import world


def _measure(client: Any, bodies: list[str]) -> tuple[float, float]:
    """(ms per request, queries per request) over ``bodies``, after 20 unmeasured requests."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for body in bodies[:20]:
        client.post("/api/v1/predictions/", body, content_type="application/json")
    started = time.perf_counter()
    for body in bodies[20:-1]:
        response = client.post("/api/v1/predictions/", body, content_type="application/json")
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.content
    with CaptureQueriesContext(connection) as queries:  # a new prediction, as measured
        client.post("/api/v1/predictions/", bodies[-1], content_type="application/json")
    return elapsed * 1000 / (len(bodies) - 21), len(queries.captured_queries)


def _cache_model_site_scope() -> None:
    """Gate: model, site and token scope cached per process; deployments (freeze!) and the
    policy still read fresh on every call."""
    from monitoring import gate
    from registry.models import Deployment

    cache: dict[tuple[int, str, str], gate._Target] = {}
    plain = gate._resolve

    def resolve(account: Any, item: Any, targets: dict) -> Any:
        key = (account.pk, item.model, item.site)
        if key not in cache:
            cache[key] = plain(account, item, {})
        known = cache[key]
        deployments = list(
            Deployment.objects.filter(model=known.model, site=known.site)
            .select_related("version")
            .only(*DEPLOYMENT_FIELDS)
        )
        return gate._Target(model=known.model, site=known.site, deployments=deployments)

    gate._resolve = resolve


#: The columns ``gate._resolve`` reads of a deployment (as of 6d25137).
DEPLOYMENT_FIELDS = (
    "id",
    "mode",
    "started_at",
    "ended_at",
    "frozen",
    "version__id",
    "version__version",
    "version__decision_thresholds",
    "version__created_at",
)

# Measured before 6d25137 and since done there: last_used_at written at most once a minute,
# a service account's permissions cached per process (21.9 ms / 13 queries -> 14.7 ms / 7 with
# the step below, see docs/benchmarks.md).
STEPS: list[tuple[str, Callable[[], None] | None]] = [
    ("as is", None),
    ("+ model, site, scope cached (deployments fresh)", _cache_model_site_scope),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    if not 50 <= args.requests <= 5000:
        parser.error("--requests in [50, 5000]")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from accounts.models import ServiceAccount
    from monitoring import gate
    from monitoring.api.serializers import PredictionInSerializer

    token = open(os.environ.get("BENCH_DIR", "/tmp/vigil-bench") + "/token").read().strip()
    host = settings.ALLOWED_HOSTS[0]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST=host)
    print(f"{args.requests} single-prediction requests per step (ms per request, queries):")
    for name, apply in STEPS:
        if apply is not None:
            apply()
        run = f"bd-{time.time()}"
        bodies = [json.dumps(world.prediction(i, run=run)) for i in range(args.requests)]
        ms, queries = _measure(client, bodies)
        print(f"  {name:<50} {ms:6.2f} ms  {queries:2d} queries")

    account = ServiceAccount.objects.select_related("user").get(name=world.SERVICE)
    run = f"bd-parts-{time.time()}"
    bodies = [world.prediction(i, run=run) for i in range(args.requests)]
    started = time.perf_counter()
    items = []
    for body in bodies:
        serializer = PredictionInSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        items.append(serializer.to_prediction())
    shape = (time.perf_counter() - started) * 1000 / len(bodies)
    started = time.perf_counter()
    for item in items:
        gate.gate_predictions(account=account, items=[item])
    judged = (time.perf_counter() - started) * 1000 / len(items)
    print(f"  parts: PredictionInSerializer {shape:.2f} ms, gate_predictions([1]) {judged:.2f} ms")
    print(f"  load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
