"""Celery tasks of the monitoring engine: thin wrappers around ``monitoring.runner``.

Beat runs ``monitor`` every hour: it builds each missing or stale (version, day) as its own
task, and when those are done (a chord) evaluates each (version, site) as its own task, so more
workers finish sooner.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import chord, shared_task
from django.utils import timezone

from monitoring.evaluation import evaluate
from monitoring.profiles import build_day
from monitoring.runner import announce, plan
from registry.models import ModelVersion, Site


@shared_task
def build_profile_day(version_id: int, day: str) -> dict[str, Any]:
    version = ModelVersion.objects.select_related("model").get(pk=version_id)
    built = build_day(actor=None, version=version, day=date.fromisoformat(day))
    return {"version": version_id, "day": day, "events": built.events, "slices": built.slices}


@shared_task
def evaluate_version(
    version_id: int, window_end: str, site_id: int | None = None
) -> dict[str, Any]:
    version = ModelVersion.objects.select_related("model").get(pk=version_id)
    site = Site.objects.get(pk=site_id) if site_id else None
    result = evaluate(
        actor=None, version=version, window_end=date.fromisoformat(window_end), site=site
    )
    return {
        "version": version_id,
        "site": site_id,
        "results": result.results,
        "bands": result.bands,
    }


@shared_task
def evaluate_all(_built: Any = None, *, window_end: str, model_slug: str | None = None) -> int:
    todo = plan(date.fromisoformat(window_end), model_slug=model_slug)
    jobs = [evaluate_version.si(v, window_end, s) for v, s in todo.evaluations]
    if jobs:
        versions = sorted({v for v, _ in todo.evaluations})
        chord(jobs)(announce_evaluated.si(versions, window_end))
    return len(jobs)


@shared_task
def announce_evaluated(version_ids: list[int], window_end: str) -> None:
    """After every evaluation of the run: alerts are raised from the results."""
    announce(version_ids, date.fromisoformat(window_end))


@shared_task
def monitor(window_end: str | None = None, model_slug: str | None = None) -> dict[str, int]:
    """The scheduled run: builds fan out per (version, day), then evaluations per site."""
    end = window_end or timezone.now().date().isoformat()
    todo = plan(date.fromisoformat(end), model_slug=model_slug)
    builds = [build_profile_day.si(v, d.isoformat()) for v, d in todo.builds]
    after = evaluate_all.s(window_end=end, model_slug=model_slug)
    if builds:
        chord(builds)(after)
    else:
        evaluate_all.delay(window_end=end, model_slug=model_slug)
    return {"builds": len(builds), "evaluations": len(todo.evaluations)}
