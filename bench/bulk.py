"""Bulk ingest: sustained events per second, over HTTP and straight through the gate.

    # over HTTP (gunicorn from bench/serve.sh), 10,000-item batches, 1 or more clients
    .venv/bin/python -m bench.bulk http --url http://127.0.0.1:8765 --batches 6 --clients 2
    # in-process, same database: JSON, shape check (DRF's and the fast one) and gate apart
    . bench/env.sh && .venv/bin/python -m bench.bulk direct --batches 6

Every batch has new event ids (10,000 distinct predictions). Bounded: at most 50 batches per
run. Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import proc, world
from bench.latency import loopback_only

BATCH = 10_000
MAX_BATCHES = 50
BENCH_DIR = os.environ.get("BENCH_DIR", "/tmp/vigil-bench")


def _bodies(batches: int, run: str) -> list[bytes]:
    return [
        json.dumps([world.prediction(b * BATCH + i, run=run) for i in range(BATCH)]).encode()
        for b in range(batches)
    ]


def http_run(args: argparse.Namespace) -> None:
    host, port = loopback_only(args.url)
    token = args.token_file.read_text().strip()
    bodies = _bodies(args.batches, args.run)
    print(f"{len(bodies)} bodies of {BATCH:,} items, {len(bodies[0]) / 1e6:.1f} MB each")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    summary: Counter[str] = Counter()
    lock = threading.Lock()
    work = list(enumerate(bodies))
    seconds: list[float] = []

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=600)
        while True:
            with lock:
                if not work:
                    return
                _, body = work.pop(0)
            started = time.perf_counter()
            conn.request("POST", "/api/v1/predictions/bulk/", body, headers)
            response = conn.getresponse()
            payload = json.loads(response.read())
            with lock:
                seconds.append(time.perf_counter() - started)
                if response.status != 200:
                    summary[f"http {response.status}"] += 1
                else:
                    summary.update(payload["summary"])

    server, db = proc.pid_from(args.server_pidfile), proc.pid_from(args.db_pidfile)
    before = proc.tree_cpu(server or -1), proc.tree_cpu(db or -1)
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu_server = proc.used_since(before[0], proc.tree_cpu(server or -1))
    cpu_db = proc.used_since(before[1], proc.tree_cpu(db or -1))
    events = len(bodies) * BATCH
    print(f"{args.clients} client(s): {events:,} events in {elapsed:.1f} s")
    print(f"  sustained: {events / elapsed:,.0f} events/s; per request {_spread(seconds)}")
    print(f"  summary: {dict(summary)}")
    print(
        f"  CPU per event (µs): gunicorn {cpu_server * 1e6 / events:.0f}, "
        f"PostgreSQL {cpu_db * 1e6 / events:.0f}; load average {os.getloadavg()[0]:.2f}"
    )


def _spread(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    middle = ordered[len(ordered) // 2]
    return f"min {ordered[0]:.2f} s, median {middle:.2f} s, max {ordered[-1]:.2f} s"


def direct_run(args: argparse.Namespace) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.utils import timezone

    from accounts.models import ServiceAccount
    from monitoring import gate
    from monitoring.api.serializers import PredictionInSerializer, fast_prediction

    account = ServiceAccount.objects.select_related("user").get(name=world.SERVICE)
    wall: Counter[str] = Counter()
    cpu: Counter[str] = Counter()

    def timed(name: str, run: Callable[[], Any]) -> Any:
        started, used = time.perf_counter(), time.process_time()
        result = run()
        wall[name] += time.perf_counter() - started
        cpu[name] += time.process_time() - used
        return result

    def serializer(decoded: list[Any]) -> list[Any]:
        items = []
        for body in decoded:
            shape = PredictionInSerializer(data=body)
            shape.is_valid(raise_exception=True)
            items.append(shape.to_prediction())
        return items

    def judge(items: list[Any]) -> None:  # what the gate does before storing (nothing stored)
        targets: dict[Any, Any] = {}
        now = timezone.now()
        for item in items:
            gate._build_event(account, item, now, targets)

    for batch in range(args.batches):
        raw = [world.prediction(batch * BATCH + i, run=args.run) for i in range(BATCH)]
        text = json.dumps(raw)
        decoded = timed("json decode", lambda text=text: json.loads(text))
        items = timed("serializer", lambda decoded=decoded: serializer(decoded))
        fast = timed("fast shape check", lambda d=decoded: [fast_prediction(b) for b in d])
        assert fast == items
        timed("gate: judge only", lambda items=items: judge(items))
        outcomes = timed("gate", lambda i=items: gate.gate_predictions(account=account, items=i))
        assert all(o.answer is not None and not o.answer.replayed for o in outcomes)
        replays = timed(
            "gate, all replayed", lambda i=items: gate.gate_predictions(account=account, items=i)
        )
        assert all(o.answer is not None and o.answer.replayed for o in replays)
    events = args.batches * BATCH
    print(
        f"in-process, {args.batches} batches of {BATCH:,} (per event: wall µs, CPU µs; events/s):"
    )
    for name, seconds in wall.items():
        print(
            f"  {name:<20} {seconds * 1e6 / events:8.1f} {cpu[name] * 1e6 / events:8.1f}"
            f"  {events / seconds:10,.0f}/s"
        )
    print(f"  load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["http", "direct"])
    parser.add_argument("--url", default="")
    parser.add_argument("--token-file", type=Path, default=Path(f"{BENCH_DIR}/token"))
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--run", default=f"bulk-{int(time.time())}", help="varies event ids")
    parser.add_argument("--server-pidfile", default=f"{BENCH_DIR}/gunicorn.pid")
    parser.add_argument("--db-pidfile", default=f"{BENCH_DIR}/pgdata/postmaster.pid")
    args = parser.parse_args()
    if not (1 <= args.batches <= MAX_BATCHES and 1 <= args.clients <= 8):
        parser.error(f"--batches in [1, {MAX_BATCHES}], --clients in [1, 8]")
    if args.mode == "http":
        http_run(args)
    else:
        direct_run(args)


if __name__ == "__main__":
    main()
