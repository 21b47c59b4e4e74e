import pytest

from monitoring.models import PredictionEvent, ReviewCase

pytestmark = pytest.mark.django_db


def test_it_acts_on_a_clean_case_and_defers_a_bad_one(gate_setup):
    clean = gate_setup.post()
    assert clean.status_code == 201, clean.json()
    assert clean.json()["action"] == "act"
    bad = gate_setup.post(features={"age": 64, "heart_rate": 400, "care_unit": "ward"})
    assert bad.status_code == 201 and bad.json()["action"] == "defer"
    assert bad.json()["review_case_id"] == ReviewCase.objects.get().pk
    assert PredictionEvent.objects.count() == 2
