"""Single gate call latency at a constant arrival rate (open loop), on loopback only.

    .venv/bin/python -m bench.latency --url http://127.0.0.1:8765 --rate 100 --seconds 60

A scheduler thread releases request i at ``start + i / rate`` whatever the server is doing;
a pool of worker threads, each with its own keep-alive connection, sends them. Latency is
measured from the *scheduled* send time to the end of the response, so a slow server's queue
is counted instead of hidden (no coordinated omission). Payloads are built before the run.
The run is bounded: at most --seconds (<= 600) plus a 60 s drain, then it stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import queue
import socket
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench import proc, world

MAX_SECONDS = 600
DRAIN_SECONDS = 60
BENCH_DIR = os.environ.get("BENCH_DIR", "/tmp/vigil-bench")


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)  # from scheduled time, seconds
    service: list[float] = field(default_factory=list)  # from actual send, seconds
    statuses: Counter[int | str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def loopback_only(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise SystemExit("--url must be http://HOST:PORT")
    for info in socket.getaddrinfo(parts.hostname, parts.port):
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise SystemExit(f"{parts.hostname} is not a loopback address: refusing to load it")
    return parts.hostname, parts.port


def worker(host: str, port: int, token: str, jobs: queue.Queue, results: Results) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection(host, port, timeout=30)
    while True:
        job = jobs.get()
        if job is None:
            conn.close()
            return
        scheduled, body, record = job
        sent = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/predictions/", body, headers)
            response = conn.getresponse()
            response.read()
            status: int | str = response.status
        except (OSError, http.client.HTTPException) as exc:
            status = type(exc).__name__
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
        done = time.perf_counter()
        if record:
            with results.lock:
                results.latencies.append(done - scheduled)
                results.service.append(done - sent)
                results.statuses[status] += 1


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-file", type=Path, default=Path(f"{BENCH_DIR}/token"))
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured lead-in seconds")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--run", default=f"lat-{int(time.time())}", help="varies event ids")
    parser.add_argument("--server-pidfile", default=f"{BENCH_DIR}/gunicorn.pid")
    parser.add_argument("--db-pidfile", default=f"{BENCH_DIR}/pgdata/postmaster.pid")
    args = parser.parse_args()
    if not (0 < args.rate <= 2000 and 0 < args.seconds <= MAX_SECONDS and 1 <= args.threads <= 256):
        parser.error("--rate in (0, 2000], --seconds in (0, 600], --threads in [1, 256]")
    host, port = loopback_only(args.url)
    token = args.token_file.read_text().strip()

    warm = int(args.warmup * args.rate)
    count = warm + int(args.seconds * args.rate)
    bodies = [json.dumps(world.prediction(i, run=args.run)).encode() for i in range(count)]
    jobs: queue.Queue = queue.Queue()
    results = Results()
    threads = [
        threading.Thread(target=worker, args=(host, port, token, jobs, results), daemon=True)
        for _ in range(args.threads)
    ]
    for thread in threads:
        thread.start()

    server, db = proc.pid_from(args.server_pidfile), proc.pid_from(args.db_pidfile)
    cpu_before: dict[str, dict[int, float]] = {}
    start = time.perf_counter() + 0.2
    for index, body in enumerate(bodies):
        if index == warm:
            cpu_before = {"server": proc.tree_cpu(server or -1), "db": proc.tree_cpu(db or -1)}
        scheduled = start + index / args.rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        jobs.put((scheduled, body, index >= warm))
    for _ in threads:
        jobs.put(None)
    deadline = time.monotonic() + DRAIN_SECONDS
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    elapsed = time.perf_counter() - start - args.warmup
    cpu = {
        name: proc.used_since(before, proc.tree_cpu({"server": server, "db": db}[name] or -1))
        for name, before in cpu_before.items()
    }

    lat = [v * 1000 for v in results.latencies]
    svc = [v * 1000 for v in results.service]
    print(f"target {args.rate:g} req/s for {args.seconds:g} s (+{args.warmup:g} s warm-up)")
    print(f"completed {len(lat):,} measured requests in {elapsed:.1f} s: {dict(results.statuses)}")
    if lat:
        print(
            "latency from scheduled send (ms): "
            f"p50 {percentile(lat, 0.50):.1f}  p90 {percentile(lat, 0.90):.1f}  "
            f"p99 {percentile(lat, 0.99):.1f}  p99.9 {percentile(lat, 0.999):.1f}  "
            f"max {max(lat):.1f}  mean {statistics.fmean(lat):.1f}"
        )
        print(
            "service time from actual send (ms): "
            f"p50 {percentile(svc, 0.50):.1f}  p99 {percentile(svc, 0.99):.1f}  "
            f"max {max(svc):.1f}"
        )
        print(
            f"CPU per request (ms): gunicorn {cpu['server'] * 1000 / len(lat):.2f}, "
            f"PostgreSQL {cpu['db'] * 1000 / len(lat):.2f}; load average {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
