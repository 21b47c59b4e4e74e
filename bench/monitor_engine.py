"""Monitoring engine benchmarks (issue 4), run by hand against PostgreSQL; see
docs/benchmarks-monitoring.md.

  BENCH_DIR=/tmp/vigil-mon bench/pg.sh start
  BENCH_DIR=/tmp/vigil-mon . bench/env.sh
  .venv/bin/python -m bench.monitor_engine seed --events 1000000     # world + one day of events
  .venv/bin/python -m bench.monitor_engine build                     # profile build throughput
  .venv/bin/python -m bench.monitor_engine evaluate                  # 30-day window evaluation

The world: one model, a version with 20 features (15 numeric, 5 categorical), 4 cohort columns
of 5 values (20 cohort slices), live at 10 sites. ``seed`` writes one day of prediction events
straight into PostgreSQL with COPY (a read-side benchmark: the gate's own speed is measured in
docs/benchmarks.md), plus outcomes for 80% of them. ``evaluate`` copies that day's profiles to
the 89 days before it (evaluation reads profiles only, so its cost does not depend on how many
events made them) and evaluates the 7- and 30-day windows for the whole deployment with its
cohorts and for each site, as the Celery fan-out would.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import django
import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from monitoring import profile_data  # noqa: E402
from monitoring.evaluation import evaluate, sites_of  # noqa: E402
from monitoring.models import (  # noqa: E402
    DailyProfile,
    MetricResult,
    MonitorPolicy,
    Outcome,
    PredictionEvent,
    ReferenceProfile,
)
from monitoring.profiles import build_day, read_day  # noqa: E402
from monitoring.reference import build_profile  # noqa: E402
from registry import services as registry  # noqa: E402
from registry.models import ClinicalModel, Deployment, ModelVersion, Site  # noqa: E402

SLUG = "bench-monitor"
DAY = date(2026, 6, 30)
SITES = [f"S{i:02d}" for i in range(10)]
NUMERIC = [f"x{i:02d}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]
CATEGORIES = ["a", "b", "c", "d", "e", "f"]
COHORTS = {f"k{i}": [f"v{j}" for j in range(5)] for i in range(4)}


def _load() -> float:
    return os.getloadavg()[0]


def _generate(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC):
        cols[name] = rng.normal(50 + i, 10, n).round(2)
    for name in CATEGORICAL:
        cols[name] = rng.choice(CATEGORIES, n)
    for name, values in COHORTS.items():
        cols[name] = rng.choice(values, n)
    cols["site"] = rng.choice(SITES, n)
    z = (cols["x00"] - 50) / 10 + 0.5 * (cols["x01"] - 51) / 10 - 2.2
    cols["score"] = (1 / (1 + np.exp(-z))).round(5)
    cols["label"] = (rng.random(n) < cols["score"]).astype(float)
    return cols


def seed(events: int) -> None:
    call_command("migrate", verbosity=0)
    if ClinicalModel.objects.filter(slug=SLUG).exists():
        print("already seeded")
        return
    User = get_user_model()
    user = User.objects.create_user("bench-engineer", password=None)
    model = ClinicalModel.objects.create(
        slug=SLUG, name="Benchmark model", summary="s", intended_use="u",
        intended_population="adults", intended_setting="wards", risk_tier="high",
        clinical_owner=user, technical_owner=user, contact="a@b.c",
    )  # fmt: skip
    features = [{"name": n, "dtype": "numeric", "min_value": 0, "max_value": 200} for n in NUMERIC]
    features += [{"name": n, "dtype": "categorical", "categories": CATEGORIES} for n in CATEGORICAL]
    version = _version(model, user, features)
    deployments = {}
    for code in SITES:
        site = Site.objects.create(code=code, name=code)
        deployments[code] = registry.deployment_start(
            actor=None, version=version, site=site, reason="bench",
            at=datetime(2025, 1, 1, tzinfo=UTC),
        )  # fmt: skip
    ref = _generate(50_000, seed=1)
    batch = profile_data.Batch(
        features=_feature_dicts(ref, 50_000),
        scores=ref["score"],
        labels=ref["label"],
        cohorts=[{k: str(ref[k][i]) for k in COHORTS} for i in range(50_000)],
        sites=list(ref["site"]),
    )
    bins, reference, baseline = build_profile(batch, version)
    ReferenceProfile.objects.create(
        version=version, number=1, file_name="bench", file_sha256="0" * 64, row_count=50_000,
        labelled_count=50_000, bins=bins, reference=reference, baseline=baseline,
        uploaded_by=user,
    )  # fmt: skip
    _copy_events(events, version, deployments, user)


def _version(model: ClinicalModel, user: object, features: list[dict]) -> ModelVersion:
    version = ModelVersion.objects.create(
        model=model, version="1.0", status="deployed", artifact_uri="s3://b",
        artifact_sha256="e" * 64, training_data_source="x",
        training_window_start=date(2024, 1, 1), training_window_end=date(2024, 12, 31),
        training_set_size=1, label_definition="y", created_by=user,
    )  # fmt: skip
    for f in features:
        version.features.create(**f)
    for name, values in COHORTS.items():
        version.cohorts.create(name=name, values=values)
    return version


def _feature_dicts(cols: dict[str, np.ndarray], n: int) -> list[dict]:
    names = NUMERIC + CATEGORICAL
    columns = [cols[name].tolist() for name in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _copy_events(n: int, version: ModelVersion, deployments: dict, user: object) -> None:
    started = time.perf_counter()
    cols = _generate(n, seed=2)
    feats = _feature_dicts(cols, n)
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)
    step = 86_000 / n
    sites = {code: d for code, d in deployments.items()}
    table = PredictionEvent._meta.db_table
    columns = (
        "event_id, model_id, version_id, site_id, deployment_id, mode, occurred_at, received_at, "
        "case_key_hash, features, score, confidence, top_factors, cohort, action, reasons, "
        "problems, policy_number, body_hash, submitted_by_id"
    )
    chunk = 100_000
    with connection.cursor() as cursor:
        raw = cursor.cursor
        for lo in range(0, n, chunk):
            buf = io.StringIO()
            for i in range(lo, min(n, lo + chunk)):
                d = sites[cols["site"][i]]
                at = (start + timedelta(seconds=i * step)).isoformat()
                cohort = json.dumps({k: cols[k][i] for k in COHORTS})
                action = "defer" if cols["score"][i] > 0.6 else "act"
                row = (
                    str(uuid.uuid4()), str(version.model_id), str(version.pk), str(d.site_id),
                    str(d.pk), "live", at, at, "h" * 64, json.dumps(feats[i]),
                    repr(float(cols["score"][i])), "0.9", "[]", cohort, action, "[]", "[]", "1",
                    "b" * 64, str(user.pk),
                )  # fmt: skip
                buf.write("\t".join(row) + "\n")
            buf.seek(0)
            with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                copy.write(buf.getvalue())
        cursor.execute(
            f"INSERT INTO {Outcome._meta.db_table} (event_id, label, observed_at, received_at, "
            "note, submitted_by_id) SELECT id, (random() < score)::int, occurred_at, "
            f"occurred_at, '', submitted_by_id FROM {table} WHERE version_id = %s AND "
            "random() < 0.8",
            [version.pk],
        )
    print(f"seeded {n:,} events in {time.perf_counter() - started:.1f} s")


def build() -> None:
    version = ModelVersion.objects.get(model__slug=SLUG)
    DailyProfile.objects.filter(version=version).delete()
    n = PredictionEvent.objects.filter(version=version).count()
    load = _load()
    wall, cpu = time.perf_counter(), time.process_time()
    read = sum(len(batch) for batch in read_day(version.pk, DAY))
    read_wall, read_cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert read == n
    wall, cpu = time.perf_counter(), time.process_time()
    built = build_day(actor=None, version=version, day=DAY)
    total_wall, total_cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load average {load:.2f}; {n:,} events in the day; {built.slices} slices")
    print(f"read_day alone: {read_wall:.1f} s wall, {read_cpu:.1f} s CPU")
    print(
        f"build_day: {total_wall:.1f} s wall, {total_cpu:.1f} s CPU in this process -> "
        f"{built.events / total_wall:,.0f} events/s per worker (wall), peak RSS {peak:,.0f} MB"
    )


def evaluate_window(windows: list[int]) -> None:
    version = ModelVersion.objects.select_related("model").get(model__slug=SLUG)
    MonitorPolicy.objects.update_or_create(
        model=version.model,
        defaults={"windows": windows, "reason": "bench", "updated_by": version.created_by},
    )
    day_rows = list(DailyProfile.objects.filter(version=version, day=DAY))
    if not day_rows:
        raise SystemExit("run build first")
    DailyProfile.objects.filter(version=version).exclude(day=DAY).delete()
    copies = []
    for back in range(1, 90):
        for row in day_rows:
            copies.append(
                DailyProfile(
                    version=version,
                    reference_id=row.reference_id,
                    day=DAY - timedelta(days=back),
                    slice_key=row.slice_key,
                    site_id=row.site_id,
                    n_events=row.n_events,
                    data=row.data,
                    content_hash=row.content_hash,
                )  # fmt: skip
            )
    DailyProfile.objects.bulk_create(copies, batch_size=500)
    MetricResult.objects.filter(version=version).delete()
    load = _load()
    started = time.perf_counter()
    cpu = time.process_time()
    results = 0
    whole = evaluate(actor=None, version=version, window_end=DAY)
    results += whole.results
    after_whole = time.perf_counter() - started
    for site in sites_of(version, DAY):
        results += evaluate(actor=None, version=version, window_end=DAY, site=site).results
    elapsed = time.perf_counter() - started
    print(f"load average {load:.2f}; {len(day_rows)} slices x 90 days of profiles")
    print(
        f"evaluated {windows}-day windows: all + 20 cohort slices in {after_whole:.2f} s, "
        f"+ 10 sites: total {elapsed:.2f} s wall, {time.process_time() - cpu:.2f} s CPU, "
        f"{results:,} results"
    )
    print(
        "deployments:",
        Deployment.objects.filter(version=version).count(),
        "daily volume behind each profile day:",
        next(r.n_events for r in day_rows if r.slice_key == "all"),
    )


def _evaluate_units(units: list[int | None]) -> int:
    from django.db import connections

    connections.close_all()  # a fresh connection in this process
    version = ModelVersion.objects.select_related("model").get(model__slug=SLUG)
    sites = {s.pk: s for s in Site.objects.all()}
    done = 0
    for unit in units:
        site = sites[unit] if unit else None
        done += evaluate(actor=None, version=version, window_end=DAY, site=site).results
    return done


def evaluate_parallel(workers: int) -> None:
    """The evaluations of one run split over ``workers`` processes, as Celery workers take the
    fan-out (run ``evaluate`` first: it lays out the 90 days of profiles)."""
    import multiprocessing

    from django.db import connections

    version = ModelVersion.objects.get(model__slug=SLUG)
    units: list[int | None] = [None] + [s.pk for s in sites_of(version, DAY)]
    shares = [units[i::workers] for i in range(workers)]
    connections.close_all()
    load = _load()
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = sum(pool.map(_evaluate_units, shares))
    elapsed = time.perf_counter() - started
    print(
        f"load average {load:.2f}; {len(units)} evaluations over {workers} worker processes: "
        f"{elapsed:.2f} s wall, {results:,} results"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--events", type=int, default=1_000_000)
    sub.add_parser("build")
    e = sub.add_parser("evaluate")
    e.add_argument("--windows", default="7,30", help="window lengths, e.g. 30 or 7,30")
    par = sub.add_parser("parallel")
    par.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.command == "seed":
        seed(args.events)
    elif args.command == "build":
        build()
    elif args.command == "parallel":
        evaluate_parallel(args.workers)
    else:
        evaluate_window([int(w) for w in args.windows.split(",")])


if __name__ == "__main__":
    main()
