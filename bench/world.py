"""The benchmarks' world: one deployed model with a realistic feature spec and policy, a site,
and a service account, created through the services on an empty database; plus the prediction
payloads every benchmark sends (deterministic, a mix of act and defer).

Usage (Django configured by the caller)::

    from bench import world
    token = world.seed()              # on an empty, migrated database; prints nothing
    body = world.prediction(i)        # the i-th payload, as the API takes it

Run by hand only; see docs/benchmarks.md.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

MODEL = "bench-sepsis"
SITE = "BENCH"
SERVICE = "bench-scorer"
#: Predictions are spread over the 30 days before this moment (all in the past, so never
#: "time_in_future"; the deployment starts long before).
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
NAMESPACE = uuid.UUID("6f1d8e52-3c0b-4b8e-9a57-0a5b2f0e6c11")

FEATURES: list[dict[str, Any]] = [
    {"name": "age", "dtype": "numeric", "min_value": 0, "max_value": 120},
    {"name": "heart_rate", "dtype": "numeric", "min_value": 20, "max_value": 250},
    {"name": "resp_rate", "dtype": "numeric", "min_value": 4, "max_value": 60},
    {"name": "temperature", "dtype": "numeric", "min_value": 30, "max_value": 43},
    {"name": "sbp", "dtype": "numeric", "min_value": 40, "max_value": 260},
    {"name": "spo2", "dtype": "numeric", "min_value": 50, "max_value": 100},
    {"name": "wbc", "dtype": "numeric", "min_value": 0, "max_value": 100},
    {
        "name": "lactate",
        "dtype": "numeric",
        "min_value": 0,
        "max_value": 30,
        "required": False,
        "missing_allowed": True,
    },
    {"name": "creatinine", "dtype": "numeric", "min_value": 0, "max_value": 20},
    {"name": "care_unit", "dtype": "categorical", "categories": ["ward", "icu", "ed"]},
    {"name": "on_dialysis", "dtype": "boolean", "required": False, "missing_allowed": True},
]
NUMERIC = [f for f in FEATURES if f["dtype"] == "numeric"]
COHORTS = [
    {"name": "age_band", "values": ["18-39", "40-64", "65+"]},
    {"name": "sex", "values": ["F", "M"]},
]


def seed() -> str:
    """Create the world on an empty, migrated database; return the service account's token."""
    from accounts.services import service_account_create
    from monitoring.models import DeferralPolicy
    from registry import services as registry
    from registry.models import ClinicalModel, ModelStatus, RiskTier

    owner = _owner()
    model = registry.model_register(
        actor=None,
        fields={
            "slug": MODEL,
            "name": "Benchmark sepsis early warning",
            "summary": "Benchmark model.",
            "intended_use": "Benchmarks only.",
            "intended_population": "Adults (18+) on inpatient wards.",
            "intended_setting": "Adult inpatient wards",
            "risk_tier": RiskTier.MODERATE,
            "status": ModelStatus.ACTIVE,
            "clinical_owner": owner,
            "technical_owner": owner,
            "contact": "bench@hospital.test",
        },
    )
    assert isinstance(model, ClinicalModel)
    version = registry.version_register(
        actor=None,
        model=model,
        fields={
            "version": "1.0.0",
            "artifact_uri": "s3://bench/1",
            "artifact_sha256": "b" * 64,
            "training_data_source": "EHR",
            "training_window_start": "2022-01-01",
            "training_window_end": "2022-12-31",
            "training_set_size": 100000,
            "label_definition": "sepsis within 48h",
            "decision_thresholds": {"alert": 0.6},
        },
        features=FEATURES,
        cohorts=COHORTS,
    )
    registry.version_transition(actor=None, version=version, to_status="candidate", reason="b")
    registry.version_transition(actor=None, version=version, to_status="approved", reason="b")
    site = registry.site_create(actor=None, code=SITE, name="Benchmark General")
    registry.deployment_start(
        actor=None,
        version=version,
        site=site,
        reason="benchmark",
        at=datetime(2020, 1, 1, tzinfo=UTC),
    )
    # No policy service exists yet; the benchmark needs one so every rule kind is evaluated.
    DeferralPolicy.objects.create(
        version=version,
        number=1,
        min_confidence=0.7,
        threshold_margin=0.02,
        population_exclusions=[
            {
                "code": "paediatric",
                "text": "age below 18",
                "condition": {"feature": "age", "op": "lt", "value": 18},
            }
        ],
        safety_rules=[
            {
                "code": "shock",
                "text": "systolic pressure below 70 on the ward",
                "condition": {
                    "all": [
                        {"feature": "sbp", "op": "lt", "value": 70},
                        {"feature": "care_unit", "op": "eq", "value": "ward"},
                    ]
                },
            }
        ],
        reason="benchmark policy",
    )
    issued = service_account_create(actor=None, name=SERVICE, model_slugs=[MODEL])
    return issued.token


def _owner() -> Any:
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="bench-owner", defaults={"email": "bench@hospital.test"}
    )
    return user


def prediction(index: int, *, run: str = "") -> dict[str, Any]:
    """The ``index``-th payload: deterministic for (index, run), about 1 in 8 deferred.

    ``run`` varies the event ids between runs against the same database.
    """
    rng = random.Random(f"{run}:{index}")
    features: dict[str, Any] = {
        "age": rng.randint(18, 95),
        "heart_rate": rng.randint(50, 150),
        "resp_rate": rng.randint(10, 35),
        "temperature": round(rng.uniform(35.5, 40.5), 1),
        "sbp": rng.randint(75, 180),
        "spo2": rng.randint(85, 100),
        "wbc": round(rng.uniform(2, 25), 1),
        "lactate": round(rng.uniform(0.5, 8), 1),
        "creatinine": round(rng.uniform(0.4, 6), 2),
        "care_unit": rng.choice(["ward", "ward", "ward", "icu", "ed"]),
        "on_dialysis": rng.random() < 0.05,
    }
    if rng.random() < 0.3:
        del features["lactate"]  # optional and often not measured
    if rng.random() < 0.03:
        features["heart_rate"] = 400  # out of range: stored and deferred
    score = round(rng.betavariate(2, 6), 4)
    age = features["age"]
    return {
        "event_id": str(uuid.uuid5(NAMESPACE, f"{run}:{index}")),
        "model": MODEL,
        "site": SITE,
        "occurred_at": (EPOCH - timedelta(seconds=30 * 24 * 3600 * rng.random())).isoformat(),
        "case_key": f"case-{rng.randint(1, 200_000):06d}",
        "features": features,
        "score": score,
        "confidence": round(rng.uniform(0.65, 0.99), 3),
        "top_factors": [{"feature": "heart_rate", "contribution": round(rng.random() / 5, 3)}],
        "cohort": {
            "age_band": "18-39" if age < 40 else "40-64" if age < 65 else "65+",
            "sex": rng.choice(["F", "M"]),
        },
    }
