"""Audit export at scale: peak memory (RSS) and time of ``manage.py export_audit`` over a trail of
N synthetic events, to show that memory stays flat as the trail grows.

    bench/pg.sh start && . bench/env.sh && .venv/bin/python manage.py migrate --noinput
    .venv/bin/python -m bench.export_audit seed --total 100000     # grows the trail to 100k
    .venv/bin/python -m bench.export_audit run                     # exports, prints a table
    .venv/bin/python -m bench.export_audit seed --total 1000000
    .venv/bin/python -m bench.export_audit run

``seed`` appends synthetic events to the real chain (continuing from the chain head, hashed
exactly as ``record()`` hashes them, so ``manage.py verify_audit_chain`` still passes) with
``bulk_create`` in batches: the append-only triggers refuse UPDATE and DELETE, not INSERT. It
bypasses ``record()`` (one locked transaction per event, far too slow for a million) and is for
benchmark databases only. A fresh trail starts with five ``model.register`` events; then every
fourth event names one of the five models (``bench-0`` .. ``bench-4``) in its payload and
creates a record, and the next three are about that record without naming the model, so the
model filter's record rule is exercised.

``run`` exports four ways, each in a fresh ``manage.py`` process whose peak RSS is read from
``getrusage(RUSAGE_CHILDREN)``: the whole trail as JSON Lines and as CSV, one model as JSON
Lines (a fifth of the events with content, the rest hash-only links), and one model as PDF
(table capped, see export_pdf). Then it runs the stdlib verifier on the two JSON Lines files.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BATCH = 5000
MODELS = 5
MAX_TOTAL = 2_000_000
OUT_DIR = Path(os.environ.get("BENCH_DIR", "/tmp/vigil-bench")) / "exports"


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def seed(total: int) -> None:
    """Append synthetic events until the trail holds ``total``."""
    _django()
    from django.db import transaction

    from governance.audit import chain
    from governance.audit.models import AuditEvent, ChainHead
    from governance.audit.services import _locked_head

    started = time.perf_counter()
    with transaction.atomic():
        head = _locked_head()
        seq, prev = head.seq, head.hash
        base = datetime(2025, 1, 1, tzinfo=UTC)
        while seq < total:
            batch = []
            for _ in range(min(BATCH, total - seq)):
                seq += 1
                if seq <= MODELS:  # a fresh trail starts by registering the models
                    event = _registration(seq, base, prev)
                    prev = event.hash
                    batch.append(event)
                    continue
                record_id, step = divmod(seq, 4)
                event = AuditEvent(
                    seq=seq,
                    occurred_at=base + timedelta(seconds=seq),
                    actor_label=f"bench-user-{seq % 7}",
                    actor_role="ml_engineer",
                    action="bench.create" if step == 0 else f"bench.step{step}",
                    object_type="bench.record",
                    object_id=str(record_id),
                    summary=f"Synthetic event {seq} about record {record_id}",
                    payload=(
                        {"model": f"bench-{record_id % MODELS}", "n": seq}
                        if step == 0
                        else {"step": step, "score_sum": seq * 0.25}
                    ),
                    prev_hash=prev,
                )
                event.hash = chain.event_hash(event.content())
                prev = event.hash
                batch.append(event)
            AuditEvent.objects.bulk_create(batch)
            print(f"\r  {seq:,} events", end="", flush=True)
        ChainHead.objects.filter(id=1).update(seq=seq, hash=prev)
    print(f"\nseeded to {seq:,} events in {time.perf_counter() - started:.0f} s")


def _registration(seq: int, base: datetime, prev: str) -> Any:
    from governance.audit import chain
    from governance.audit.models import AuditEvent

    slug = f"bench-{seq - 1}"
    event = AuditEvent(
        seq=seq,
        occurred_at=base + timedelta(seconds=seq),
        actor_label="bench-user-0",
        actor_role="ml_engineer",
        action="model.register",
        object_type="registry.clinicalmodel",
        object_id=str(seq),
        summary=f"Registered model {slug}",
        payload={"slug": slug, "risk_tier": "moderate"},
        prev_hash=prev,
    )
    event.hash = chain.event_hash(event.content())
    return event


def _measure(args: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, exit code) of one child process. Called in a fresh ``_one``
    process whose only child this is, so RUSAGE_CHILDREN's maximum is this child's peak."""
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode:
        print(done.stderr.decode(), file=sys.stderr)
    return seconds, peak_kib / 1024, done.returncode


def run(count: int) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    manage = [sys.executable, "manage.py", "export_audit"]
    model = "--model=bench-1"
    cases = [
        ("nothing (baseline)", [*manage, str(OUT_DIR / "none.jsonl"), "--since=2999-01-01"]),
        ("one model, PDF", [*manage, str(OUT_DIR / "model.pdf"), model, "--format=pdf"]),
        ("one model, JSONL", [*manage, str(OUT_DIR / "model.jsonl"), model]),
        ("all, CSV", [*manage, str(OUT_DIR / "all.csv"), "--format=csv"]),
        ("all, JSONL", [*manage, str(OUT_DIR / "all.jsonl")]),
    ]
    verifier = [sys.executable, "-I", "-S", "tools/verify_audit_export.py"]
    cases += [
        ("verify one model", [*verifier, str(OUT_DIR / "model.jsonl")]),
        ("verify all", [*verifier, str(OUT_DIR / "all.jsonl")]),
    ]
    print(f"trail: {count:,} events")
    print(f"{'export':<19} {'seconds':>8} {'peak RSS MiB':>13} {'file MiB':>9}")
    for name, args in cases:
        # Each case in its own process tree so its peak is its own.
        probe = [sys.executable, "-m", "bench.export_audit", "_one", "--", *args]
        done = subprocess.run(probe, cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            print(f"{name:<19} FAILED\n{done.stderr}")
            continue
        seconds, peak = (float(v) for v in done.stdout.split())
        target = Path(args[3]) if "manage.py" in args else None
        size = f"{target.stat().st_size / 2**20:9.1f}" if target and target.exists() else " " * 9
        print(f"{name:<19} {seconds:8.1f} {peak:13.0f} {size}")


def _one(args: list[str]) -> None:
    seconds, peak, code = _measure(args)
    if code:
        sys.exit(code)
    print(f"{seconds:.2f} {peak:.1f}")


def _count() -> int:
    _django()
    from governance.audit.models import ChainHead

    head = ChainHead.objects.filter(id=1).first()
    return head.seq if head else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    grow = commands.add_parser("seed", help="grow the trail to --total events")
    grow.add_argument("--total", type=int, required=True)
    commands.add_parser("run", help="measure the exports")
    one = commands.add_parser("_one")
    one.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    if options.command == "seed":
        if not 0 < options.total <= MAX_TOTAL:
            parser.error(f"--total must be between 1 and {MAX_TOTAL:,}")
        seed(options.total)
    elif options.command == "run":
        run(_count())
    else:
        _one([a for a in options.args if a != "--"])


if __name__ == "__main__":
    main()
