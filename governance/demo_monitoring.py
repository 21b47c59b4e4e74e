"""The demo's monitoring: each deployed version's reference data (from the synthetic
hospital's pre-drift population) uploaded through the reference service, then every daily
profile built and every window evaluated, so the dashboards open on real bands.

Idempotent: a version that has a reference profile keeps it; a second run builds only what is
missing or stale and re-evaluates.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.utils import timezone

from governance import synthetic
from monitoring.models import MetricResult, ReferenceProfile
from monitoring.reference import reference_upload
from monitoring.runner import RunSummary, run_now
from registry.models import Deployment, ModelVersion


def seed_references(*, actor: Any, write: Callable[[str], None]) -> int:
    """Upload a reference profile for every deployed version without one; returns how many."""
    uploaded = 0
    versions = ModelVersion.objects.filter(
        pk__in=Deployment.objects.filter(ended_at__isnull=True).values("version_id")
    ).select_related("model")
    for version in versions.order_by("model__slug", "version"):
        if ReferenceProfile.objects.filter(version=version).exists():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{version.model.slug}-{version.version}-reference.csv"
            try:
                synthetic.write_reference_csv(version.model.slug, version.version, path)
            except KeyError:
                write(f"  no synthetic reference data for {version}: not monitored")
                continue
            profile = reference_upload(
                actor=actor,
                version=version,
                path=path,
                file_name=path.name,
                note="Synthetic pre-drift population (demo)",
            )
        uploaded += 1
        write(f"  reference profile #{profile.number} of {version}: {profile.row_count} rows")
    return uploaded


#: Earlier window ends evaluated too, a week apart, so the metric pages open on a trend that
#: shows when each scenario began.
TREND_WEEKS = 4


def seed_monitoring(*, actor: Any, write: Callable[[str], None]) -> RunSummary:
    uploaded = seed_references(actor=actor, write=write)
    today = timezone.now().date()
    if not uploaded and MetricResult.objects.filter(window_end=today).exists():
        # Already evaluated today: a second seed changes nothing (beat keeps it current).
        return RunSummary()
    for weeks in range(TREND_WEEKS, 0, -1):
        run_now(actor=None, window_end=today - timedelta(weeks=weeks), write=write)
    return run_now(actor=None, window_end=today, write=write)
