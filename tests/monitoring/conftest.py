"""A deployed model ready for the gate: version with a feature spec, a live deployment at NORTH,
a service account token scoped to it, and a builder of valid prediction payloads."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import service_account_create
from registry import services as registry
from registry.models import Deployment, ModelVersion, Site
from tests.factories import ClinicalModelFactory, ModelVersionFactory, SiteFactory

FEATURES = [
    {"name": "age", "dtype": "numeric", "min_value": 0, "max_value": 120},
    {"name": "heart_rate", "dtype": "numeric", "min_value": 20, "max_value": 250, "unit": "bpm"},
    {
        "name": "lactate",
        "dtype": "numeric",
        "min_value": 0,
        "max_value": 30,
        "required": False,
        "missing_allowed": True,
    },
    {"name": "care_unit", "dtype": "categorical", "categories": ["ward", "icu", "ed"]},
    {"name": "on_dialysis", "dtype": "boolean", "required": False, "missing_allowed": True},
]


def register_approved(
    *,
    model: Any,
    number: str,
    engineer: Any,
    director: Any,
    thresholds: dict[str, float] | None = None,
) -> ModelVersion:
    """A version of ``model`` with the gate's feature spec, registered and approved."""
    version = registry.version_register(
        actor=engineer,
        model=model,
        fields={
            "version": number,
            "artifact_uri": f"s3://m/{number}",
            "artifact_sha256": "d" * 64,
            "training_data_source": "EHR",
            "training_window_start": "2022-01-01",
            "training_window_end": "2022-12-31",
            "training_set_size": 1000,
            "label_definition": "sepsis within 48h",
            "decision_thresholds": thresholds or {},
        },
        features=FEATURES,
        cohorts=[
            {"name": "age_band", "values": ["18-39", "40-64", "65+"]},
            {"name": "sex", "values": ["F", "M"]},
        ],
    )
    registry.version_transition(actor=engineer, version=version, to_status="candidate", reason="x")
    registry.version_transition(actor=director, version=version, to_status="approved", reason="x")
    return version


@dataclass
class Gate:
    version: ModelVersion
    site: Site
    deployment: Deployment
    token: str
    client: APIClient
    director: Any
    engineer: Any

    def deploy(
        self,
        number: str,
        *,
        mode: str = "live",
        at: datetime,
        thresholds: dict[str, float] | None = None,
    ) -> Deployment:
        """Another version of the gate's model, approved and started at the gate's site."""
        version = register_approved(
            model=self.version.model,
            number=number,
            engineer=self.engineer,
            director=self.director,
            thresholds=thresholds,
        )
        return registry.deployment_start(
            actor=self.director,
            version=version,
            site=self.site,
            mode=mode,
            at=at,
            reason="shadow trial" if mode == "shadow" else "retrain",
        )

    def payload(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "model": self.version.model.slug,
            "site": self.site.code,
            "occurred_at": timezone.now().isoformat(),
            "case_key": "case-0001",
            "features": {"age": 64, "heart_rate": 112, "lactate": 2.1, "care_unit": "ward"},
            "score": 0.31,
            "confidence": 0.92,
            "top_factors": [{"feature": "heart_rate", "contribution": 0.12}],
            "cohort": {"age_band": "40-64", "sex": "F"},
        }
        body.update(overrides)
        return body

    def post(self, **overrides: Any) -> Any:
        return self.client.post("/api/v1/predictions/", self.payload(**overrides), format="json")


@pytest.fixture
def gate_setup(db: None, director: Any, ml_engineer: Any) -> Gate:
    model = ClinicalModelFactory(slug="sepsis-ews", name="Sepsis early warning")
    version = register_approved(
        model=model,
        number="1.0.0",
        engineer=ml_engineer,
        director=director,
        thresholds={"alert": 0.6},
    )
    site = SiteFactory(code="NORTH", name="North General")
    deployment = registry.deployment_start(
        actor=director,
        version=version,
        site=site,
        reason="go-live",
        at=datetime(2020, 1, 1, tzinfo=UTC),
    )
    issued = service_account_create(actor=None, name="sepsis-scorer", model_slugs=["sepsis-ews"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    return Gate(
        version=version,
        site=site,
        deployment=deployment,
        token=issued.token,
        client=client,
        director=director,
        engineer=ml_engineer,
    )


@pytest.fixture
def other_model_version(db: None) -> Callable[[], ModelVersion]:
    def make() -> ModelVersion:
        return ModelVersionFactory(model=ClinicalModelFactory(slug="readmit-30d"))

    return make


def ago(**kwargs: float) -> str:
    return (timezone.now() - timedelta(**kwargs)).isoformat()
