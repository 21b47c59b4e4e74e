"""Incidents build on a monitored deployment (tests/monitoring/engine/conftest.py); the cheap
``make_incident`` fixture serves the tests that do not need the monitoring engine."""

import itertools
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from incidents.models import Alert, Incident
from tests.factories import ModelVersionFactory, SiteFactory
from tests.monitoring.conftest import gate_setup  # noqa: F401
from tests.monitoring.engine.conftest import days_ago, monitored  # noqa: F401

_fingerprints = itertools.count()


@pytest.fixture
def make_incident(db):
    """A red data-quality incident with one alert, as ``attach_to_incidents`` leaves one: cheap,
    for the tests that do not need the monitoring engine."""
    version = ModelVersionFactory()
    sites = {}

    def make(
        number=1, *, severity="SEV2", band="red", status="triggered", site="NORTH",
        routed_role="data_engineer", commander=None, metric="missing_rate:lactate",
        is_drill=False,
    ):  # fmt: skip
        if site not in sites:
            sites[site] = SiteFactory(code=site)
        incident = Incident.objects.create(
            number=number, model=version.model, site=sites[site], slice_key=f"site={site}",
            title=f"{metric} at {site}", severity=severity, band=band, layer="data_quality",
            routed_role=routed_role, status=status, commander=commander, is_drill=is_drill,
            ack_deadline=timezone.now() + timedelta(hours=1),
        )  # fmt: skip
        Alert.objects.create(
            model=version.model, version=version, site=sites[site], slice_key=f"site={site}",
            metric=metric, layer="data_quality", fingerprint=f"{next(_fingerprints):064d}",
            band=band, worst_band=band, reason="confident", routed_role=routed_role,
            payload={"summary": f"{metric} is bad", "confidence": "sure",
                     "clinical_impact": "scores on incomplete data",
                     "recommended_response": "check the feed",
                     "links": {"metric": f"/monitoring/{version.model.slug}/metric/{metric}/"}},
            incident=incident, is_drill=is_drill,
        )  # fmt: skip
        return incident

    make.version = version
    return make


@pytest.fixture
def api(user_for):
    """``api("data_engineer")``: an API client logged in as that role's test user."""

    def client(role):
        c = APIClient()
        c.force_login(user_for(role))
        return c

    return client


@pytest.fixture
def page(user_for):
    """``page("viewer")``: a browser client logged in as that role's test user."""

    def client(role):
        c = Client()
        c.force_login(user_for(role))
        return c

    return client
