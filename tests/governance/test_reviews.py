"""Review meetings: cadence by tier, the pack against known seeded data, freezing, minutes,
the schedule, overdue flags and findings, and who may do what on the pages."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import include, path, reverse
from django.utils import timezone

from config.urls import urlpatterns as vigil_urlpatterns
from governance import review_urls, reviews
from governance.api import reviews as reviews_api
from governance.audit.models import AuditEvent
from governance.findings import Finding
from governance.models import ActionItem, Release, ReviewMeeting, ReviewSchedule
from incidents.models import Alert, Incident
from monitoring.models import MetricResult, Override, PredictionEvent, ReviewCase
from registry.models import Deployment, ModelStatus, RiskTier
from tests.factories import ClinicalModelFactory, ModelVersionFactory, SiteFactory, UserFactory

# The pages are mounted by the project's URLconf under /governance/ in the ``governance``
# namespace; until that include lands, this module mounts them the same way.
_mounted = any(getattr(p, "namespace", None) == "governance" for p in vigil_urlpatterns)
urlpatterns = [
    *vigil_urlpatterns,
    *([] if _mounted else [path("governance/", include((review_urls.urlpatterns, "governance")))]),
    path("api/v1/", include(reviews_api.urlpatterns)),
]
pages = pytest.mark.urls(__name__)

REVIEW_ROLES = ("medical_director", "compliance_officer", "quality_safety")
TODAY = timezone.now().date()
_numbers = itertools.count(1)


def at(days_ago: int, hour: int = 12) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), time(hour), tzinfo=UTC)


def actions_of(meeting: ReviewMeeting) -> list[ActionItem]:
    return list(meeting.actions.order_by("pk"))


# --- seeded data ------------------------------------------------------------------------------


@pytest.fixture
def model(db: None) -> Any:
    return ClinicalModelFactory(slug="sepsis", risk_tier=RiskTier.MODERATE)


@pytest.fixture
def version(model: Any) -> Any:
    return ModelVersionFactory(model=model)


@pytest.fixture
def seed(model: Any, version: Any, user_for: Any) -> Any:
    """Known traffic in the 30 days before today, plus noise the pack must leave out.

    Live predictions: NORTH 10 (4 deferred), SOUTH 10 (1 deferred) → deferral 5 / 20 = 25 %;
    reasons near_threshold ×3, missing_required_input ×2, low_confidence ×1. 15 acted, 3 of
    them overridden (clinical_judgement ×2, alert_fatigue ×1) → override rate 20 %.
    Left out: 5 deferred predictions 40 days ago and 3 shadow predictions."""
    engineer = user_for("ml_engineer")
    sites = {code: SiteFactory(code=code) for code in ("NORTH", "SOUTH")}
    deployments = {
        code: Deployment.objects.create(
            model=model, version=version, site=site, started_by=engineer, reason="test"
        )
        for code, site in sites.items()
    }

    def event(site: str, when: datetime, action: str, reasons: list[str] = ()) -> Any:
        return PredictionEvent.objects.create(
            event_id=uuid.uuid4(),
            model=model,
            version=version,
            site=sites[site],
            deployment=deployments[site],
            mode="shadow" if action == "shadow" else "live",
            occurred_at=when,
            case_key_hash=uuid.uuid4().hex,
            features={"age": 70},
            score=0.5,
            action=action,
            reasons=[{"code": c, "text": f"{c}: score 0.512"} for c in reasons],
            policy_number=1,
            body_hash="b" * 64,
            submitted_by=engineer,
        )

    north_reasons = [
        ["near_threshold"],
        ["near_threshold"],
        ["near_threshold", "missing_required_input"],
        ["missing_required_input"],
    ]
    deferred = [event("NORTH", at(3 + i), "defer", r) for i, r in enumerate(north_reasons)]
    deferred.append(event("SOUTH", at(10), "defer", ["low_confidence"]))
    acted = [event("NORTH", at(2 + i), "act") for i in range(6)]
    acted += [event("SOUTH", at(2 + i), "act") for i in range(9)]
    for _ in range(5):
        event("NORTH", at(40), "defer", ["frozen_deployment"])
    for _ in range(3):
        event("SOUTH", at(5), "shadow")
    for e, code in zip(
        acted, ["clinical_judgement", "clinical_judgement", "alert_fatigue"], strict=False
    ):
        Override.objects.create(
            event=e,
            clinician_role="nurse",
            reason_code=code,
            final_action="no alert",
            occurred_at=e.occurred_at + timedelta(minutes=5),
            submitted_by=engineer,
        )
    decisions = [
        ("decided", "agree", ""),
        ("decided", "agree", ""),
        ("decided", "override", "data_error"),
        ("open", "", ""),
        ("open", "", ""),
    ]
    for e, (status, decision, code) in zip(deferred, decisions, strict=True):
        ReviewCase.objects.create(
            event=e,
            model=model,
            site=e.site,
            status=status,
            urgency=0.5,
            opened_at=e.occurred_at,
            decision=decision,
            reason_code=code,
        )

    def result(metric: str, layer: str, days_ago: int, band: str, slice_key: str = "all") -> None:
        MetricResult.objects.create(
            model=model,
            version=version,
            slice_key=slice_key,
            layer=layer,
            metric=metric,
            window_days=7,
            window_start=TODAY - timedelta(days_ago + 6),
            window_end=TODAY - timedelta(days_ago),
            value=0.1,
            n=200,
            band=band,
        )

    result("deferral_rate", "workflow", 20, "green")
    result("deferral_rate", "workflow", 13, "orange")
    result("deferral_rate", "workflow", 6, "yellow")
    result("deferral_rate", "workflow", 6, "red", slice_key="site=NORTH")
    result("deferral_rate", "workflow", 40, "red")  # before the period
    result("psi:lactate", "prediction_quality", 13, "green")
    result("psi:lactate", "prediction_quality", 6, "green")

    def incident(
        triggered: datetime,
        *,
        status: str = "triggered",
        drill: bool = False,
        resolved: datetime | None = None,
        severity: str = "SEV2",
    ) -> Incident:
        row = Incident.objects.create(
            number=next(_numbers),
            model=model,
            site=sites["NORTH"],
            slice_key="site=NORTH",
            title="Deferral rate at NORTH",
            severity=severity,
            band="orange",
            layer="workflow",
            routed_role="clinical_informaticist",
            status=status,
            triggered_at=triggered,
            resolved_at=resolved,
            ack_deadline=triggered + timedelta(hours=1),
            is_drill=drill,
        )
        Alert.objects.create(
            model=model,
            version=version,
            site=sites["NORTH"],
            slice_key="site=NORTH",
            metric="deferral_rate",
            layer="workflow",
            fingerprint=uuid.uuid4().hex,
            band="orange",
            worst_band="orange",
            reason="confident",
            payload={},
            routed_role="clinical_informaticist",
            incident=row,
            is_drill=drill,
            status="open" if status != "resolved" else "resolved",
        )
        return row

    incident(at(12))  # opened in the period, open
    incident(at(8), status="resolved", resolved=at(4), severity="SEV3")  # opened and resolved
    incident(at(45), status="investigating")  # opened before, still open
    incident(at(60), status="resolved", resolved=at(50))  # over before the period
    incident(at(5), drill=True)  # a drill
    Release.objects.create(
        model=model,
        kind="recalibration",
        title="Recalibrate intercept",
        rationale="O/E drift",
        author=engineer,
    )
    Release.objects.create(
        model=model,
        kind="retrain",
        title="Old retrain",
        rationale="x",
        author=engineer,
        status="deployed",
    )
    return model


@pytest.fixture
def meeting(seed: Any, user_for: Any) -> ReviewMeeting:
    """The first meeting of the seeded model, prepared by the daily task (due in 5 days); the
    data engineer is there to own action items."""
    user_for("data_engineer")
    reviews.review_schedule_ensure(model=seed, today=TODAY - timedelta(25))
    [planned] = reviews.prepare_due_meetings(TODAY)
    return planned


def minutes(**overrides: Any) -> dict[str, Any]:
    base = {
        "attendees": "Dr Lee (medical director), Sam (compliance)",
        "minutes": "Reviewed the deferral rise at NORTH.",
        "decisions": ["Keep the model live", "", "Recalibrate before next review"],
        "actions": [
            {
                "text": "Check NORTH lactate feed",
                "owner": "test-data_engineer",
                "due": TODAY + timedelta(7),
            },
            {"text": "", "owner": "", "due": None},
        ],
    }
    return base | overrides


# --- cadence ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "days"),
    [(RiskTier.LOW, 30), (RiskTier.MODERATE, 30), (RiskTier.HIGH, 14), (RiskTier.CRITICAL, 7)],
)
def test_it_sets_the_default_cadence_by_risk_tier(db: None, tier: str, days: int) -> None:
    model = ClinicalModelFactory(risk_tier=tier)
    schedule = reviews.review_schedule_ensure(model=model, today=TODAY)
    assert (schedule.cadence_days, schedule.next_due) == (days, TODAY + timedelta(days))
    assert schedule.history.count() == 1
    assert AuditEvent.objects.filter(action="review.schedule_create").count() == 1


def test_it_edits_the_schedule_with_a_reason_and_history(model: Any, director: Any) -> None:
    due = TODAY + timedelta(3)
    schedule = reviews.review_schedule_update(
        actor=director, model=model, cadence_days=10, next_due=due, reason="post-launch watch"
    )
    assert (schedule.cadence_days, schedule.next_due) == (10, due)
    latest = schedule.history.first()
    assert latest.history_change_reason == "post-launch watch"
    assert latest.history_user == director
    event = AuditEvent.objects.get(action="review.schedule_update")
    assert event.payload["before"]["cadence_days"] == 30
    assert event.payload["after"] == {"cadence_days": 10, "next_due": str(due)}


def test_it_refuses_a_bad_schedule_per_field(model: Any, director: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        reviews.review_schedule_update(
            actor=director, model=model, cadence_days=0, next_due=TODAY - timedelta(1), reason=" "
        )
    assert set(caught.value.message_dict) == {"cadence_days", "next_due", "reason"}
    assert not ReviewSchedule.objects.exists()


# --- the pack ---------------------------------------------------------------------------------


def test_it_assembles_the_pack_from_known_data(meeting: ReviewMeeting) -> None:
    pack = meeting.pack
    assert meeting.period_start == TODAY - timedelta(30)
    assert meeting.scheduled_for == TODAY + timedelta(5)
    assert pack["period"] == {"start": str(TODAY - timedelta(30)), "end": str(TODAY)}

    w = pack["workflow"]
    assert (w["predictions"], w["deferred"], w["deferral_rate"]) == (20, 5, 0.25)
    assert [(r["code"], r["count"]) for r in w["top_deferral_reasons"]] == [
        ("near_threshold", 3),
        ("missing_required_input", 2),
        ("low_confidence", 1),
    ]
    sites = {
        r["site"]: (r["predictions"], r["deferred"], r["deferral_rate"])
        for r in w["deferral_by_site"]
    }
    assert sites == {"NORTH": (10, 4, 0.4), "SOUTH": (10, 1, 0.1)}
    assert sum(r["predictions"] for r in w["deferral_by_week"]) == 20
    assert (w["acted"], w["overridden"], w["override_rate"]) == (15, 3, 0.2)
    assert w["top_override_reasons"][0] == {
        "code": "clinical_judgement",
        "label": "Clinical judgement differs",
        "count": 2,
    }
    cases = w["deferred_cases"]
    assert (cases["opened"], cases["agreed"], cases["overridden"], cases["still_open"]) == (
        5,
        2,
        1,
        2,
    )
    assert cases["top_reviewer_override_reasons"][0]["code"] == "data_error"

    metrics = {m["metric"]: m for m in pack["bands"]["metrics"]}
    deferral = metrics["deferral_rate"]
    assert deferral["worst_band"] == "red" and deferral["worst_slice"] == "site=NORTH"
    assert deferral["latest_band"] == "red"
    assert deferral["windows"] == {"green": 1, "orange": 1, "yellow": 1, "red": 1}
    assert [p["band"] for p in deferral["trend"]] == ["green", "orange", "yellow"]
    assert metrics["psi:lactate"]["worst_band"] == "green"
    assert pack["bands"]["metrics_by_worst_band"]["red"] == 1

    assert pack["incidents"]["count"] == 3
    assert pack["incidents"]["opened_in_period"] == 2
    assert pack["incidents"]["open_now"] == 2
    assert [r["title"] for r in pack["releases"]] == ["Recalibrate intercept"]


def test_the_pack_holds_no_patient_data(meeting: ReviewMeeting) -> None:
    text = str(meeting.pack)
    assert "score 0.512" not in text  # a reason's own text quotes the case
    assert "case_key" not in text and "age" not in meeting.pack["workflow"]


def test_preparing_twice_the_same_day_creates_nothing_new(meeting: ReviewMeeting) -> None:
    assert reviews.prepare_due_meetings(TODAY) == []
    assert ReviewMeeting.objects.count() == 1
    assert AuditEvent.objects.filter(action="review.meeting_prepare").count() == 1


def test_it_prepares_only_meetings_due_within_the_lead_time(model: Any) -> None:
    reviews.review_schedule_ensure(model=model, today=TODAY)  # due in 30 days
    assert reviews.prepare_due_meetings(TODAY, lead_days=7) == []
    assert len(reviews.prepare_due_meetings(TODAY, lead_days=30)) == 1


def test_it_gives_models_in_use_a_schedule_on_demand(model: Any) -> None:
    retired = ClinicalModelFactory(status=ModelStatus.RETIRED)
    reviews.prepare_due_meetings(TODAY)
    assert ReviewSchedule.objects.filter(model=model).exists()
    assert not ReviewSchedule.objects.filter(model=retired).exists()


def test_the_pack_is_frozen_until_regenerated(meeting: ReviewMeeting, director: Any) -> None:
    frozen = meeting.pack
    Release.objects.create(
        model=meeting.model,
        kind="threshold",
        title="Raise threshold",
        rationale="x",
        author=director,
    )
    meeting.refresh_from_db()
    assert meeting.pack == frozen
    regenerated = reviews.review_pack_regenerate(actor=director, meeting=meeting)
    assert len(regenerated.pack["releases"]) == 2
    assert regenerated.pack_generated_at > meeting.pack_generated_at
    assert AuditEvent.objects.filter(action="review.pack_regenerate").count() == 1


def test_a_held_meetings_pack_is_never_regenerated(meeting: ReviewMeeting, director: Any) -> None:
    reviews.review_minutes_record(actor=director, meeting=meeting, **minutes())
    with pytest.raises(ValidationError, match="frozen"):
        reviews.review_pack_regenerate(actor=director, meeting=meeting)


# --- minutes ----------------------------------------------------------------------------------


def test_recording_minutes_holds_the_meeting_and_advances_the_schedule(
    meeting: ReviewMeeting, director: Any, user_for: Any
) -> None:
    owner = user_for("data_engineer")
    reviews.review_minutes_record(actor=director, meeting=meeting, **minutes())
    meeting.refresh_from_db()
    assert meeting.held_at.date() == TODAY and meeting.recorded_by == director
    assert meeting.decisions == ["Keep the model live", "Recalibrate before next review"]
    [item] = actions_of(meeting)
    assert (item.text, item.owner, item.due, item.model) == (
        "Check NORTH lactate feed",
        owner,
        TODAY + timedelta(7),
        meeting.model,
    )
    assert ReviewSchedule.objects.get(model=meeting.model).next_due == TODAY + timedelta(30)
    event = AuditEvent.objects.get(action="review.minutes_record")
    assert event.payload["next_due"]["after"] == str(TODAY + timedelta(30))


def test_the_next_pack_starts_at_the_last_meeting(meeting: ReviewMeeting, director: Any) -> None:
    held_on = TODAY - timedelta(2)
    reviews.review_minutes_record(actor=director, meeting=meeting, held_on=held_on, **minutes())
    assert ReviewSchedule.objects.get(model=meeting.model).next_due == held_on + timedelta(30)
    nxt = reviews.review_meeting_plan(actor=director, model=meeting.model, scheduled_for=TODAY)
    assert nxt.period_start == held_on
    assert [a["text"] for a in nxt.pack["actions"]] == ["Check NORTH lactate feed"]


def test_the_next_pack_covers_the_days_after_the_last_pack(
    meeting: ReviewMeeting, director: Any
) -> None:
    # the daily task assembled this pack a week before the meeting
    meeting.pack["period"]["end"] = str(TODAY - timedelta(7))
    meeting.save(update_fields=["pack"])
    reviews.review_minutes_record(actor=director, meeting=meeting, **minutes())
    nxt = reviews.review_meeting_plan(actor=director, model=meeting.model, scheduled_for=TODAY)
    assert nxt.period_start == TODAY - timedelta(7)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"attendees": " "}, "attendees"),
        ({"minutes": ""}, "minutes"),
        ({"held_on": TODAY + timedelta(1)}, "held_on"),
        ({"actions": [{"text": "x", "owner": "nobody-here", "due": TODAY}]}, "actions-0-owner"),
        (
            {"actions": [{"text": "x", "owner": "test-viewer", "due": TODAY - timedelta(1)}]},
            "actions-0-due",
        ),
        ({"actions": [{"text": "", "owner": "test-viewer", "due": TODAY}]}, "actions-0-text"),
        (
            {
                "actions": [
                    {"text": "ok", "owner": "test-viewer", "due": TODAY},
                    {"text": "x", "owner": "test-viewer", "due": "31/12/2030"},
                ]
            },
            "actions-1-due",
        ),
    ],
)
def test_bad_minutes_store_nothing(
    meeting: ReviewMeeting, director: Any, viewer: Any, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        reviews.review_minutes_record(actor=director, meeting=meeting, **minutes(**change))
    assert field in caught.value.message_dict
    meeting.refresh_from_db()
    assert meeting.held_at is None and meeting.minutes == "" and meeting.decisions == []
    assert not ActionItem.objects.exists()
    assert ReviewSchedule.objects.get(model=meeting.model).next_due == meeting.scheduled_for
    assert not AuditEvent.objects.filter(action="review.minutes_record").exists()


def test_minutes_are_recorded_once(meeting: ReviewMeeting, director: Any) -> None:
    reviews.review_minutes_record(actor=director, meeting=meeting, **minutes())
    with pytest.raises(ValidationError) as caught:
        reviews.review_minutes_record(actor=director, meeting=meeting, **minutes())
    assert "meeting" in caught.value.message_dict
    assert ActionItem.objects.count() == 1


def test_rescheduling_moves_the_planned_meeting(meeting: ReviewMeeting, director: Any) -> None:
    due = TODAY + timedelta(9)
    reviews.review_schedule_update(
        actor=director, model=meeting.model, cadence_days=30, next_due=due, reason="director away"
    )
    meeting.refresh_from_db()
    assert meeting.scheduled_for == due
    assert reviews.prepare_due_meetings(TODAY, lead_days=10) == []


# --- permissions ------------------------------------------------------------------------------


def test_a_viewer_may_change_nothing(meeting: ReviewMeeting, viewer: Any) -> None:
    with pytest.raises(PermissionDenied):
        reviews.review_schedule_update(
            actor=viewer, model=meeting.model, cadence_days=7, next_due=TODAY, reason="x"
        )
    with pytest.raises(PermissionDenied):
        reviews.review_meeting_plan(actor=viewer, model=meeting.model, scheduled_for=TODAY)
    with pytest.raises(PermissionDenied):
        reviews.review_pack_regenerate(actor=viewer, meeting=meeting)
    with pytest.raises(PermissionDenied):
        reviews.review_minutes_record(actor=viewer, meeting=meeting, **minutes())
    meeting.refresh_from_db()
    assert meeting.held_at is None


def test_an_owner_closes_their_own_action_and_nobody_elses(
    meeting: ReviewMeeting, director: Any, user_for: Any
) -> None:
    reviews.review_minutes_record(actor=director, meeting=meeting, **minutes())
    [item] = actions_of(meeting)
    with pytest.raises(PermissionDenied):
        reviews.action_item_close(actor=user_for("viewer"), item=item, status="done")
    with pytest.raises(ValidationError, match="why"):
        reviews.action_item_close(actor=item.owner, item=item, status="cancelled")
    closed = reviews.action_item_close(actor=item.owner, item=item, status="done", note="fixed")
    assert (closed.status, closed.closed_note) == ("done", "fixed")
    assert closed.closed_at is not None
    assert AuditEvent.objects.get(action="review.action_close").actor == item.owner
    with pytest.raises(ValidationError, match="already done"):
        reviews.action_item_close(actor=director, item=item, status="cancelled", note="x")


# --- overdue: flags and findings ----------------------------------------------------------------


def _overdue_item(meeting: ReviewMeeting, director: Any, days_late: int) -> ActionItem:
    reviews.review_minutes_record(actor=director, meeting=meeting, **minutes())
    [item] = actions_of(meeting)
    item.due = TODAY - timedelta(days_late)
    item.save(update_fields=["due"])
    return item


def test_it_flags_overdue_actions_once(meeting: ReviewMeeting, director: Any) -> None:
    item = _overdue_item(meeting, director, days_late=3)
    assert reviews.flag_overdue_actions(TODAY - timedelta(3)) == []  # due that day: not late
    assert reviews.flag_overdue_actions(TODAY) == [item]
    item.refresh_from_db()
    assert item.overdue_flagged_at is not None
    assert item.history.first().history_change_reason == "overdue"
    event = AuditEvent.objects.get(action="review.action_overdue")
    assert event.actor is None and event.payload["days_overdue"] == 3
    assert reviews.flag_overdue_actions(TODAY) == []


def test_it_finds_overdue_actions(meeting: ReviewMeeting, director: Any) -> None:
    item = _overdue_item(meeting, director, days_late=10)
    [finding] = reviews.overdue_action_findings(TODAY)
    assert isinstance(finding, Finding)
    assert (finding.kind, finding.model_id, finding.key) == (
        "overdue_action",
        meeting.model_id,
        str(item.pk),
    )
    assert finding.band == "orange"
    assert finding.details["owner"] == "test-data_engineer"
    assert finding.details["days_overdue"] == 10
    reviews.action_item_close(actor=item.owner, item=item, status="done")
    assert reviews.overdue_action_findings(TODAY) == []


def test_it_finds_overdue_reviews_until_the_meeting_is_held(
    meeting: ReviewMeeting, director: Any
) -> None:
    due = meeting.scheduled_for
    assert reviews.overdue_review_findings(due) == []
    [finding] = reviews.overdue_review_findings(due + timedelta(3))
    assert (finding.kind, finding.model_id, finding.band) == (
        "overdue_review",
        meeting.model_id,
        "yellow",
    )
    assert finding.details["planned_meeting"] == meeting.pk
    assert "3 days overdue" in finding.summary
    assert reviews.overdue_review_findings(due + timedelta(12))[0].band == "orange"
    assert reviews.overdue_review_findings(due + timedelta(30))[0].band == "red"
    reviews.review_minutes_record(actor=director, meeting=meeting, **minutes())
    assert reviews.overdue_review_findings(due + timedelta(3)) == []


# --- pages ------------------------------------------------------------------------------------


@pages
@pytest.mark.parametrize("role", ["viewer", "reviewer", *REVIEW_ROLES])
def test_every_role_reads_the_review_pages(
    meeting: ReviewMeeting, client_for: Any, role: str
) -> None:
    client = client_for(role)
    for url in (
        reverse("governance:review-list"),
        reverse("governance:review-model", args=[meeting.model.slug]),
        reverse("governance:review-meeting", args=[meeting.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
    body = client.get(reverse("governance:review-meeting", args=[meeting.pk])).content.decode()
    assert "Score near the decision threshold" in body
    assert ("record-minutes" in body) == (role in REVIEW_ROLES)


@pages
def test_service_accounts_and_strangers_get_no_page(meeting: ReviewMeeting, client: Any) -> None:
    url = reverse("governance:review-list")
    assert client.get(url).status_code == 302  # to the login page
    service = UserFactory(username="svc", role="service_account")
    client.force_login(service)
    assert client.get(url).status_code == 403


@pages
@pytest.mark.parametrize("role", ["viewer", "ml_engineer", "incident_commander"])
def test_other_roles_may_not_write(meeting: ReviewMeeting, client_for: Any, role: str) -> None:
    client = client_for(role)
    slug = meeting.model.slug
    posts = {
        reverse("governance:review-schedule", args=[slug]): {
            "cadence_days": 7,
            "next_due": TODAY,
            "reason": "x",
        },
        reverse("governance:review-plan", args=[slug]): {"scheduled_for": TODAY},
        reverse("governance:review-pack", args=[meeting.pk]): {},
        reverse("governance:review-minutes", args=[meeting.pk]): {"attendees": "a"},
    }
    for url, data in posts.items():
        assert client.post(url, data).status_code == 403, url
    meeting.refresh_from_db()
    assert meeting.held_at is None


def _minutes_post(**rows: str) -> dict[str, Any]:
    data = {
        "attendees": "Dr Lee",
        "minutes": "Reviewed.",
        "decisions": "Keep live\nRecalibrate",
        "actions-TOTAL_FORMS": "2",
        "actions-INITIAL_FORMS": "0",
        "actions-MIN_NUM_FORMS": "0",
        "actions-MAX_NUM_FORMS": "20",
    }
    return data | rows


@pages
@pytest.mark.parametrize("role", REVIEW_ROLES)
def test_review_roles_record_minutes_on_the_page(
    meeting: ReviewMeeting, client_for: Any, user_for: Any, role: str
) -> None:
    user_for("data_engineer")
    url = reverse("governance:review-minutes", args=[meeting.pk])
    data = _minutes_post(
        **{
            "actions-0-text": "Check feed",
            "actions-0-owner": "test-data_engineer",
            "actions-0-due": str(TODAY + timedelta(3)),
        }
    )
    response = client_for(role).post(url, data)
    assert response.status_code == 302
    meeting.refresh_from_db()
    assert meeting.held_at is not None and meeting.decisions == ["Keep live", "Recalibrate"]
    assert [a.text for a in actions_of(meeting)] == ["Check feed"]


@pages
def test_the_minutes_page_shows_errors_in_place_and_keeps_the_text(
    meeting: ReviewMeeting, client_for: Any
) -> None:
    url = reverse("governance:review-minutes", args=[meeting.pk])
    data = _minutes_post(
        **{"actions-1-text": "Check feed", "actions-1-owner": "ghost", "actions-1-due": str(TODAY)}
    )
    response = client_for("compliance_officer").post(url, data)
    assert response.status_code == 400
    body = response.content.decode()
    assert "No active Vigil user is called &#x27;ghost&#x27;" in body
    assert "Reviewed." in body  # what was typed stays
    assert 'value="Check feed"' in body
    meeting.refresh_from_db()
    assert meeting.held_at is None and not ActionItem.objects.exists()


@pages
def test_an_owner_closes_their_action_on_the_page(
    meeting: ReviewMeeting, director: Any, client_for: Any
) -> None:
    reviews.review_minutes_record(actor=director, meeting=meeting, **minutes())
    [item] = actions_of(meeting)
    url = reverse("governance:review-action-close", args=[item.pk])
    assert client_for("viewer").post(url, {"status": "done"}).status_code == 403
    response = client_for("data_engineer").post(url, {"status": "done", "note": "fixed"})
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == "done"


@pages
def test_review_roles_edit_the_schedule_and_plan_on_the_page(model: Any, client_for: Any) -> None:
    client = client_for("quality_safety")
    due = TODAY + timedelta(4)
    response = client.post(
        reverse("governance:review-schedule", args=[model.slug]),
        {"cadence_days": 14, "next_due": due, "reason": "new site"},
    )
    assert response.status_code == 302
    assert ReviewSchedule.objects.get(model=model).cadence_days == 14
    response = client.post(
        reverse("governance:review-plan", args=[model.slug]), {"scheduled_for": due}
    )
    assert response.status_code == 302
    assert ReviewMeeting.objects.get(model=model).scheduled_for == due


# --- API --------------------------------------------------------------------------------------


@pages
def test_the_api_lists_meetings_and_details_their_pack(
    meeting: ReviewMeeting, api_for: Any
) -> None:
    client = api_for("viewer")
    listed = client.get(reverse("review-meeting-list"), {"model": "sepsis"})
    assert listed.status_code == 200
    [row] = listed.json()["results"]
    assert row["id"] == meeting.pk and row["held"] is False and "pack" not in row
    detail = client.get(reverse("review-meeting-detail", args=[meeting.pk])).json()
    assert detail["pack"]["workflow"]["deferral_rate"] == 0.25
    assert client.post(reverse("review-meeting-list"), {}).status_code == 403


@pages
def test_the_api_filters_overdue_action_items(
    meeting: ReviewMeeting, director: Any, api_for: Any
) -> None:
    item = _overdue_item(meeting, director, days_late=2)
    rows = api_for("compliance_officer").get(reverse("review-action-list"), {"overdue": "true"})
    assert [(r["id"], r["owner"], r["overdue"]) for r in rows.json()["results"]] == [
        (item.pk, "test-data_engineer", True)
    ]
    svc = UserFactory(username="svc", role="service_account")
    client = api_for("viewer")
    client.force_authenticate(svc)
    assert client.get(reverse("review-action-list")).status_code == 403


@pages
def test_posting_minutes_twice_on_the_page_says_why(
    meeting: ReviewMeeting, client_for: Any
) -> None:
    url = reverse("governance:review-minutes", args=[meeting.pk])
    client = client_for("medical_director")
    assert client.post(url, _minutes_post()).status_code == 302
    again = client.post(url, _minutes_post())
    assert again.status_code == 400
    assert "they are not recorded twice" in again.content.decode()
