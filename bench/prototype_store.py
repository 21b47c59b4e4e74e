"""What would storing a gate batch cost without the ORM's bulk insert? A measurement for the
speed proposal in docs/benchmarks.md, not a second implementation: it calls the gate's own
``_build_event`` (the same judged rows), then inserts them three ways inside a transaction that
is rolled back, so the database is left as it was.

    . bench/env.sh && .venv/bin/python -m bench.prototype_store --batches 3

1. ``bulk_create`` as ``gate._store`` does today (client-side parameter binding);
2. the same with server-side binding (``OPTIONS: {"server_side_binding": True}``);
3. PostgreSQL ``COPY ... FROM STDIN`` through psycopg, rows written as tuples.
Each figure is µs per event for 10,000-event batches (event rows only; review cases apart).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter

from bench import proc, world

COLUMNS = [
    "event_id",
    "model_id",
    "version_id",
    "site_id",
    "deployment_id",
    "mode",
    "occurred_at",
    "received_at",
    "case_key_hash",
    "features",
    "score",
    "confidence",
    "top_factors",
    "cohort",
    "action",
    "reasons",
    "problems",
    "policy_id",
    "policy_number",
    "body_hash",
    "submitted_by_id",
]
JSON_COLUMNS = {"features", "top_factors", "cohort", "reasons", "problems"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    if not 1 <= args.batches <= 20:
        parser.error("--batches in [1, 20]")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import ServiceAccount
    from monitoring import gate, importing
    from monitoring.models import PredictionEvent

    account = ServiceAccount.objects.select_related("user").get(name=world.SERVICE)
    totals: Counter[str] = Counter()
    db_cpu: Counter[str] = Counter()
    db = proc.pid_from("/tmp/vigil-bench/pgdata/postmaster.pid") or -1
    events_done = 0
    for batch in range(args.batches):
        run = f"proto-{time.time()}-{batch}"
        items = [importing._fast_prediction(world.prediction(i, run=run)) for i in range(10_000)]
        now = timezone.now()
        targets: dict = {}
        policies: dict = {}
        started = time.perf_counter()
        events = [gate._build_event(account, item, now, targets, policies) for item in items]
        totals["judge + build model instances"] += time.perf_counter() - started
        events_done += len(events)

        for name, binding in (("bulk_create", False), ("bulk_create, server-side binding", True)):
            connection.close()
            connection.settings_dict["OPTIONS"]["server_side_binding"] = binding
            clones = [_copy_of(e) for e in events]
            with transaction.atomic():
                before, started = proc.tree_cpu(db), time.perf_counter()
                PredictionEvent.objects.bulk_create(clones, batch_size=1000)
                totals[name] += time.perf_counter() - started
                db_cpu[name] += proc.used_since(before, proc.tree_cpu(db))
                transaction.set_rollback(True)
        connection.close()
        connection.settings_dict["OPTIONS"]["server_side_binding"] = False

        with transaction.atomic():
            before, started = proc.tree_cpu(db), time.perf_counter()
            rows = [_row(e) for e in events]
            totals["COPY: rows as tuples (json.dumps)"] += time.perf_counter() - started
            with connection.cursor() as cursor:
                sql = f"COPY monitoring_predictionevent ({', '.join(COLUMNS)}) FROM STDIN"
                with cursor.cursor.copy(sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            totals["COPY"] += time.perf_counter() - started
            db_cpu["COPY"] += proc.used_since(before, proc.tree_cpu(db))
            transaction.set_rollback(True)
    print(f"{events_done:,} events, µs per event (events/s):")
    for name, seconds in totals.items():
        pg = f"; PostgreSQL CPU {db_cpu[name] * 1e6 / events_done:.0f}" if name in db_cpu else ""
        rate = f"{events_done / seconds:,.0f}/s{pg}"
        print(f"  {name:<36} {seconds * 1e6 / events_done:7.1f}  ({rate})")
    print(f"  load average {os.getloadavg()[0]:.2f}")


def _copy_of(event):  # a fresh unsaved instance each time (bulk_create sets pk)
    clone = type(event)(**{f.attname: getattr(event, f.attname) for f in event._meta.fields})
    clone.pk = None
    return clone


def _row(event) -> tuple:
    values = []
    for column in COLUMNS:
        value = getattr(event, column)
        values.append(json.dumps(value) if column in JSON_COLUMNS else value)
    return tuple(values)


if __name__ == "__main__":
    main()
