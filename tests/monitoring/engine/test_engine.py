"""Daily profiles and window evaluation on traffic sent through the real gate."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from governance.audit.models import AuditEvent
from monitoring.evaluation import evaluate
from monitoring.models import DailyProfile, MetricResult, MonitorPolicy, PredictionEvent, StaleDay
from monitoring.profiles import build_day, days_to_build
from monitoring.runner import run_now
from monitoring.tasks import monitor
from monitoring.thresholds import METRICS, band_of, thresholds_for
from tests.monitoring.engine.conftest import rows

pytestmark = pytest.mark.django_db


def test_a_day_is_profiled_for_every_slice_and_the_slices_add_up(monitored, days_ago):
    monitored.upload_reference(n=600)
    day = days_ago(3)
    north = rows(120, seed=11)
    items = monitored.send(north, day=day, site="NORTH")
    monitored.label(items[:100], north[:100])
    monitored.send(rows(80, seed=12), day=day, site="SOUTH")

    built = build_day(actor=None, version=monitored.version, day=day)

    assert built.events == 200
    profiles = {p.slice_key: p for p in DailyProfile.objects.filter(day=day)}
    assert {"all", "site=NORTH", "site=SOUTH", "sex=F", "sex=M"} <= set(profiles)
    assert profiles["all"].n_events == 200
    assert profiles["site=NORTH"].n_events == 120 and profiles["site=SOUTH"].n_events == 80
    assert profiles["sex=F"].n_events + profiles["sex=M"].n_events == 200
    whole = profiles["all"].data
    counts = whole["score"]["count"]
    assert sum(counts[0]) + sum(counts[1]) == 100  # labelled
    assert sum(counts[2]) == 100  # still waiting for an outcome
    assert sum(counts[1]) == sum(r["label"] for r in north[:100])
    assert sum(whole["features"]["heart_rate"]["counts"]) == 200
    assert whole["actions"]["act"] + whole["actions"]["defer"] == 200
    assert profiles["site=NORTH"].site.code == "NORTH"


def test_rebuilding_a_day_gives_identical_rows(monitored, days_ago):
    monitored.upload_reference(n=400)
    day = days_ago(2)
    data = rows(60, seed=13)
    monitored.label(monitored.send(data, day=day), data)
    build_day(actor=None, version=monitored.version, day=day)
    first = dict(DailyProfile.objects.filter(day=day).values_list("slice_key", "content_hash"))

    again = build_day(actor=None, version=monitored.version, day=day)

    assert not again.changed
    assert dict(DailyProfile.objects.filter(day=day).values_list("slice_key", "content_hash")) == (
        first
    )
    assert AuditEvent.objects.filter(action="monitoring.profile_built").count() == 2


def test_a_day_read_in_small_chunks_gives_the_same_profiles(monitored, days_ago, monkeypatch):
    """A big day is read and binned in chunks (flat memory); the chunks' profiles add up to
    exactly the profile of the whole day."""
    monitored.upload_reference(n=400)
    day = days_ago(2)
    data = rows(90, seed=18)
    monitored.label(monitored.send(data, day=day), data)
    monitored.send(rows(40, seed=19), day=day, site="SOUTH")
    build_day(actor=None, version=monitored.version, day=day)
    whole = {p.slice_key: p.data for p in DailyProfile.objects.filter(day=day)}

    monkeypatch.setattr("monitoring.profiles.CHUNK", 7)
    build_day(actor=None, version=monitored.version, day=day)

    chunked = {p.slice_key: p.data for p in DailyProfile.objects.filter(day=day)}
    assert chunked.keys() == whole.keys()
    for key, data in whole.items():
        assert chunked[key]["n"] == data["n"]
        for name, entry in data["features"].items():
            mine = chunked[key]["features"][name]
            assert {k: v for k, v in mine.items() if k != "sums"} == {
                k: v for k, v in entry.items() if k != "sums"
            }
            assert mine.get("sums", []) == pytest.approx(entry.get("sums", []))
        assert chunked[key]["score"]["count"] == data["score"]["count"]
        assert chunked[key]["actions"] == data["actions"]
        assert chunked[key]["last_seen"] == data["last_seen"]


def test_a_late_outcome_marks_its_day_for_rebuild(monitored, days_ago):
    monitored.upload_reference(n=400)
    day = days_ago(4)
    data = rows(50, seed=14)
    items = monitored.send(data, day=day)
    build_day(actor=None, version=monitored.version, day=day)
    assert day not in days_to_build(monitored.version, until=days_ago(0), lookback_days=30)

    monitored.label(items, data)

    assert StaleDay.objects.filter(version=monitored.version, day=day).exists()
    assert day in days_to_build(monitored.version, until=days_ago(0), lookback_days=30)
    build_day(actor=None, version=monitored.version, day=day)
    counts = DailyProfile.objects.get(day=day, slice_key="all").data["score"]["count"]
    assert sum(counts[0]) + sum(counts[1]) == 50
    assert not StaleDay.objects.exists()


def _results(**filters):
    return {
        (r.slice_key, r.metric): r for r in MetricResult.objects.filter(window_days=7, **filters)
    }


def test_drift_and_missingness_are_flagged_where_injected_and_nowhere_else(monitored, days_ago):
    """SOUTH's heart rates run 25 bpm higher and its lactate feed drops most values; NORTH is
    the reference population. A week of traffic at each."""
    monitored.upload_reference(n=3000)
    MonitorPolicy.objects.create(
        model=monitored.version.model,
        windows=[7],
        reason="test",
        updated_by=monitored.gate.engineer,
    )
    north_events = 0
    for back in range(1, 8):
        day = days_ago(back)
        north = rows(160, seed=100 + back)
        north_events += sum(r["label"] for r in north)
        monitored.label(monitored.send(north, day=day, site="NORTH"), north)
        south = rows(110, seed=200 + back, hr_shift=25, lactate_missing=0.6)
        monitored.label(monitored.send(south, day=day, site="SOUTH"), south)

    summary = run_now(actor=None, window_end=days_ago(1))

    assert summary.built_days == 7 and summary.evaluations == 3  # all+cohorts, NORTH, SOUTH
    results = _results()
    south_hr = results[("site=SOUTH", "psi:heart_rate")]
    assert south_hr.band == "red" and south_hr.clears_threshold and south_hr.n == 770
    assert results[("site=SOUTH", "missing_rate:lactate")].band == "red"
    assert results[("site=SOUTH", "missing_rate:lactate")].value == pytest.approx(0.6, abs=0.06)
    assert results[("site=SOUTH", "ks:heart_rate")].band == "red"
    for metric in ("psi:heart_rate", "missing_rate:lactate", "ks:heart_rate", "psi:age",
                   "psi:care_unit", "chi_square:care_unit", "calibration_oe"):  # fmt: skip
        assert results[("site=NORTH", metric)].band == "green", metric
    for metric in ("psi:age", "psi:care_unit", "missing_rate:age"):
        assert results[("site=SOUTH", metric)].band == "green", metric
    # NORTH is the reference population: nothing there may be worse than green.
    flagged = {k[1]: r.band for k, r in results.items() if k[0] == "site=NORTH"}
    assert {m: b for m, b in flagged.items() if b not in ("green", "insufficient")} == {}
    # Discrimination and calibration are decided on enough outcome events (the rarer class).
    north_auc = results[("site=NORTH", "auc")]
    assert north_auc.band == "green" and north_auc.n == north_events >= 100
    assert north_auc.low < north_auc.value < north_auc.high
    assert north_auc.baseline == pytest.approx(north_auc.value, abs=0.06)


def test_a_small_sample_is_insufficient_never_a_guess(monitored, days_ago):
    monitored.upload_reference(n=400)
    data = rows(40, seed=15, hr_shift=60)
    monitored.label(monitored.send(data, day=days_ago(1)), data)
    run_now(actor=None, window_end=days_ago(1))
    results = _results(slice_key="site=NORTH")
    for metric in ("auc", "calibration_oe", "psi:heart_rate", "override_rate"):
        assert results[("site=NORTH", metric)].band == "insufficient", metric
        assert results[("site=NORTH", metric)].n < METRICS[metric.partition(":")[0]].min_n


def test_a_policy_override_changes_the_band(monitored, days_ago):
    monitored.upload_reference(n=2000)
    for back in range(1, 4):
        data = rows(100, seed=300 + back, hr_shift=3)
        monitored.send(data, day=days_ago(back))
    run_now(actor=None, window_end=days_ago(1))
    before = _results(slice_key="site=NORTH")[("site=NORTH", "psi:heart_rate")]
    MonitorPolicy.objects.create(
        model=monitored.version.model,
        windows=[7, 30],
        thresholds={"psi": {"yellow": 0.01, "orange": 0.02, "red": 0.03}},
        reason="stricter",
        updated_by=monitored.gate.engineer,
    )
    evaluate(
        actor=None, version=monitored.version, window_end=days_ago(1), site=monitored.gate.site
    )
    after = _results(slice_key="site=NORTH")[("site=NORTH", "psi:heart_rate")]
    assert after.value == pytest.approx(before.value)
    assert after.band == "red" and before.band != "red"
    # Deployed years ago and not a high tier: the policy's own numbers, untightened.
    assert monitored.version.model.risk_tier not in ("high", "critical")
    assert after.thresholds["red"] == pytest.approx(0.03)
    assert after.details["tightened"] == {
        "tier": monitored.version.model.risk_tier,
        "launch": False,
    }


def test_thresholds_tighten_for_high_tiers_and_new_launches():
    psi = METRICS["psi"]
    assert thresholds_for(psi) == {"yellow": 0.1, "orange": 0.2, "red": 0.25}
    high = thresholds_for(psi, tier="high")
    assert high["red"] == pytest.approx(0.2)
    both = thresholds_for(psi, tier="critical", in_launch=True)
    assert both["yellow"] == pytest.approx(0.064)
    assert band_of(0.22, thresholds_for(psi)) == "orange"
    assert band_of(0.22, high) == "red"


def test_the_command_builds_and_evaluates_and_refuses_bad_arguments(monitored, days_ago):
    monitored.upload_reference(n=400)
    monitored.send(rows(30, seed=16), day=days_ago(1))
    out = StringIO()
    call_command("evaluate_monitors", "--model", "sepsis-ews", stdout=out)
    assert "Built 2 daily profile(s) from 30 events" not in out.getvalue()  # one day only
    assert "Built 1 daily profile(s) from 30 events; 3 evaluation(s)" in out.getvalue()
    assert MetricResult.objects.filter(window_days=30).exists()
    with pytest.raises(CommandError, match="no such model"):
        call_command("evaluate_monitors", "--model", "nope")
    with pytest.raises(CommandError, match="use YYYY-MM-DD"):
        call_command("evaluate_monitors", "--date", "27/11/2026")
    with pytest.raises(CommandError, match="in the future"):
        call_command("evaluate_monitors", "--date", "2999-01-01")


def test_the_scheduled_task_builds_then_evaluates(monitored, days_ago):
    monitored.upload_reference(n=400)
    monitored.send(rows(30, seed=17), day=days_ago(0))
    planned = monitor.delay().get()
    assert planned == {"builds": 1, "evaluations": 3}
    assert DailyProfile.objects.filter(day=days_ago(0), slice_key="all").exists()
    assert MetricResult.objects.filter(window_end=days_ago(0), slice_key="site=NORTH").exists()


def test_sequential_charts_catch_more_events_than_predicted_where_it_happens(monitored, days_ago):
    """NORTH's outcomes run at twice the predicted odds; SOUTH's follow the scores."""
    monitored.upload_reference(n=1500)
    for back in range(1, 8):
        north = rows(150, seed=800 + back, event_rate_shift=0.9)
        monitored.label(monitored.send(north, day=days_ago(back), site="NORTH"), north)
        south = rows(150, seed=900 + back)
        monitored.label(monitored.send(south, day=days_ago(back), site="SOUTH"), south)
    run_now(actor=None, window_end=days_ago(1))
    results = _results()
    north = results[("site=NORTH", "cusum_calibration_up")]
    assert north.band == "red" and north.value >= 1.0
    assert north.details["alarm_day_index"] is not None
    assert len(north.details["path"]) == 7
    assert results[("site=SOUTH", "cusum_calibration_up")].band in ("green", "insufficient")
    assert results[("site=NORTH", "cusum_calibration_down")].band == "green"


def test_an_event_at_exactly_midnight_belongs_to_the_day_it_starts(monitored, days_ago):
    """The day's read and its outcome join must agree on the boundary (SQLite compares text)."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from monitoring.gate import PredictionIn, gate_predictions
    from monitoring.outcomes import OutcomeIn, outcomes_record

    monitored.upload_reference(n=400)
    day = days_ago(2)
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    item = PredictionIn(
        event_id=uuid.uuid4(), model="sepsis-ews", site="NORTH", occurred_at=midnight,
        case_key="case-midnight", features={"age": 70, "heart_rate": 90, "care_unit": "ward"},
        score=0.2, confidence=0.9, cohort={"sex": "F"},
    )  # fmt: skip
    assert gate_predictions(account=monitored.account, items=[item])[0].answer is not None
    outcomes_record(
        account=monitored.account,
        items=[
            OutcomeIn(label=1.0, observed_at=midnight + timedelta(hours=2), event_id=item.event_id)
        ],
    )
    build_day(actor=None, version=monitored.version, day=day)
    whole = DailyProfile.objects.get(day=day, slice_key="all").data
    assert whole["n"] == 1 and sum(whole["score"]["count"][1]) == 1
    build_day(actor=None, version=monitored.version, day=day - timedelta(days=1))
    assert DailyProfile.objects.get(day=day - timedelta(days=1), slice_key="all").data["n"] == 0


def test_override_rate_is_judged_against_the_slices_own_previous_period(monitored, days_ago):
    """NORTH's clinicians override 4% of acted predictions in the 60 days before the window and
    12% in it; SOUTH stays at 4%."""
    from monitoring.outcomes import override_record

    monitored.upload_reference(n=400)
    MonitorPolicy.objects.create(
        model=monitored.version.model, windows=[7], reason="t", updated_by=monitored.gate.engineer
    )

    def day_of_traffic(back: int, site: str, share: float) -> None:
        items = monitored.send(rows(50, seed=1000 + back * 3 + len(site)), day=days_ago(back),
                               site=site, tag="w")  # fmt: skip
        acted = [
            i for i in items
            if PredictionEvent.objects.get(event_id=i.event_id).action == "act"
        ]  # fmt: skip
        for item in acted[: round(len(acted) * share)]:
            override_record(
                account=monitored.account, event_id=item.event_id, clinician_role="nurse",
                clinician_ref="", reason_code="clinical_judgement", final_action="no bundle",
                note="", occurred_at=item.occurred_at,
            )  # fmt: skip

    for back in range(1, 36, 2):  # every other day over five weeks
        day_of_traffic(back, "NORTH", 0.12 if back <= 7 else 0.04)
        day_of_traffic(back, "SOUTH", 0.04)
    run_now(actor=None, window_end=days_ago(1))
    results = _results()
    north = results[("site=NORTH", "override_rate")]
    assert north.value == pytest.approx(3.0, rel=0.35) and north.band == "red"
    assert north.details["previous_n"] > 500
    assert results[("site=SOUTH", "override_rate")].band == "green"


def test_a_late_prediction_marks_its_built_day_for_rebuild(monitored, days_ago):
    monitored.upload_reference(n=400)
    day = days_ago(3)
    monitored.send(rows(20, seed=20), day=day)
    build_day(actor=None, version=monitored.version, day=day)
    assert not StaleDay.objects.exists()

    monitored.send(rows(5, seed=21), day=day, tag="late")

    assert StaleDay.objects.get(version=monitored.version, day=day).reason == "late prediction"
    build_day(actor=None, version=monitored.version, day=day)
    assert DailyProfile.objects.get(day=day, slice_key="all").n_events == 25


def test_a_site_gone_quiet_is_a_data_quality_result_of_its_own(monitored, days_ago):
    """NORTH sends all week; SOUTH sent on the first two days and then nothing. Its feed is
    stale; NORTH's is not."""
    from registry.models import DataFeed, FeatureSpec
    from tests.factories import UserFactory

    feed = DataFeed.objects.create(slug="ehr-vitals", name="Vitals", source_system="ehr_vitals",
                                   expected_cadence_minutes=15, owner=UserFactory())  # fmt: skip
    for spec in FeatureSpec.objects.filter(version=monitored.version, name="heart_rate"):
        spec.feed = feed
        spec.save()
    monitored.upload_reference(n=400)
    for back in range(1, 8):
        monitored.send(rows(60, seed=1100 + back), day=days_ago(back), site="NORTH")
    for back in (6, 7):
        monitored.send(rows(60, seed=1200 + back), day=days_ago(back), site="SOUTH")
    run_now(actor=None, window_end=days_ago(1))
    results = _results()
    south = results[("site=SOUTH", "staleness:ehr-vitals")]
    assert south.band == "red" and south.details["silent_hours"] > 100
    assert results[("site=NORTH", "staleness:ehr-vitals")].band == "green"

    # A site with no event at all in the window is stale too (not "nothing expected").
    MonitorPolicy.objects.create(
        model=monitored.version.model, windows=[3], reason="t", updated_by=monitored.gate.engineer
    )
    evaluate(actor=None, version=monitored.version, window_end=days_ago(1), site=monitored.south)
    quiet = MetricResult.objects.get(
        slice_key="site=SOUTH", metric="staleness:ehr-vitals", window_days=3
    )
    assert quiet.n == 0 and quiet.band == "red"
