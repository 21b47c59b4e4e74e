"""Retention: expired prediction events are purged with their dependents unless a legal hold
keeps them; aggregates and the audit trail stay; the purge is audited; holds have a page."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import transaction
from django.db.models import ProtectedError
from django.urls import NoReverseMatch, include, path, reverse

from config import settings as config_settings
from config import urls as project_urls
from governance import retention, retention_urls
from governance import urls as governance_urls
from governance.audit.models import AuditEvent
from governance.models import LegalHold
from monitoring.models import (
    DailyProfile,
    Outcome,
    Override,
    PredictionEvent,
    ReviewCase,
    StaleDay,
)
from monitoring.outcomes import OutcomeIn, outcomes_record
from monitoring.profiles import build_day, days_to_build
from tests.monitoring.engine.conftest import Monitored, monitored, rows  # noqa: F401

# Until the project's URLconf includes the retention routes, the tests mount them beside it.
urlpatterns = [
    path(
        "governance/",
        include(([*retention_urls.urlpatterns, *governance_urls.urlpatterns], "governance")),
    ),
    *project_urls.urlpatterns,
]

KEEP = 400  # days, in these tests
TODAY = datetime.now(UTC).date()
OLD = TODAY - timedelta(days=500)
RECENT = TODAY - timedelta(days=10)


@pytest.fixture(autouse=True)
def mounted(settings: Any) -> None:
    try:
        reverse("governance:retention-holds")
    except NoReverseMatch:
        settings.ROOT_URLCONF = __name__


@pytest.fixture
def keep_days(settings: Any) -> Callable[[int], None]:
    def set_to(days: int) -> None:
        settings.VIGIL_RETENTION_DAYS = dict(settings.VIGIL_RETENTION_DAYS, prediction_event=days)

    set_to(KEEP)
    return set_to


@pytest.fixture
def holder(compliance: Any) -> Any:
    """The compliance officer, with the hold permission (until roles grant it)."""
    compliance.user_permissions.add(
        Permission.objects.get(codename="manage_legal_hold"),
        Permission.objects.get(codename="view_legalhold"),
    )
    return type(compliance).objects.get(pk=compliance.pk)  # fresh permission cache


@pytest.fixture
def traffic(monitored: Monitored, keep_days: Callable[[int], None]) -> Monitored:  # noqa: F811
    """Events at NORTH and SOUTH 500 days ago and at NORTH 10 days ago, each with an outcome
    (one corrected), an override and a deferred case; profiles built for every day."""
    keep_days(10_000)  # build every day's profiles first, as the daily beat did at the time
    monitored.upload_reference(n=400)
    for day, site, n in ((OLD, "NORTH", 4), (OLD, "SOUTH", 3), (RECENT, "NORTH", 5)):
        data = rows(n, seed=n)
        items = monitored.send(data, day=day, site=site, tag="t")
        monitored.label(items, data)
        first = items[0]
        outcomes_record(
            account=monitored.account,
            items=[OutcomeIn(label=1.0 - data[0]["label"], observed_at=first.occurred_at,
                             event_id=first.event_id, correction=True, note="lab error")],
        )  # fmt: skip
        _override(monitored, items[1])
        _deferred(monitored, day, site)
    for day in (OLD, RECENT):
        build_day(actor=None, version=monitored.version, day=day)
    keep_days(KEEP)
    return monitored


def _override(watched: Monitored, item: Any) -> None:
    response = watched.gate.client.post(
        "/api/v1/overrides/",
        {"event_id": str(item.event_id), "clinician_role": "charge nurse",
         "reason_code": "already_treated", "final_action": "no bundle",
         "occurred_at": (item.occurred_at + timedelta(minutes=5)).isoformat()},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()


def _deferred(watched: Monitored, day: Any, site: str) -> None:
    at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    body = watched.gate.payload(
        occurred_at=at.isoformat(), site=site, features={"age": 60, "heart_rate": 400,
                                                         "care_unit": "ward"}
    )  # fmt: skip
    response = watched.gate.client.post("/api/v1/predictions/", body, format="json")
    assert response.status_code == 201 and response.json()["action"] == "defer"


def expired() -> Any:
    return PredictionEvent.objects.filter(occurred_at__lt=retention.cutoff_of())


def snapshot() -> dict[str, int]:
    return {
        "events": PredictionEvent.objects.count(),
        "outcomes": Outcome.objects.count(),
        "overrides": Override.objects.count(),
        "cases": ReviewCase.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def profiles() -> list[tuple[Any, ...]]:
    return list(
        DailyProfile.objects.order_by("day", "slice_key").values_list(
            "day", "slice_key", "n_events", "content_hash", "built_at"
        )
    )


# --- the purge ------------------------------------------------------------------------------


def test_it_deletes_exactly_the_expired_events_and_their_dependents(traffic):
    old_ids = set(expired().values_list("pk", flat=True))
    recent = set(PredictionEvent.objects.exclude(pk__in=old_ids).values_list("pk", flat=True))
    assert len(old_ids) == 9 and len(recent) == 6
    old_outcomes = Outcome.objects.filter(event_id__in=old_ids).count()

    report = retention.purge_due()

    assert set(PredictionEvent.objects.values_list("pk", flat=True)) == recent
    assert not Outcome.objects.filter(event_id__in=old_ids).exists()
    assert not Override.objects.filter(event_id__in=old_ids).exists()
    assert not ReviewCase.objects.filter(event_id__in=old_ids).exists()
    assert not ReviewCase.history.filter(event_id__in=old_ids).exists()
    assert Outcome.objects.filter(event_id__in=recent).count() == 6  # 5 + one correction
    assert Override.objects.filter(event_id__in=recent).count() == 1
    assert ReviewCase.objects.filter(event_id__in=recent).count() == 1
    assert report.deleted == {
        "prediction_event": 9, "outcome": old_outcomes, "override": 2, "review_case": 2,
    }  # fmt: skip


def test_it_works_in_chunks(traffic):
    report = retention.purge_due(chunk=2)
    assert report.chunks == 5 and report.deleted["prediction_event"] == 9
    assert not expired().exists()


def test_a_hold_on_a_model_keeps_its_events_until_released(traffic, holder):
    hold = retention.hold_place(
        actor=holder, model=traffic.version.model, site=None, reason="litigation notice 2026-14"
    )
    before = snapshot()

    report = retention.purge_due()

    assert report.deleted["prediction_event"] == 0
    assert report.held_events == 9 and report.holds == [hold.pk]
    assert snapshot()["events"] == before["events"]

    retention.hold_release(actor=holder, hold=hold, reason="case settled, counsel agreed")
    assert retention.purge_due().deleted["prediction_event"] == 9


def test_a_hold_on_a_site_keeps_only_that_sites_events(traffic, holder):
    retention.hold_place(actor=holder, model=None, site=traffic.south, reason="regulator inquiry")

    report = retention.purge_due()

    assert report.deleted["prediction_event"] == 5 and report.held_events == 4
    assert {e.site.code for e in expired()} == {"SOUTH"}
    assert Outcome.objects.filter(event__in=expired()).count() == 4  # 3 + one correction


def test_a_hold_on_everything_keeps_everything(traffic, holder):
    retention.hold_place(actor=holder, model=None, site=None, reason="system-wide litigation")
    assert retention.purge_due().deleted["prediction_event"] == 0
    assert expired().count() == 9


def test_aggregates_are_untouched_and_purged_days_never_rebuilt(traffic):
    stored = profiles()
    assert {row[0] for row in stored} == {OLD, RECENT}

    retention.purge_due()

    assert profiles() == stored
    assert not StaleDay.objects.exists()
    # Even a stale mark on a purged day never rebuilds it into an empty profile.
    StaleDay.objects.create(version=traffic.version, day=OLD, reason="late outcome")
    assert OLD not in days_to_build(traffic.version, until=TODAY, lookback_days=600)
    built = build_day(actor=None, version=traffic.version, day=OLD)
    assert built.skipped.startswith("past retention") and built.events == 0
    assert profiles() == stored


def test_it_records_one_audit_event_with_counts_and_no_case_data(traffic, holder):
    hold = retention.hold_place(
        actor=holder, model=None, site=traffic.south, reason="regulator inquiry"
    )
    keys = set(PredictionEvent.objects.values_list("case_key_hash", flat=True))
    event_ids = {str(e) for e in PredictionEvent.objects.values_list("event_id", flat=True)}
    start = AuditEvent.objects.order_by("-seq").first().seq

    retention.purge_due()

    [event] = AuditEvent.objects.filter(seq__gt=start)
    assert event.action == "retention.purge" and event.actor_label == "system"
    assert event.payload["deleted"]["prediction_event"] == 5
    assert event.payload["held_events"] == 4 and event.payload["holds"] == [hold.pk]
    assert event.payload["retention_days"] == KEEP
    text = json.dumps(event.payload) + event.summary
    assert not any(k in text for k in keys) and not any(e in text for e in event_ids)
    assert retention.last_purge() == event


def test_a_dry_run_counts_and_changes_nothing(traffic):
    before, stored = snapshot(), profiles()

    dry = retention.purge_due(dry_run=True)

    assert snapshot() == before and profiles() == stored
    assert dry.deleted["prediction_event"] == 9
    assert retention.purge_due().deleted == dry.deleted


def test_nothing_within_retention_is_touched(traffic, keep_days):
    keep_days(10_000)
    before = snapshot()
    assert retention.purge_due().deleted["prediction_event"] == 0
    assert snapshot()["events"] == before["events"]


def test_the_command_runs_the_purge_and_its_dry_run(traffic):
    out = StringIO()
    call_command("purge_expired", "--dry-run", stdout=out)
    assert "would delete: 9 prediction events" in out.getvalue()
    assert "nothing was changed" in out.getvalue() and expired().count() == 9
    out = StringIO()
    call_command("purge_expired", stdout=out)
    assert "deleted: 9 prediction events" in out.getvalue() and not expired().exists()


def test_the_task_runs_the_purge(traffic):
    from governance.retention_tasks import purge_expired

    result = purge_expired.delay().get()
    assert result["deleted"]["prediction_event"] == 9


def test_events_are_deleted_only_by_the_purge(traffic):
    retention.connect_delete_guard()
    try:
        with pytest.raises((TypeError, ProtectedError)), transaction.atomic():
            PredictionEvent.objects.filter(pk__in=expired().values("pk")[:1]).delete()
        with pytest.raises(TypeError, match="retention purge"), transaction.atomic():
            Override.objects.first().delete()
        with pytest.raises(TypeError, match="retention purge"), transaction.atomic():
            ReviewCase.objects.all().delete()
        assert Override.objects.count() == 3 and ReviewCase.objects.count() == 3
        assert retention.purge_due().deleted["prediction_event"] == 9
    finally:
        retention.disconnect_delete_guard()


def test_the_purge_knows_every_record_that_refers_to_an_event():
    # A new relation to an event (or its outcome, override, case) must be decided: delete it
    # with the event (add it to DEPENDENTS) or let it keep the event (the default).
    found = {
        (r.related_model._meta.label, r.field.name)
        for model in (PredictionEvent, Outcome, Override, ReviewCase)
        for r in model._meta.related_objects
    }
    assert found == retention.DEPENDENTS


# --- holds ----------------------------------------------------------------------------------


def test_holds_need_the_permission_and_a_reason(traffic, holder, ml_engineer):
    with pytest.raises(PermissionDenied):
        retention.hold_place(actor=ml_engineer, model=None, site=None, reason="because I can")
    with pytest.raises(ValidationError) as exc:
        retention.hold_place(actor=holder, model=None, site=None, reason="  ")
    assert "reason" in exc.value.message_dict
    hold = retention.hold_place(actor=holder, model=None, site=None, reason="audit by the state")
    with pytest.raises(ValidationError):
        retention.hold_place(actor=holder, model=None, site=None, reason="the same scope again")
    retention.hold_release(actor=holder, hold=hold, reason="audit closed by letter")
    with pytest.raises(ValidationError):
        retention.hold_release(actor=holder, hold=hold, reason="audit closed by letter")
    actions = list(
        AuditEvent.objects.filter(action__startswith="retention.hold").values_list(
            "action", flat=True
        )
    )
    assert actions == ["retention.hold_placed", "retention.hold_released"]
    assert LegalHold.history.filter(id=hold.pk).count() == 2


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "days"),
    [("governance", 6 * 365 - 1), ("audit", 365), ("prediction_event", 7)],
)
def test_it_refuses_retention_below_the_minimum(kind, days):
    periods = {"prediction_event": 2557, "governance": 3653, "audit": 3653, kind: days}
    with pytest.raises(ImproperlyConfigured, match=kind.upper()):
        config_settings.retention_days(periods)


def test_it_accepts_six_years_for_governance_records():
    periods = {"prediction_event": 365, "governance": 2190, "audit": 2190}
    assert config_settings.retention_days(periods) == periods


# --- the page -------------------------------------------------------------------------------


def test_the_page_shows_periods_holds_and_the_last_purge(traffic, holder, client_for):
    retention.hold_place(actor=holder, model=None, site=traffic.south, reason="regulator inquiry")
    retention.purge_due()
    client = client_for("compliance_officer")
    html = client.get(reverse("governance:retention-holds")).content.decode()
    assert f"{KEEP} days" in html and "every model at SOUTH" in html
    assert "5 prediction events" in html and "4 under 1 legal hold" in html


def test_the_page_places_and_releases_a_hold_with_a_reason(traffic, holder, client_for):
    client = client_for("compliance_officer")
    url = reverse("governance:retention-holds")
    refused = client.post(url, {"model": traffic.version.model.pk, "reason": "x"})
    assert refused.status_code == 400 and "at least 10" in refused.content.decode()
    placed = client.post(url, {"model": traffic.version.model.pk, "reason": "litigation notice"})
    assert placed.status_code == 302
    hold = LegalHold.objects.get()
    assert hold.model == traffic.version.model and hold.site is None

    release = reverse("governance:retention-hold-release", args=[hold.pk])
    assert client.post(release, {"release_reason": ""}).status_code == 400
    assert client.post(release, {"release_reason": "case settled"}).status_code == 302
    hold.refresh_from_db()
    assert not hold.is_active and hold.release_reason == "case settled"


def test_the_page_refuses_other_roles(traffic, holder, client_for):
    url = reverse("governance:retention-holds")
    assert client_for("ml_engineer").get(url).status_code == 403
    assert client_for("ml_engineer").post(url, {"reason": "litigation notice"}).status_code == 403
    assert not LegalHold.objects.exists()
