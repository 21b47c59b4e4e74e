"""No change to a governed record escapes its history."""

from __future__ import annotations

import pytest

from governance.audit.governed import UnrecordedWriteError
from registry import models as rm
from registry import services
from tests.factories import ClinicalModelFactory, ModelVersionFactory, SiteFactory

pytestmark = pytest.mark.django_db

GOVERNED = [
    rm.ClinicalModel,
    rm.ModelVersion,
    rm.FeatureSpec,
    rm.CohortColumn,
    rm.DataFeed,
    rm.Site,
    rm.Deployment,
]


@pytest.mark.parametrize("model", GOVERNED, ids=lambda m: m.__name__)
def test_it_refuses_unrecorded_bulk_writes(model):
    with pytest.raises(TypeError):
        model.objects.all().update(pk=1)
    with pytest.raises(TypeError):
        model.objects.bulk_create([model()])
    with pytest.raises(TypeError):
        model.objects.bulk_update([], ["pk"])
    # The base manager (used by related lookups) is guarded too.
    with pytest.raises(TypeError):
        model._base_manager.all().update(pk=1)


def test_every_registry_model_has_history():
    for model in GOVERNED:
        assert hasattr(model, "history"), model


def test_an_update_is_recorded_with_actor_and_reason(ml_engineer):
    model = ClinicalModelFactory(risk_tier="low")
    services.model_update(
        actor=ml_engineer, model=model, fields={"risk_tier": "high"}, reason="ICU use approved"
    )
    latest = model.history.first()
    assert latest.risk_tier == "high"
    assert latest.history_user == ml_engineer
    assert latest.history_change_reason == "ICU use approved"
    assert latest.diff_against(latest.prev_record).changed_fields == ["risk_tier"]


def test_a_deployment_is_never_overwritten(director):
    first = ModelVersionFactory()
    second = ModelVersionFactory(model=first.model)
    site = SiteFactory(code="NORTH")
    old = services.deployment_start(actor=director, version=first, site=site, reason="go-live")
    services.deployment_start(actor=director, version=second, site=site, reason="retrain")
    old.refresh_from_db()
    assert old.version == first and old.ended_at is not None
    old.version = second
    with pytest.raises(TypeError):
        old.save()
    assert rm.Deployment.objects.filter(model=first.model, site=site).count() == 2


def test_governed_error_says_how_to_write():
    with pytest.raises(UnrecordedWriteError, match="service"):
        rm.Site.objects.update(name="x")
