import pytest

from governance.audit.models import AuditEvent
from registry import services
from tests.factories import ClinicalModelFactory


@pytest.mark.django_db
def test_it_registers_a_version_with_features_and_audits(ml_engineer):
    model = ClinicalModelFactory()
    version = services.version_register(
        actor=ml_engineer, model=model,
        fields=dict(version="2.0.0", artifact_uri="s3://x", artifact_sha256="b" * 64,
                    training_data_source="EHR", training_window_start="2022-01-01",
                    training_window_end="2022-12-31", training_set_size=10, label_definition="x"),
        features=[{"name": "heart_rate", "dtype": "numeric", "min_value": 0, "max_value": 300}],
    )
    assert version.features.count() == 1
    assert AuditEvent.objects.filter(action="version.register", object_id=str(version.pk)).exists()
    assert version.history.first().history_user == ml_engineer
