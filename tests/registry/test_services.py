import pytest

from governance.audit.models import AuditEvent
from registry import services
from tests.factories import ClinicalModelFactory


@pytest.mark.django_db
def test_it_registers_a_version_with_features_and_audits(ml_engineer):
    model = ClinicalModelFactory()
    version = services.version_register(
        actor=ml_engineer,
        model=model,
        fields=dict(
            version="2.0.0",
            artifact_uri="s3://x",
            artifact_sha256="b" * 64,
            training_data_source="EHR",
            training_window_start="2022-01-01",
            training_window_end="2022-12-31",
            training_set_size=10,
            label_definition="x",
        ),
        features=[{"name": "heart_rate", "dtype": "numeric", "min_value": 0, "max_value": 300}],
    )
    assert version.features.count() == 1
    assert AuditEvent.objects.filter(action="version.register", object_id=str(version.pk)).exists()
    assert version.history.first().history_user == ml_engineer


@pytest.mark.django_db
def test_only_a_medical_director_approves_a_version(ml_engineer, director):
    from django.core.exceptions import PermissionDenied

    from tests.factories import ModelVersionFactory

    version = ModelVersionFactory(status="candidate")
    with pytest.raises(PermissionDenied):
        services.version_transition(
            actor=ml_engineer, version=version, to_status="approved", reason="ok"
        )
    version.refresh_from_db()
    assert version.status == "candidate"
    services.version_transition(
        actor=director, version=version, to_status="approved", reason="committee"
    )
    version.refresh_from_db()
    assert version.status == "approved"


@pytest.mark.django_db
def test_a_superseded_version_returns_to_approved_for_rollback(director):
    from tests.factories import ModelVersionFactory, SiteFactory

    first = ModelVersionFactory()
    second = ModelVersionFactory(model=first.model)
    site = SiteFactory(code="NORTH")
    services.deployment_start(actor=director, version=first, site=site, reason="go-live")
    first.refresh_from_db()
    assert first.status == "deployed"
    services.deployment_start(actor=director, version=second, site=site, reason="retrain")
    first.refresh_from_db()
    assert first.status == "approved" and first.is_deployable()


@pytest.mark.django_db
def test_reserved_slugs_are_refused(ml_engineer):
    from django.core.exceptions import ValidationError

    from tests.factories import UserFactory

    owner = UserFactory()
    with pytest.raises(ValidationError) as exc:
        services.model_register(
            actor=ml_engineer,
            fields=dict(
                slug="live",
                name="x",
                summary="x",
                intended_use="x",
                intended_population="x",
                intended_setting="x",
                risk_tier="low",
                clinical_owner=owner,
                technical_owner=owner,
                contact="a@b.org",
            ),
        )
    assert "reserved" in str(exc.value.message_dict["slug"])
