"""The monitoring engine in production shape: PostgreSQL, Redis and a real Celery worker build
the daily profiles (one task per version and day, then a chord) and evaluate each site."""

from __future__ import annotations

import time

from celery.result import EagerResult

from governance.audit.models import AuditEvent
from monitoring.models import DailyProfile, MetricResult
from monitoring.tasks import monitor
from tests.monitoring.engine.conftest import rows


def _wait_for(predicate, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError("the worker did not finish in time")


def test_a_worker_builds_profiles_and_evaluates_every_site(
    transactional_db, celery_worker, monitored, days_ago
):
    monitored.upload_reference(n=2000)
    for back in range(1, 4):
        north = rows(120, seed=600 + back)
        monitored.label(monitored.send(north, day=days_ago(back), site="NORTH"), north)
        south = rows(120, seed=700 + back, hr_shift=30, lactate_missing=0.7)
        monitored.label(monitored.send(south, day=days_ago(back), site="SOUTH"), south)
    end = days_ago(1)

    result = monitor.delay(window_end=end.isoformat())

    assert not isinstance(result, EagerResult), "the task ran in-process, not in the worker"
    assert result.get(timeout=60) == {"builds": 3, "evaluations": 3}
    result.forget()
    sites = ("site=NORTH", "site=SOUTH", "all")
    _wait_for(
        lambda: set(
            MetricResult.objects.filter(window_end=end, slice_key__in=sites).values_list(
                "slice_key", flat=True
            )
        )
        == set(sites)
    )
    assert DailyProfile.objects.filter(slice_key="all").count() == 3
    assert AuditEvent.objects.filter(action="monitoring.profile_built").count() == 3
    south = MetricResult.objects.get(
        window_end=end, window_days=7, slice_key="site=SOUTH", metric="missing_rate:lactate"
    )
    assert south.band == "red" and south.clears_threshold
    north = MetricResult.objects.get(
        window_end=end, window_days=7, slice_key="site=NORTH", metric="missing_rate:lactate"
    )
    assert north.band == "green"

    # Nothing new arrived: a second run builds nothing and re-evaluates to the same bands.
    again = monitor.delay(window_end=end.isoformat())
    assert again.get(timeout=60) == {"builds": 0, "evaluations": 3}
    again.forget()


def test_reading_ahead_on_a_second_connection_gives_the_same_profiles(
    transactional_db, monitored, days_ago, monkeypatch
):
    """Outside a transaction PostgreSQL reads the next chunk in a thread; inside one, in line.
    Both give the same day."""
    from django.db import transaction

    from monitoring.profiles import build_day

    monkeypatch.setattr("monitoring.profiles.CHUNK", 40)
    monitored.upload_reference(n=400)
    day = days_ago(2)
    data = rows(150, seed=31)
    monitored.label(monitored.send(data, day=day), data)

    build_day(actor=None, version=monitored.version, day=day)  # read ahead in a thread
    ahead = dict(DailyProfile.objects.filter(day=day).values_list("slice_key", "content_hash"))
    with transaction.atomic():  # read in line
        build_day(actor=None, version=monitored.version, day=day)
    inline = dict(DailyProfile.objects.filter(day=day).values_list("slice_key", "content_hash"))
    assert ahead == inline and DailyProfile.objects.get(day=day, slice_key="all").n_events == 150
