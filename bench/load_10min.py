"""The gate under a steady load for ten minutes with the Celery worker and beat running, then a
count check: every event answered 201 is stored exactly once, and the daily profiles the
worker built while the load ran count every stored event exactly once.

    export BENCH_DIR=/tmp/vigil-load
    bench/pg.sh start && . bench/env.sh && .venv/bin/python -m bench.seed
    .venv/bin/python -m bench.load_10min --rate 40 --seconds 600
    bench/pg.sh stop

The script starts, on loopback, and stops again when it ends: its own ``redis-server`` (a free
port from 6390, data in $BENCH_DIR), gunicorn (4 sync workers) with ``CELERY_BROKER_URL``
pointing at that Redis, one Celery worker (``--pool=solo``) and Celery beat (the real
schedule: notifications, escalation and suppressions every minute or five). The bench world has
no reference profile, so the script uploads one (bench-only, straight into the table) and kicks
``monitoring.tasks.monitor`` every ``--monitor-every`` seconds for the world's window (its
events fall in the 30 days before 2026-01-01), as beat's hourly run would: the worker rebuilds
the days the load keeps making stale while the gate takes traffic.

The load itself is ``bench.latency``'s open loop (latency from the scheduled send time, so a
queue is counted); the run is bounded: at most 600 s plus a 60 s drain, then a wait of at most
``--settle`` seconds for the worker to catch up.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import numpy as np

from bench import proc, world
from bench.latency import MAX_SECONDS, Results, loopback_only, percentile

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(os.environ.get("BENCH_DIR", "/tmp/vigil-bench"))
WINDOW_END = date(2026, 1, 1)  # bench.world's events fall in the 30 days before
DRAIN_SECONDS = 60


def free_port(start: int) -> int:
    port = start
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
        port += 1


def wait_for_port(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {seconds:g} s")


def stop(process: subprocess.Popen[bytes], name: str) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop in 30 s: killing it", file=sys.stderr)
        process.kill()
        process.wait()


@contextmanager
def servers(workers: int) -> Iterator[dict[str, object]]:
    """Redis, gunicorn, a Celery worker and beat; yields their ports, pids and log paths."""
    redis_port = free_port(6390)
    broker = f"redis://127.0.0.1:{redis_port}/0"
    env = {**os.environ, "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": broker}
    logs = {name: BENCH_DIR / f"load-{name}.log" for name in ("redis", "web", "worker", "beat")}
    started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with logs[name].open("wb") as out:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        started.append((name, process))
        return process

    python = sys.executable
    try:
        start("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                        "--save", "", "--appendonly", "no", "--dir", str(BENCH_DIR)])  # fmt: skip
        wait_for_port(redis_port)
        web_port = free_port(8765)
        web = start("web", [
            str(Path(python).with_name("gunicorn")), "config.wsgi:application",
            "--bind", f"127.0.0.1:{web_port}", "--workers", str(workers),
            "--worker-class", "sync", "--backlog", "256", "--timeout", "60",
            "--log-level", "warning",
        ])  # fmt: skip
        celery = start("worker", [
            python, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-l", "info",
            "-n", f"load-{uuid.uuid4().hex[:6]}@localhost",
        ])  # fmt: skip
        beat = start("beat", [
            python, "-m", "celery", "-A", "config", "beat", "-l", "info",
            "-s", str(BENCH_DIR / "load-beat-schedule"),
        ])  # fmt: skip
        wait_for_port(web_port)
        time.sleep(10)  # gunicorn's workers import Django after the port opens: not measured
        yield {
            "broker": broker,
            "url": f"http://127.0.0.1:{web_port}",
            "web": web.pid,
            "worker": celery.pid,
            "beat": beat.pid,
            "redis": started[0][1].pid,
            "logs": logs,
        }
    finally:
        for name, process in reversed(started):
            stop(process, name)


def upload_reference() -> int:
    """The bench world's version gets a reference profile (bench-only: straight into the
    table, as bench.monitor_engine does), so ``monitor`` builds its days. Returns its id."""
    from monitoring import profile_data
    from monitoring.models import ReferenceProfile
    from monitoring.reference import build_profile
    from registry.models import ModelVersion

    version = ModelVersion.objects.get(model__slug=world.MODEL, version="1.0.0")
    if ReferenceProfile.objects.filter(version=version).exists():
        return version.pk
    rng = random.Random(7)
    bodies = [world.prediction(i, run="reference") for i in range(5000)]
    batch = profile_data.Batch(
        features=[b["features"] for b in bodies],
        scores=np.array([b["score"] for b in bodies]),
        labels=np.array([float(rng.random() < b["score"]) for b in bodies]),
        cohorts=[b["cohort"] for b in bodies],
        sites=[world.SITE] * len(bodies),
    )
    bins, reference, baseline = build_profile(batch, version)
    ReferenceProfile.objects.create(
        version=version, number=1, file_name="bench-reference", file_sha256="0" * 64,
        row_count=len(bodies), labelled_count=len(bodies), bins=bins, reference=reference,
        baseline=baseline, uploaded_by=world._owner(),
    )  # fmt: skip
    return version.pk


def kick_monitor(every: float, stop_event: threading.Event, kicks: list[str]) -> None:
    """Beat's hourly ``monitor``, every ``every`` seconds for the bench world's window."""
    from monitoring.tasks import monitor

    while not stop_event.wait(every):
        try:
            kicks.append(monitor.delay(window_end=WINDOW_END.isoformat()).id)
        except Exception as exc:  # reported, never fatal to the load
            kicks.append(f"error: {exc!r}")


def sample_load(stop_event: threading.Event, loads: list[float]) -> None:
    loads.append(os.getloadavg()[0])
    while not stop_event.wait(10):
        loads.append(os.getloadavg()[0])


def sender(
    host: str,
    port: int,
    token: str,
    jobs: queue.Queue,
    results: Results,
    answers: dict[str, int | str],
    cancel: threading.Event,
) -> None:
    """bench.latency's worker, also keeping each event's status; after ``cancel`` the jobs
    left are dropped (counted "not sent"), so nothing is in flight during the count check."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection(host, port, timeout=30)
    while (job := jobs.get()) is not None:
        scheduled, body, event_id = job
        if cancel.is_set():
            answers[event_id] = "not sent"
            continue
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
        answers[event_id] = status
        with results.lock:
            results.latencies.append(done - scheduled)
            results.service.append(done - sent)
            results.statuses[status] += 1
    conn.close()


def send(
    args: argparse.Namespace, url: str, token: str, run: str
) -> tuple[Results, dict[str, int | str], float]:
    """The open loop of bench.latency; also returns each event's status."""
    host, port = loopback_only(url)
    warm = int(args.warmup * args.rate)
    count = warm + int(args.seconds * args.rate)
    bodies = [world.prediction(i, run=run) for i in range(count)]
    encoded = [json.dumps(body).encode() for body in bodies]
    jobs: queue.Queue = queue.Queue()
    results = Results()
    answers: dict[str, int | str] = {}
    cancel = threading.Event()
    threads = [
        threading.Thread(
            target=sender, args=(host, port, token, jobs, results, answers, cancel), daemon=True
        )
        for _ in range(args.threads)
    ]
    for thread in threads:
        thread.start()
    start = time.perf_counter() + 0.2
    for index, body in enumerate(encoded):
        scheduled = start + index / args.rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        jobs.put((scheduled, body, bodies[index]["event_id"]))
    for _ in threads:
        jobs.put(None)
    deadline = time.monotonic() + DRAIN_SECONDS
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    cancel.set()  # the drain is over: drop what is still queued, wait for what is in flight
    for thread in threads:
        thread.join()
    return results, answers, time.perf_counter() - start


def settle(seconds: float) -> dict[str, int]:
    """After the load: one last monitor run, then wait until no day is stale and the profiles
    count what is stored. Returns the counts compared."""
    from monitoring.models import DailyProfile, PredictionEvent, StaleDay
    from monitoring.tasks import monitor
    from registry.models import ModelVersion

    version = ModelVersion.objects.get(model__slug=world.MODEL, version="1.0.0")
    monitor.delay(window_end=WINDOW_END.isoformat()).get(timeout=seconds)
    deadline = time.monotonic() + seconds
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        profiled = DailyProfile.objects.filter(version=version, slice_key="all")
        counts = {
            "stored": PredictionEvent.objects.filter(version=version).count(),
            "profiled": sum(profiled.values_list("n_events", flat=True)),
            "stale_days": StaleDay.objects.filter(version=version).count(),
            "profile_rows_all": profiled.count(),
            "distinct_days_all": profiled.values("day").distinct().count(),
        }
        if counts["stale_days"] == 0 and counts["stored"] == counts["profiled"]:
            break
        time.sleep(2)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=600.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=5.0, help="lead-in, not in percentiles")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--monitor-every", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=300.0)
    parser.add_argument("--run", default=f"load-{int(time.time())}", help="varies event ids")
    args = parser.parse_args()
    if not (0 < args.rate <= 500 and 0 < args.seconds <= MAX_SECONDS):
        parser.error("--rate in (0, 500], --seconds in (0, 600]")
    token = (BENCH_DIR / "token").read_text().strip()
    with servers(args.web_workers) as running:
        # The broker must be known before Django's settings are read (the kicks and the check).
        os.environ["CELERY_BROKER_URL"] = os.environ["CELERY_RESULT_BACKEND"] = str(
            running["broker"]
        )
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        upload_reference()
        pids = {name: int(running[name]) for name in ("web", "worker", "beat", "redis")}
        db = proc.pid_from(str(BENCH_DIR / "pgdata" / "postmaster.pid"))
        if db:
            pids["db"] = db
        cpu_before = {name: proc.tree_cpu(pid) for name, pid in pids.items()}
        loads: list[float] = []
        stop_event, kicks = threading.Event(), []
        kicker = threading.Thread(target=kick_monitor, args=(args.monitor_every, stop_event, kicks))
        sampler = threading.Thread(target=sample_load, args=(stop_event, loads))
        kicker.start()
        sampler.start()
        try:
            results, answers, elapsed = send(args, str(running["url"]), token, args.run)
        finally:
            stop_event.set()
            kicker.join()
            sampler.join()
        cpu = {name: proc.used_since(cpu_before[name], proc.tree_cpu(pid))
               for name, pid in pids.items()}  # fmt: skip
        report(args, results, elapsed, cpu, loads, kicks)
        check(answers)
        counts = settle(args.settle)
        print(f"profiles after the load (version total): {counts}")
        worker_log = Path(running["logs"]["worker"]).read_text(errors="replace")  # type: ignore[index]
        print(
            "worker: "
            f"{worker_log.count('succeeded in')} tasks succeeded, "
            f"{worker_log.count('raised unexpected')} raised, "
            f"{worker_log.count('monitoring.tasks.build_profile_day')} build messages logged"
        )
        ok = counts.get("stale_days") == 0 and counts.get("stored") == counts.get("profiled")
        print("profiles count every stored event exactly once:", "yes" if ok else "NO")


def report(
    args: argparse.Namespace,
    results: Results,
    elapsed: float,
    cpu: dict[str, float],
    loads: list[float],
    kicks: list[str],
) -> None:
    warm = int(args.warmup * args.rate)
    # Requests were recorded in completion order; the warm-up is the first ``warm`` seconds'
    # worth, dropped by count (the latencies of the lead-in are not in the percentiles).
    lat = [v * 1000 for v in results.latencies[warm:]]
    errors = sum(n for status, n in results.statuses.items() if status not in (200, 201))
    print(f"target {args.rate:g} req/s for {args.seconds:g} s (+{args.warmup:g} s warm-up)")
    print(f"sent {sum(results.statuses.values()):,} in {elapsed:.1f} s: {dict(results.statuses)}")
    print(f"errors (not 200/201): {errors}")
    if lat:
        print(
            "latency from scheduled send (ms): "
            f"p50 {percentile(lat, 0.50):.1f}  p95 {percentile(lat, 0.95):.1f}  "
            f"p99 {percentile(lat, 0.99):.1f}  p99.9 {percentile(lat, 0.999):.1f}  "
            f"max {max(lat):.1f}  mean {statistics.fmean(lat):.1f}"
        )
    print("CPU seconds during the load: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
    if loads:
        print(f"load average (1 min) during the run: {min(loads):.2f}–{max(loads):.2f}")
    print(f"monitor kicks: {len(kicks)} ({sum(k.startswith('error') for k in kicks)} failed)")


def check(answers: dict[str, int | str]) -> None:
    """Every event answered 200/201 is stored exactly once (the event id is unique, so a
    second row is impossible: what is checked is that none is missing); an event that got an
    error or was never sent is reported apart, stored or not."""
    from monitoring.models import PredictionEvent

    event_ids = list(answers)
    stored: set[str] = set()
    for start in range(0, len(event_ids), 5000):
        chunk = event_ids[start : start + 5000]
        stored |= {
            str(e)
            for e in PredictionEvent.objects.filter(event_id__in=chunk).values_list(
                "event_id", flat=True
            )
        }
    answered = {e for e, status in answers.items() if status in (200, 201)}
    others = Counter(status for status in answers.values() if status not in (200, 201))
    print(
        f"events {len(event_ids):,}: answered 200/201 {len(answered):,}, other {dict(others)}; "
        f"stored {len(stored):,}; answered but missing {len(answered - stored):,}; "
        f"stored without a 200/201 {len(stored - answered):,}"
    )
    ok = not (answered - stored) and not (stored - answered) and not others
    print("every event sent is answered and stored exactly once:", "yes" if ok else "NO")


if __name__ == "__main__":
    main()
