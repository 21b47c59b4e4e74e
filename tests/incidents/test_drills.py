"""Tabletop drills run the real path without paging anyone or stopping a model, and never
count in the incident statistics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from incidents import services
from incidents.drills import incident_stats, start_drill
from incidents.models import Incident, Notification
from incidents.notify import deliver_due
from registry.models import Deployment
from tests.incidents.test_incidents import _week

pytestmark = pytest.mark.django_db


def test_a_drill_opens_a_routed_incident_but_pages_nobody_and_freezes_nothing(
    monitored, user_for, mailoutbox
):
    user_for("data_engineer")
    model = monitored.version.model
    model.risk_tier = "high"
    model.save()
    commander = user_for("incident_commander")
    with pytest.raises(PermissionDenied):
        start_drill(actor=user_for("viewer"), version=monitored.version, slice_key="site=NORTH",
                    metric="missing_rate:lactate", band="red", scenario="lab down")  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        start_drill(actor=commander, version=monitored.version, slice_key="site=MARS",
                    metric="nonsense", band="yellow", scenario="")  # fmt: skip
    assert set(caught.value.message_dict) == {"metric", "band", "scenario", "slice_key"}

    incident = start_drill(actor=commander, version=monitored.version, slice_key="site=NORTH",
                           metric="missing_rate:lactate", band="red",
                           scenario="The lab interface at NORTH stops")  # fmt: skip

    assert incident.is_drill and incident.severity == "SEV1"
    assert incident.routed_role == "data_engineer"
    assert incident.timeline.filter(kind="freeze_skipped").exists()
    assert not Deployment.objects.filter(frozen=True).exists()
    drills = Notification.objects.filter(incident=incident)
    assert drills.exists() and all(n.is_drill and n.recipient.startswith("drill:") for n in drills)
    deliver_due()
    assert mailoutbox == []
    # The drill is worked like any incident.
    services.transition(actor=commander, incident=incident, to="acknowledged")
    assert Incident.objects.get(pk=incident.pk).status == "acknowledged"


def test_statistics_measure_detection_and_response_and_leave_drills_out(
    monitored, days_ago, user_for
):
    from monitoring.runner import run_now

    _week(monitored, days_ago)
    run_now(actor=None, window_end=days_ago(0))
    incident = Incident.objects.get()
    commander = user_for("incident_commander")
    at = incident.triggered_at
    services.transition(actor=commander, incident=incident, to="acknowledged",
                        at=at + timedelta(minutes=30))  # fmt: skip
    services.transition(actor=commander, incident=incident, to="investigating",
                        at=at + timedelta(hours=1))  # fmt: skip
    services.transition(actor=commander, incident=incident, to="mitigated",
                        at=at + timedelta(hours=2))  # fmt: skip
    start_drill(actor=commander, version=monitored.version, slice_key="site=NORTH",
                metric="auc", band="orange", scenario="AUC falls")  # fmt: skip

    (row,) = incident_stats()
    assert row["model"] == "sepsis-ews" and row["incidents"] == 1
    assert row["acknowledge"] == {"n": 1, "median_hours": 0.5, "max_hours": 0.5}
    assert row["mitigate"]["median_hours"] == 2.0
    assert row["resolve"]["n"] == 0
    # Detection: from the window's first day (the earliest the harm could start) to the alert.
    assert 24 * 6 <= row["detect"]["median_hours"] <= 24 * 7 + 1
