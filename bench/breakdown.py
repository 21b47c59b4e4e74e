"""Where a single gate call's time goes, in-process (Django test client, no HTTP server).

    . bench/env.sh && .venv/bin/python -m bench.breakdown --requests 400

For each step: wall-clock ms and CPU ms of this process per request (PostgreSQL's own CPU is
not in the latter), and the statements one new prediction sends. "fast path" is the endpoint as
served (``monitoring.api.fast``); "DRF path" is the same request with a query string, which the
fast path hands to the DRF view (``PredictionView``), i.e. the framework's cost with today's
gate. The parts are timed alone: token check, shape check (fast and DRF's serializer), gate.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

from bench import world


def _timed(run: Callable[[], Any], count: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per call of ``run`` over ``count`` calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        run()
    return (
        (time.perf_counter() - wall) * 1000 / count,
        (time.process_time() - cpu) * 1000 / count,
    )


def _requests(client: Any, url: str, bodies: list[str]) -> tuple[float, float, list[str]]:
    """(wall ms, CPU ms) per request over ``bodies`` after 20 unmeasured ones, and the SQL of
    one more new prediction."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for body in bodies[:20]:
        client.post(url, body, content_type="application/json")
    measured = iter(bodies[20:-1])

    def post() -> None:
        response = client.post(url, next(measured), content_type="application/json")
        assert response.status_code == 201, response.content

    wall, cpu = _timed(post, len(bodies) - 21)
    with CaptureQueriesContext(connection) as queries:
        client.post(url, bodies[-1], content_type="application/json")
    return wall, cpu, [q["sql"] for q in queries.captured_queries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--sql", action="store_true", help="print the statements")
    args = parser.parse_args()
    if not 50 <= args.requests <= 5000:
        parser.error("--requests in [50, 5000]")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from accounts.authentication import authenticate_token
    from accounts.models import ServiceAccount
    from monitoring import gate
    from monitoring.api.serializers import PredictionInSerializer, fast_prediction

    token = open(os.environ.get("BENCH_DIR", "/tmp/vigil-bench") + "/token").read().strip()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST=settings.ALLOWED_HOSTS[0])
    count = args.requests
    print(f"{count} new single predictions per step (per request: wall ms, CPU ms, statements)")
    for name, url in [
        ("fast path (as served)", "/api/v1/predictions/"),
        ("DRF path (?via=drf)", "/api/v1/predictions/?via=drf"),
    ]:
        run = f"bd-{time.time()}"
        bodies = [json.dumps(world.prediction(i, run=run)) for i in range(count)]
        wall, cpu, sql = _requests(client, url, bodies)
        print(f"  {name:<34} {wall:6.2f} ms {cpu:6.2f} ms  {len(sql)} statements")
        if args.sql:
            for statement in sql:
                print("      " + " ".join(statement.split())[:150])

    header = f"Bearer {token}"
    run = f"bd-parts-{time.time()}"
    raw = [json.loads(json.dumps(world.prediction(i, run=run))) for i in range(count)]
    parts = iter(raw)
    fast = _timed(lambda: fast_prediction(next(parts)), count)
    parts = iter(raw)

    def serializer() -> None:
        shape = PredictionInSerializer(data=next(parts))
        shape.is_valid(raise_exception=True)
        shape.to_prediction()

    drf = _timed(serializer, count)
    items = iter([fast_prediction(r) for r in raw])
    account = ServiceAccount.objects.select_related("user").get(name=world.SERVICE)
    judged = _timed(lambda: gate.gate_predictions(account=account, items=[next(items)]), count)
    auth = _timed(lambda: authenticate_token(header), count)
    print("  parts (wall ms, CPU ms):")
    for name, (wall, cpu) in [
        ("authenticate_token", auth),
        ("fast_prediction", fast),
        ("PredictionInSerializer", drf),
        ("gate_predictions([one new])", judged),
    ]:
        print(f"    {name:<32} {wall:6.3f} ms {cpu:6.3f} ms")
    print(f"  load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
