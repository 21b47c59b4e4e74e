"""Demo traffic: a few thousand predictions sent through the real gate, so the review queue,
and later the monitoring pages, have something to show.

Deterministic (a seeded generator, event ids from uuid5), so a second run replays the same
events and stores nothing new. Values are drawn from each version's own feature spec, with a
small share of missing and out-of-range inputs, as real feeds have.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from accounts.models import ServiceAccount
from monitoring.gate import PredictionIn, gate_predictions
from registry.models import ClinicalModel, Deployment, DeploymentMode

NAMESPACE = uuid.UUID("6f1d3c7e-8a1b-4f9e-9d35-2a4c1e0b7d11")
#: Predictions per live deployment, over the last DAYS days.
VOLUME = {"sepsis-ews": 900, "readmit-30d": 500, "noshow-outreach": 400}
DAYS = 21
MISSING_RATE, OUT_OF_RANGE_RATE = 0.002, 0.001


def _value(feature: Any, rng: random.Random) -> Any:
    if feature.dtype == "categorical":
        return rng.choice(feature.categories)
    if feature.dtype == "boolean":
        return rng.random() < 0.2
    low = feature.min_value if feature.min_value is not None else 0.0
    high = feature.max_value if feature.max_value is not None else low + 100.0
    if rng.random() < OUT_OF_RANGE_RATE:
        return round(high * 1.5 + 1, 1)  # an impossible value, as a broken interface sends
    # Most patients sit in the lower-middle of a physiological range.
    spread = high - low
    value = rng.triangular(low + 0.15 * spread, low + 0.6 * spread, low + 0.3 * spread)
    return round(value, 1) if isinstance(low, float) or isinstance(high, float) else int(value)


def _features(spec: list[Any], rng: random.Random) -> dict[str, Any]:
    features: dict[str, Any] = {}
    for feature in spec:
        if rng.random() < MISSING_RATE:
            continue  # the feed did not deliver it
        features[feature.name] = _value(feature, rng)
    return features


def _factors(spec: list[Any], rng: random.Random) -> list[dict[str, Any]]:
    """Three inputs with the largest (made-up) contributions, as explainers report them."""
    names = sorted(f.name for f in spec)
    chosen = rng.sample(names, k=min(3, len(names)))
    weights = sorted((round(rng.uniform(0.02, 0.2), 3) for _ in chosen), reverse=True)
    return [{"feature": n, "contribution": w} for n, w in zip(chosen, weights, strict=True)]


def _cohort(columns: list[Any], rng: random.Random) -> dict[str, str]:
    return {c.name: rng.choice(c.values) for c in columns if c.values}


def _items(deployment: Deployment, count: int, now: datetime) -> list[PredictionIn]:
    version = deployment.version
    spec, columns = list(version.features.order_by("name")), list(version.cohorts.order_by("name"))
    rng = random.Random(f"{deployment.model.slug}/{deployment.site.code}/{version.version}")
    start = max(deployment.started_at, now - timedelta(days=DAYS))
    span = (now - start).total_seconds()
    items = []
    for index in range(count):
        occurred = start + timedelta(seconds=span * (index + rng.random()) / count)
        score = min(max(rng.betavariate(1.3, 6.0), 0.0), 1.0)
        items.append(
            PredictionIn(
                event_id=uuid.uuid5(NAMESPACE, f"{deployment.pk}/{index}"),
                model=deployment.model.slug,
                site=deployment.site.code,
                occurred_at=occurred.replace(microsecond=0),
                case_key=f"demo-{deployment.site.code}-{rng.randrange(1, count // 3 + 2):05d}",
                features=_features(spec, rng),
                score=round(score, 4),
                confidence=round(0.97 - rng.random() ** 4 * 0.42, 3),  # ~3% below 0.6
                top_factors=_factors(spec, rng),
                cohort=_cohort(columns, rng),
                version=None,
            )
        )
    return items


def seed_predictions(
    *, write: Callable[[str], None], now: datetime | None = None
) -> dict[str, int]:
    """Send the demo traffic through the gate; returns how many were stored.

    Event ids depend only on the deployment and the index; the times depend on when the demo is
    seeded. So a deployment that already has its traffic is skipped as a whole (a resend would
    carry other times under the same ids, which the gate rightly refuses as conflicts).
    """
    moment = now or timezone.now()
    totals = {"stored": 0, "skipped": 0, "rejected": 0, "defer": 0}
    for model in ClinicalModel.objects.filter(slug__in=VOLUME).order_by("slug"):
        account = ServiceAccount.objects.filter(name=model.slug).first()
        if account is None:
            continue
        count = VOLUME[model.slug]
        deployments = Deployment.objects.filter(
            model=model, mode=DeploymentMode.LIVE, ended_at__isnull=True
        ).select_related("version", "site", "model")
        for deployment in deployments:
            if _already_seeded(deployment):
                totals["skipped"] += count
                continue
            for outcome in gate_predictions(
                account=account, items=_items(deployment, count, moment)
            ):
                if outcome.answer is None:
                    totals["rejected"] += 1
                else:
                    totals["stored"] += 1
                    totals["defer"] += outcome.answer.action == "defer"
            write(
                f"  sent     {count} predictions for {deployment.version} at {deployment.site.code}"
            )
    return totals


def _already_seeded(deployment: Deployment) -> bool:
    from monitoring.models import PredictionEvent

    first = uuid.uuid5(NAMESPACE, f"{deployment.pk}/0")
    return PredictionEvent.objects.filter(event_id=first).exists()
