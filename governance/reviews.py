"""Review meetings: each model's cadence, the pack assembled before a meeting, its minutes, and
the action items they create, with the overdue checks the governance run reports.

Every write here is one function: it checks the actor's role (``actor=None`` is the system's
daily task), validates everything before it stores anything, saves through the model with its
history, and appends its audit event in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from accounts.permissions import has_perms, is_service_account, require_perms
from governance.audit.services import record
from governance.findings import Finding
from governance.models import ActionItem, ReviewMeeting, ReviewSchedule
from governance.review_pack import FIRST_PERIOD_DAYS, assemble_pack
from registry.models import ClinicalModel, ModelStatus, RiskTier

CHANGE_SCHEDULE = "governance.change_reviewschedule"
ADD_MEETING = "governance.add_reviewmeeting"
CHANGE_MEETING = "governance.change_reviewmeeting"
CHANGE_ACTION = "governance.change_actionitem"

#: Days between reviews by risk tier: monthly by default, fortnightly for high risk and weekly
#: for critical models, whose harms arrive fastest.
DEFAULT_CADENCE_DAYS = {
    RiskTier.LOW: 30,
    RiskTier.MODERATE: 30,
    RiskTier.HIGH: 14,
    RiskTier.CRITICAL: 7,
}
CADENCE_LIMITS = (1, 365)
#: Models that must be reviewed: in use, or stopped but not retired (a suspension is reviewed).
REVIEWED_STATUSES = (ModelStatus.ACTIVE, ModelStatus.SUSPENDED)
DECISION_MAX = 300
ATTENDEES_MAX = 2000
MINUTES_MAX = 20000
ACTION_TEXT_MAX = 500
NOTE_MAX = 500


def default_cadence(risk_tier: str) -> int:
    return DEFAULT_CADENCE_DAYS.get(risk_tier, 30)  # type: ignore[call-overload]


def _today() -> date:
    return timezone.now().date()


def _save(row: models.Model, *, actor: Any, reason: str, fields: Sequence[str] | None) -> None:
    row._history_user = actor  # type: ignore[attr-defined]
    row._change_reason = reason[:100]  # type: ignore[attr-defined]
    if fields is None:
        row.save()
    else:
        row.save(update_fields=list(fields))


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()) if value else None
    except ValueError:
        return None


# --- schedules ------------------------------------------------------------------------------


def _schedule_create(model: ClinicalModel, today: date) -> ReviewSchedule:
    cadence = default_cadence(model.risk_tier)
    schedule = ReviewSchedule(
        model=model, cadence_days=cadence, next_due=today + timedelta(cadence)
    )
    _save(schedule, actor=None, reason="default review cadence", fields=None)
    record(
        actor=None,
        action="review.schedule_create",
        target=schedule,
        summary=f"{model.slug}: reviews every {cadence} days ({model.risk_tier} risk), "
        f"first due {schedule.next_due}",
        payload={"model": model.slug, "cadence_days": cadence, "next_due": str(schedule.next_due)},
    )
    return schedule


@transaction.atomic
def review_schedule_ensure(*, model: ClinicalModel, today: date | None = None) -> ReviewSchedule:
    """The model's schedule, created on first need with its tier's default cadence (the first
    review then falls one cadence from today). Locked for the caller's transaction."""
    ClinicalModel.objects.select_for_update().filter(pk=model.pk).first()  # serialise creation
    schedule = ReviewSchedule.objects.select_for_update().filter(model=model).first()
    return schedule or _schedule_create(model, today or _today())


def proposed_schedule(model: ClinicalModel, today: date | None = None) -> ReviewSchedule:
    """The schedule to show for a model that has none yet (not saved)."""
    existing = ReviewSchedule.objects.filter(model=model).first()
    if existing is not None:
        return existing
    cadence = default_cadence(model.risk_tier)
    return ReviewSchedule(
        model=model, cadence_days=cadence, next_due=(today or _today()) + timedelta(cadence)
    )


def _schedule_errors(
    cadence_days: Any, next_due: date | None, reason: str, today: date
) -> dict[str, str]:
    errors: dict[str, str] = {}
    low, high = CADENCE_LIMITS
    if not isinstance(cadence_days, int) or not low <= cadence_days <= high:
        errors["cadence_days"] = f"The cadence is a whole number of days from {low} to {high}."
    if next_due is None:
        errors["next_due"] = "Give the next review's date (YYYY-MM-DD)."
    elif next_due < today:
        errors["next_due"] = f"The next review cannot be in the past (today is {today})."
    if not reason.strip():
        errors["reason"] = "Say why the schedule changes (it is recorded)."
    return errors


@transaction.atomic
def review_schedule_update(
    *,
    actor: Any,
    model: ClinicalModel,
    cadence_days: int,
    next_due: date | str,
    reason: str,
    today: date | None = None,
) -> ReviewSchedule:
    """Change a model's cadence and next due date. A meeting already planned and not yet held
    moves to the new date, keeping its pack."""
    require_perms(actor, CHANGE_SCHEDULE)
    today = today or _today()
    due = _as_date(next_due)
    errors = _schedule_errors(cadence_days, due, reason, today)
    if errors:
        raise ValidationError(errors)
    assert due is not None
    schedule = review_schedule_ensure(model=model, today=today)
    before = {"cadence_days": schedule.cadence_days, "next_due": str(schedule.next_due)}
    pending = _pending_meeting(model, schedule.next_due)
    schedule.cadence_days, schedule.next_due = cadence_days, due
    _save(schedule, actor=actor, reason=reason, fields=["cadence_days", "next_due"])
    if pending is not None and pending.scheduled_for != due:
        pending.scheduled_for = due
        _save(pending, actor=actor, reason=f"rescheduled: {reason}", fields=["scheduled_for"])
    record(
        actor=actor,
        action="review.schedule_update",
        target=schedule,
        summary=f"{model.slug}: reviews every {cadence_days} days, next due {due}",
        payload={
            "model": model.slug,
            "before": before,
            "after": {"cadence_days": cadence_days, "next_due": str(due)},
            "reason": reason.strip()[:500],
            "moved_meeting": pending.pk if pending is not None else None,
        },
    )
    return schedule


# --- meetings and their pack ----------------------------------------------------------------


def _pending_meeting(model: ClinicalModel, scheduled_for: date) -> ReviewMeeting | None:
    return (
        ReviewMeeting.objects.select_for_update()
        .filter(model=model, scheduled_for=scheduled_for, held_at__isnull=True)
        .first()
    )


def period_start_for(model: ClinicalModel, today: date) -> date:
    """The pack covers from the last held meeting (or from the day its pack was assembled, if
    earlier, so the days between that pack and the meeting are not lost), or
    ``FIRST_PERIOD_DAYS`` back for the first."""
    last = (
        ReviewMeeting.objects.filter(model=model, held_at__isnull=False)
        .order_by("-held_at")
        .only("held_at", "pack")
        .first()
    )
    if last is None or last.held_at is None:
        return today - timedelta(FIRST_PERIOD_DAYS)
    pack_end = _as_date((last.pack.get("period") or {}).get("end"))
    held = last.held_at.date()
    return min(held, pack_end) if pack_end else held


def _meeting_create(
    *, actor: Any, model: ClinicalModel, scheduled_for: date, today: date, why: str
) -> ReviewMeeting:
    start = period_start_for(model, today)
    meeting = ReviewMeeting(
        model=model,
        scheduled_for=scheduled_for,
        period_start=start,
        pack=assemble_pack(model, period_start=start, today=today),
        pack_generated_at=timezone.now(),
    )
    _save(meeting, actor=actor, reason=why, fields=None)
    record(
        actor=actor,
        action="review.meeting_prepare",
        target=meeting,
        summary=f"{model.slug}: review meeting of {scheduled_for} planned, pack assembled "
        f"({meeting.period_start} to {today})",
        payload={
            **_pack_digest(meeting.pack),
            "model": model.slug,
            "why": why,
            "scheduled_for": str(scheduled_for),
        },
    )
    return meeting


def _pack_digest(pack: Mapping[str, Any]) -> dict[str, Any]:
    """The pack's headline numbers, for the audit event (the pack itself stays on the row)."""
    workflow = pack.get("workflow", {})
    return {
        "period": pack.get("period"),
        "incidents": pack.get("incidents", {}).get("count"),
        "deferral_rate": workflow.get("deferral_rate"),
        "override_rate": workflow.get("override_rate"),
        "metrics_by_worst_band": pack.get("bands", {}).get("metrics_by_worst_band"),
        "open_releases": len(pack.get("releases", [])),
        "open_actions": len(pack.get("actions", [])),
    }


@transaction.atomic
def review_meeting_plan(
    *, actor: Any, model: ClinicalModel, scheduled_for: date | str, today: date | None = None
) -> ReviewMeeting:
    """Plan a meeting by hand (an extra review, or the scheduled one earlier than the daily
    task would), assembling its pack now."""
    require_perms(actor, ADD_MEETING)
    today = today or _today()
    when = _as_date(scheduled_for)
    if when is None:
        raise ValidationError({"scheduled_for": "Give the meeting's date (YYYY-MM-DD)."})
    if when < today:
        raise ValidationError({"scheduled_for": f"The meeting cannot be in the past ({today})."})
    review_schedule_ensure(model=model, today=today)  # locks the model's planning
    if _pending_meeting(model, when) is not None:
        raise ValidationError(
            {"scheduled_for": f"A meeting of {model.slug} is already planned for {when}."}
        )
    return _meeting_create(
        actor=actor, model=model, scheduled_for=when, today=today, why="planned by hand"
    )


def prepare_due_meetings(today: date, lead_days: int = 7) -> list[ReviewMeeting]:
    """The daily task: every model under review gets its schedule (default cadence), and each
    schedule due within ``lead_days`` without a meeting for that due date gets one, with its
    pack. Idempotent: a second run the same day creates nothing. Returns the new meetings."""
    horizon = today + timedelta(lead_days)
    created = []
    for model in ClinicalModel.objects.filter(status__in=REVIEWED_STATUSES).order_by("pk"):
        with transaction.atomic():
            schedule = review_schedule_ensure(model=model, today=today)
            if schedule.next_due > horizon:
                continue
            exists = ReviewMeeting.objects.filter(
                model=model, scheduled_for=schedule.next_due
            ).exists()
            if not exists:
                created.append(
                    _meeting_create(
                        actor=None,
                        model=model,
                        today=today,
                        scheduled_for=schedule.next_due,
                        why="due within the lead time",
                    )
                )
    return created


@transaction.atomic
def review_pack_regenerate(
    *, actor: Any, meeting: ReviewMeeting, today: date | None = None
) -> ReviewMeeting:
    """Assemble the pack again with today's data. Only before the meeting is held: the pack a
    meeting decided on is frozen with its minutes."""
    require_perms(actor, CHANGE_MEETING)
    today = today or _today()
    meeting = ReviewMeeting.objects.select_for_update().select_related("model").get(pk=meeting.pk)
    if meeting.held_at is not None:
        raise ValidationError(
            {
                "pack": "This meeting was held: its pack is frozen with the "
                "minutes and cannot be regenerated."
            }
        )
    before = meeting.pack_generated_at
    meeting.pack = assemble_pack(meeting.model, period_start=meeting.period_start, today=today)
    meeting.pack_generated_at = timezone.now()
    _save(meeting, actor=actor, reason="pack regenerated", fields=["pack", "pack_generated_at"])
    record(
        actor=actor,
        action="review.pack_regenerate",
        target=meeting,
        summary=f"{meeting.model.slug}: pack of the {meeting.scheduled_for} review regenerated",
        payload={
            **_pack_digest(meeting.pack),
            "model": meeting.model.slug,
            "replaces_pack_of": before.isoformat() if before else None,
        },
    )
    return meeting


# --- minutes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionIn:
    text: str
    owner: Any
    due: date


def _action_errors(
    index: int, row: Mapping[str, Any], today: date
) -> tuple[dict[str, str], ActionIn | None]:
    """Errors are keyed ``actions-<index>-<field>``, as the minutes form's formset names them."""
    text = str(row.get("text") or "").strip()
    username = str(row.get("owner") or "").strip()
    due = _as_date(row.get("due"))
    key = f"actions-{index}-"
    errors: dict[str, str] = {}
    if not text:
        errors[key + "text"] = "Say what is to be done."
    elif len(text) > ACTION_TEXT_MAX:
        errors[key + "text"] = f"Keep an action within {ACTION_TEXT_MAX} characters."
    owner = get_user_model().objects.filter(username=username, is_active=True).first()
    if not username:
        errors[key + "owner"] = "Name the owner (a username)."
    elif owner is None or is_service_account(owner):
        errors[key + "owner"] = f"No active Vigil user is called {username!r}."
    if due is None:
        errors[key + "due"] = "Give the due date (YYYY-MM-DD)."
    elif due < today:
        errors[key + "due"] = f"The due date cannot be in the past (today is {today})."
    if errors:
        return errors, None
    assert due is not None
    return {}, ActionIn(text=text, owner=owner, due=due)


def _blank(row: Mapping[str, Any]) -> bool:
    return not any(str(row.get(k) or "").strip() for k in ("text", "owner", "due"))


def _minutes_errors(
    meeting: ReviewMeeting,
    attendees: str,
    minutes: str,
    decisions: Sequence[str],
    held_on: date,
    today: date,
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if meeting.held_at is not None:
        errors["meeting"] = (
            f"The minutes of this meeting were recorded on {meeting.held_at:%Y-%m-%d}; "
            "they are not recorded twice."
        )
    if not attendees.strip():
        errors["attendees"] = "List who attended."
    elif len(attendees) > ATTENDEES_MAX:
        errors["attendees"] = f"Keep the attendees within {ATTENDEES_MAX} characters."
    if not minutes.strip():
        errors["minutes"] = "Write the minutes: what was reviewed and said."
    elif len(minutes) > MINUTES_MAX:
        errors["minutes"] = f"Keep the minutes within {MINUTES_MAX:,} characters."
    if any(len(d) > DECISION_MAX for d in decisions):
        errors["decisions"] = f"Keep each decision within {DECISION_MAX} characters."
    if held_on > today:
        errors["held_on"] = "A meeting cannot be recorded as held in the future."
    elif held_on < meeting.period_start:
        errors["held_on"] = (
            f"The meeting cannot be held before its period ({meeting.period_start})."
        )
    return errors


@transaction.atomic
def review_minutes_record(
    *,
    actor: Any,
    meeting: ReviewMeeting,
    attendees: str,
    minutes: str,
    decisions: Sequence[str],
    actions: Sequence[Mapping[str, Any]],
    held_on: date | None = None,
    today: date | None = None,
) -> ReviewMeeting:
    """Record the minutes: the meeting is held (``held_on``, default today), its attendees,
    minutes, decisions (short texts) and action items (``{"text", "owner": username, "due"}``;
    blank rows are skipped) are stored, and the schedule's next review falls one cadence after
    the meeting. Every field is checked first: one bad value stores nothing."""
    require_perms(actor, CHANGE_MEETING)
    today = today or _today()
    meeting = ReviewMeeting.objects.select_for_update().select_related("model").get(pk=meeting.pk)
    held_on = held_on or today
    decisions = [d.strip() for d in decisions if d and d.strip()]
    errors = _minutes_errors(meeting, attendees, minutes, decisions, held_on, today)
    parsed: list[ActionIn] = []
    for index, row in enumerate(actions):
        if _blank(row):
            continue
        row_errors, item = _action_errors(index, row, today)
        errors.update(row_errors)
        if item is not None:
            parsed.append(item)
    if errors:
        raise ValidationError(errors)
    return _store_minutes(actor, meeting, attendees, minutes, decisions, parsed, held_on)


def _store_minutes(
    actor: Any,
    meeting: ReviewMeeting,
    attendees: str,
    minutes: str,
    decisions: list[str],
    actions: list[ActionIn],
    held_on: date,
) -> ReviewMeeting:
    now = timezone.now()
    held_at = now if held_on == now.date() else datetime.combine(held_on, now.timetz())
    meeting.held_at, meeting.recorded_by = held_at, actor
    meeting.attendees, meeting.minutes = attendees.strip(), minutes.strip()
    meeting.decisions = decisions
    fields = ["held_at", "recorded_by", "attendees", "minutes", "decisions"]
    _save(meeting, actor=actor, reason="minutes recorded", fields=fields)
    items = [
        ActionItem(meeting=meeting, model=meeting.model, text=a.text, owner=a.owner, due=a.due)
        for a in actions
    ]
    for item in items:
        _save(item, actor=actor, reason="decided at review", fields=None)
    schedule = review_schedule_ensure(model=meeting.model, today=held_on)
    previous_due = schedule.next_due
    schedule.next_due = held_on + timedelta(schedule.cadence_days)
    _save(schedule, actor=actor, reason="review held", fields=["next_due"])
    record(
        actor=actor,
        action="review.minutes_record",
        target=meeting,
        summary=f"{meeting.model.slug}: review of {held_on} held, {len(decisions)} decision(s), "
        f"{len(items)} action item(s); next review due {schedule.next_due}",
        payload={
            "model": meeting.model.slug,
            "held_on": str(held_on),
            "decisions": decisions,
            "actions": [
                {"id": i.pk, "owner": i.owner.get_username(), "due": str(i.due)} for i in items
            ],
            "next_due": {"before": str(previous_due), "after": str(schedule.next_due)},
        },
    )
    return meeting


# --- action items ---------------------------------------------------------------------------


def can_close_action(user: Any, item: ActionItem) -> bool:
    """The owner closes their own item; the review roles close any."""
    if not (user and user.is_authenticated) or is_service_account(user):
        return False
    return item.owner_id == user.pk or has_perms(user, [CHANGE_ACTION])


@transaction.atomic
def action_item_close(*, actor: Any, item: ActionItem, status: str, note: str = "") -> ActionItem:
    """Mark an open action item done or cancelled. Cancelling needs a note saying why."""
    item = ActionItem.objects.select_for_update().select_related("model").get(pk=item.pk)
    if not can_close_action(actor, item):
        raise PermissionDenied("Only the item's owner or a review role may close it.")
    errors: dict[str, str] = {}
    if item.status != ActionItem.Status.OPEN:
        errors["status"] = f"This action item is already {item.get_status_display().lower()}."
    elif status not in (ActionItem.Status.DONE, ActionItem.Status.CANCELLED):
        errors["status"] = "Close an action item as done or cancelled."
    if status == ActionItem.Status.CANCELLED and not note.strip():
        errors["note"] = "Say why the action is cancelled."
    elif len(note) > NOTE_MAX:
        errors["note"] = f"Keep the note within {NOTE_MAX} characters."
    if errors:
        raise ValidationError(errors)
    item.status, item.closed_at, item.closed_note = status, timezone.now(), note.strip()
    _save(
        item,
        actor=actor,
        reason=f"closed as {status}",
        fields=["status", "closed_at", "closed_note"],
    )
    record(
        actor=actor,
        action="review.action_close",
        target=item,
        summary=f"{item.model.slug}: action #{item.pk} {status} ({item.text[:120]})",
        payload={
            "model": item.model.slug,
            "action": item.pk,
            "status": status,
            "was_due": str(item.due),
            "has_note": bool(item.closed_note),
        },
    )
    return item


def flag_overdue_actions(today: date) -> list[ActionItem]:
    """Stamp ``overdue_flagged_at`` on open items past their due date, once each (the daily
    task; the governance check routes them). Returns the items flagged by this run."""
    flagged = []
    candidates = ActionItem.objects.filter(
        status=ActionItem.Status.OPEN, due__lt=today, overdue_flagged_at__isnull=True
    ).values_list("pk", flat=True)
    for pk in list(candidates):
        with transaction.atomic():
            item = (
                ActionItem.objects.select_for_update()
                .select_related("model", "owner")
                .filter(pk=pk, status=ActionItem.Status.OPEN, overdue_flagged_at__isnull=True)
                .first()
            )
            if item is None:  # closed or flagged by a concurrent run meanwhile
                continue
            item.overdue_flagged_at = timezone.now()
            _save(item, actor=None, reason="overdue", fields=["overdue_flagged_at"])
            record(
                actor=None,
                action="review.action_overdue",
                target=item,
                summary=f"{item.model.slug}: action #{item.pk} owned by "
                f"{item.owner.get_username()} was due {item.due} and is still open",
                payload={
                    "model": item.model.slug,
                    "action": item.pk,
                    "owner": item.owner.get_username(),
                    "due": str(item.due),
                    "days_overdue": (today - item.due).days,
                },
            )
            flagged.append(item)
    return flagged


# --- what the governance check finds ---------------------------------------------------------


def review_lateness_band(days_late: int, cadence_days: int) -> str:
    """Yellow the first week late, orange after, red once a whole cycle was missed."""
    if days_late >= max(cadence_days, 8):
        return "red"
    return "yellow" if days_late <= 7 else "orange"


def overdue_review_findings(today: date) -> list[Finding]:
    """One finding per model under review whose next review is past due (not held by its due
    date; the due date itself is not late)."""
    schedules = ReviewSchedule.objects.filter(
        next_due__lt=today, model__status__in=REVIEWED_STATUSES
    ).select_related("model")
    findings = []
    for schedule in schedules.order_by("next_due", "pk"):
        late = (today - schedule.next_due).days
        planned = (
            ReviewMeeting.objects.filter(model=schedule.model, held_at__isnull=True)
            .order_by("scheduled_for")
            .values_list("pk", flat=True)
            .first()
        )
        findings.append(
            Finding(
                kind="overdue_review",
                model_id=schedule.model_id,
                summary=f"{schedule.model.slug}: governance review was due {schedule.next_due} "
                f"({late} day{'s' if late != 1 else ''} overdue; every "
                f"{schedule.cadence_days} days)",
                band=review_lateness_band(late, schedule.cadence_days),
                details={
                    "schedule": schedule.pk,
                    "next_due": str(schedule.next_due),
                    "days_overdue": late,
                    "cadence_days": schedule.cadence_days,
                    "planned_meeting": planned,
                },
            )
        )
    return findings


def action_lateness_band(days_late: int) -> str:
    return "red" if days_late > 30 else "orange" if days_late > 7 else "yellow"


def overdue_action_findings(today: date) -> list[Finding]:
    """One finding per open action item past its due date, keyed by the item."""
    items = ActionItem.objects.filter(status=ActionItem.Status.OPEN, due__lt=today)
    findings = []
    for item in items.select_related("model", "owner").order_by("due", "pk"):
        late = (today - item.due).days
        owner = item.owner.get_username()
        findings.append(
            Finding(
                kind="overdue_action",
                model_id=item.model_id,
                key=str(item.pk),
                summary=f"{item.model.slug}: review action #{item.pk} owned by {owner} was due "
                f"{item.due} ({late} day{'s' if late != 1 else ''} overdue): {item.text[:120]}",
                band=action_lateness_band(late),
                details={
                    "action": item.pk,
                    "meeting": item.meeting_id,
                    "owner": owner,
                    "due": str(item.due),
                    "days_overdue": late,
                },
            )
        )
    return findings


# --- reads for the pages ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewRow:
    """One model on the reviews page. ``schedule`` is unsaved while the model has none."""

    model: ClinicalModel
    schedule: ReviewSchedule
    planned: ReviewMeeting | None
    last_held: ReviewMeeting | None
    overdue: bool
    overdue_actions: int


def review_overview(today: date) -> list[ReviewRow]:
    """Every model under review, most overdue first."""
    rows = []
    for model in ClinicalModel.objects.filter(status__in=REVIEWED_STATUSES).order_by("slug"):
        schedule = proposed_schedule(model, today)
        meetings = ReviewMeeting.objects.filter(model=model)
        rows.append(
            ReviewRow(
                model=model,
                schedule=schedule,
                planned=meetings.filter(held_at__isnull=True).order_by("scheduled_for").first(),
                last_held=meetings.filter(held_at__isnull=False).order_by("-held_at").first(),
                overdue=schedule.next_due < today,
                overdue_actions=ActionItem.objects.filter(
                    model=model, status=ActionItem.Status.OPEN, due__lt=today
                ).count(),
            )
        )
    return sorted(rows, key=lambda r: (r.schedule.next_due, r.model.slug))


def open_actions_of(user: Any) -> models.QuerySet[ActionItem]:
    return (
        ActionItem.objects.filter(owner=user, status=ActionItem.Status.OPEN)
        .select_related("model", "meeting")
        .order_by("due", "pk")
    )


def overdue_actions(today: date) -> models.QuerySet[ActionItem]:
    return (
        ActionItem.objects.filter(status=ActionItem.Status.OPEN, due__lt=today)
        .select_related("model", "owner", "meeting")
        .order_by("due", "pk")
    )
