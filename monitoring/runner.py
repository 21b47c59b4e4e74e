"""Running the monitors: build the missing and stale daily profiles, then evaluate.

``plan`` says what is due for a window end; ``run_now`` does it in this process (the
``evaluate_monitors`` command, the demo); ``monitoring.tasks`` fans the same plan out over
Celery workers, a build per (version, day) and an evaluation per (version, site).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.utils import timezone

from monitoring.evaluation import (
    PREVIOUS_DAYS,
    PolicyInForce,
    evaluate,
    sites_of,
    versions_to_evaluate,
)
from monitoring.profiles import build_day, days_to_build
from monitoring.signals import evaluated
from registry.models import ModelVersion, Site


@dataclass
class Plan:
    window_end: date
    builds: list[tuple[int, date]] = field(default_factory=list)
    #: (version id, site id or None for the whole deployment and its cohorts)
    evaluations: list[tuple[int, int | None]] = field(default_factory=list)


def plan(window_end: date, *, model_slug: str | None = None) -> Plan:
    out = Plan(window_end)
    for version in versions_to_evaluate(window_end, model_slug=model_slug):
        policy = PolicyInForce.of(version.model_id)
        lookback = max(policy.windows) + PREVIOUS_DAYS
        out.builds += [
            (version.pk, day)
            for day in days_to_build(version, until=window_end, lookback_days=lookback)
        ]
        out.evaluations.append((version.pk, None))
        out.evaluations += [(version.pk, site.pk) for site in sites_of(version, window_end)]
    return out


@dataclass
class RunSummary:
    built_days: int = 0
    built_events: int = 0
    evaluations: int = 0
    results: int = 0
    bands: dict[str, int] = field(default_factory=dict)
    version_ids: set[int] = field(default_factory=set)


def run_now(
    *,
    actor: Any,
    window_end: date,
    model_slug: str | None = None,
    write: Callable[[str], None] = lambda _: None,
) -> RunSummary:
    """Build what is missing or stale and evaluate every (version, site), in this process."""
    todo = plan(window_end, model_slug=model_slug)
    summary = RunSummary()
    versions = {v.pk: v for v in ModelVersion.objects.select_related("model")}
    for version_id, day in todo.builds:
        built = build_day(actor=actor, version=versions[version_id], day=day)
        summary.built_days += 1
        summary.built_events += built.events
    if todo.builds:
        write(f"  built {summary.built_days} daily profiles ({summary.built_events} events)")
    sites = {s.pk: s for s in Site.objects.all()}
    for version_id, site_id in todo.evaluations:
        version = versions[version_id]
        result = evaluate(
            actor=actor,
            version=version,
            window_end=window_end,
            site=sites[site_id] if site_id else None,
        )
        summary.evaluations += 1
        summary.results += result.results
        for band, n in result.bands.items():
            summary.bands[band] = summary.bands.get(band, 0) + n
        where = sites[site_id].code if site_id else "all + cohorts"
        summary.version_ids.add(version_id)
        write(
            f"  evaluated {version} ({where}): "
            + (result.skipped or ", ".join(f"{n} {b}" for b, n in sorted(result.bands.items())))
        )
    announce(summary.version_ids, window_end)
    return summary


def announce(version_ids: set[int] | list[int], window_end: date) -> None:
    """Tell listeners (alerts) that the newest windows were evaluated. Backfills of past
    windows stay quiet: an alert is about now."""
    if version_ids and window_end >= timezone.now().date() - timedelta(days=1):
        evaluated.send(sender=None, version_ids=sorted(version_ids), window_end=window_end)
