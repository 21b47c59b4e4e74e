"""Review meeting pages: every model's schedule, one model's meetings, one meeting's pack and
minutes, and closing an action item. Thin: access in the decorators, writes in
``governance.reviews``; a refused write comes back to the page as a message (the minutes form
keeps what was typed)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.pages import form_refused, refused
from accounts.permissions import has_perms, perms_required
from governance import reviews
from governance.models import ActionItem, ReviewMeeting
from governance.review_forms import (
    ACTIONS_PREFIX,
    ActionFormSet,
    CloseActionForm,
    MinutesForm,
    PlanForm,
    ScheduleForm,
    action_rows,
)
from registry.models import ClinicalModel

VIEW_SCHEDULE = "governance.view_reviewschedule"
VIEW_MEETING = "governance.view_reviewmeeting"
VIEW_ACTION = "governance.view_actionitem"
VIEW_ALL = (VIEW_SCHEDULE, VIEW_MEETING, VIEW_ACTION)


def _model_page(model: ClinicalModel) -> HttpResponseRedirect:
    return redirect(reverse("governance:review-model", args=[model.slug]))


def _meeting_page(meeting: ReviewMeeting, anchor: str = "") -> HttpResponseRedirect:
    url = reverse("governance:review-meeting", args=[meeting.pk])
    return redirect(f"{url}#{anchor}" if anchor else url)


# --- every model -----------------------------------------------------------------------------


@perms_required(*VIEW_ALL)
def review_list(request: HttpRequest) -> HttpResponse:
    today = timezone.now().date()
    return render(
        request,
        "governance/reviews/list.html",
        {
            "today": today,
            "rows": reviews.review_overview(today),
            "my_actions": reviews.open_actions_of(request.user),
            "overdue_actions": reviews.overdue_actions(today),
        },
    )


# --- one model -------------------------------------------------------------------------------


@perms_required(*VIEW_ALL)
def review_model(request: HttpRequest, slug: str) -> HttpResponse:
    model = get_object_or_404(ClinicalModel, slug=slug)
    today = timezone.now().date()
    schedule = reviews.proposed_schedule(model, today)
    user = request.user
    return render(
        request,
        "governance/reviews/model.html",
        {
            "model": model,
            "today": today,
            "schedule": schedule,
            "schedule_saved": schedule.pk is not None,
            "overdue": schedule.next_due < today,
            "meetings": model.review_meetings.select_related("recorded_by").order_by(
                "-scheduled_for", "-pk"
            ),
            "actions": ActionItem.objects.filter(model=model, status=ActionItem.Status.OPEN)
            .select_related("owner", "meeting")
            .order_by("due", "pk"),
            "can_schedule": has_perms(user, [reviews.CHANGE_SCHEDULE]),
            "can_plan": has_perms(user, [reviews.ADD_MEETING]),
            "schedule_form": ScheduleForm(
                initial={"cadence_days": schedule.cadence_days, "next_due": schedule.next_due}
            ),
            "plan_form": PlanForm(initial={"scheduled_for": schedule.next_due}),
            "default_cadence": reviews.default_cadence(model.risk_tier),
        },
    )


@perms_required(*VIEW_ALL, reviews.CHANGE_SCHEDULE)
@require_POST
def review_schedule(request: HttpRequest, slug: str) -> HttpResponse:
    model = get_object_or_404(ClinicalModel, slug=slug)
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        form_refused(request, form)
        return _model_page(model)
    try:
        schedule = reviews.review_schedule_update(
            actor=request.user, model=model, **form.cleaned_data
        )
    except (ValidationError, PermissionDenied) as exc:
        refused(request, exc)
    else:
        messages.success(
            request, f"Reviews every {schedule.cadence_days} days; next due {schedule.next_due}."
        )
    return _model_page(model)


@perms_required(*VIEW_ALL, reviews.ADD_MEETING)
@require_POST
def review_plan(request: HttpRequest, slug: str) -> HttpResponse:
    model = get_object_or_404(ClinicalModel, slug=slug)
    form = PlanForm(request.POST)
    if not form.is_valid():
        form_refused(request, form)
        return _model_page(model)
    try:
        meeting = reviews.review_meeting_plan(
            actor=request.user, model=model, scheduled_for=form.cleaned_data["scheduled_for"]
        )
    except (ValidationError, PermissionDenied) as exc:
        refused(request, exc)
        return _model_page(model)
    messages.success(request, f"Meeting of {meeting.scheduled_for} planned; its pack is ready.")
    return _meeting_page(meeting)


# --- one meeting -----------------------------------------------------------------------------


def _meeting(pk: int) -> ReviewMeeting:
    found = ReviewMeeting.objects.select_related("model", "recorded_by")
    return get_object_or_404(found, pk=pk)


def _meeting_context(request: HttpRequest, meeting: ReviewMeeting, **forms: Any) -> dict:
    user = request.user
    today = timezone.now().date()
    actions = meeting.actions.select_related("owner").order_by("due", "pk")
    return {
        "meeting": meeting,
        "model": meeting.model,
        "pack": meeting.pack,
        "today": today,
        "held": meeting.held_at is not None,
        "can_minute": has_perms(user, [reviews.CHANGE_MEETING]) and meeting.held_at is None,
        "actions": [(a, reviews.can_close_action(user, a), a.due < today) for a in actions],
        "minutes_form": forms.get("minutes_form") or MinutesForm(),
        "action_formset": forms.get("action_formset") or ActionFormSet(prefix=ACTIONS_PREFIX),
        "close_form": CloseActionForm(),
    }


@perms_required(*VIEW_ALL)
def review_meeting(request: HttpRequest, pk: int) -> HttpResponse:
    meeting = _meeting(pk)
    return render(request, "governance/reviews/meeting.html", _meeting_context(request, meeting))


@perms_required(*VIEW_ALL, reviews.CHANGE_MEETING)
@require_POST
def review_pack(request: HttpRequest, pk: int) -> HttpResponse:
    meeting = _meeting(pk)
    try:
        reviews.review_pack_regenerate(actor=request.user, meeting=meeting)
    except (ValidationError, PermissionDenied) as exc:
        refused(request, exc)
    else:
        messages.success(request, "The pack was assembled again with today's data.")
    return _meeting_page(meeting)


def _attach_errors(
    request: HttpRequest, exc: ValidationError, form: MinutesForm, formset: Any
) -> None:
    """Put each service error on the field it is about, so the page shows it in place; an
    error about the meeting itself (already held) becomes a message."""
    for key, errors in exc.message_dict.items():
        prefix, _, rest = key.partition("-")
        if prefix == ACTIONS_PREFIX and rest:
            index, _, field = rest.partition("-")
            formset.forms[int(index)].add_error(field, errors)
        elif key in form.fields:
            form.add_error(key, errors)
        else:
            for error in errors:
                messages.error(request, error)


@perms_required(*VIEW_ALL, reviews.CHANGE_MEETING)
@require_POST
def review_minutes(request: HttpRequest, pk: int) -> HttpResponse:
    meeting = _meeting(pk)
    form = MinutesForm(request.POST)
    formset = ActionFormSet(request.POST, prefix=ACTIONS_PREFIX)
    if form.is_valid() and formset.is_valid():
        try:
            reviews.review_minutes_record(
                actor=request.user,
                meeting=meeting,
                attendees=form.cleaned_data["attendees"],
                minutes=form.cleaned_data["minutes"],
                decisions=form.decision_list(),
                actions=action_rows(formset),
                held_on=form.cleaned_data["held_on"],
            )
        except PermissionDenied as exc:
            refused(request, exc)
            return _meeting_page(meeting)
        except ValidationError as exc:
            _attach_errors(request, exc, form, formset)
        else:
            messages.success(request, "Minutes recorded; the next review is scheduled.")
            return _meeting_page(meeting, "minutes")
    messages.error(request, "Nothing was recorded: correct the fields marked below.")
    context = _meeting_context(request, meeting, minutes_form=form, action_formset=formset)
    return render(request, "governance/reviews/meeting.html", context, status=400)


# --- action items ----------------------------------------------------------------------------


@perms_required(VIEW_ACTION)
@require_POST
def review_action_close(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(ActionItem.objects.select_related("meeting"), pk=pk)
    if not reviews.can_close_action(request.user, item):
        raise PermissionDenied("Only the item's owner or a review role may close it.")
    form = CloseActionForm(request.POST)
    if not form.is_valid():
        form_refused(request, form)
    else:
        try:
            reviews.action_item_close(actor=request.user, item=item, **form.cleaned_data)
        except (ValidationError, PermissionDenied) as exc:
            refused(request, exc)
        else:
            messages.success(request, f"Action #{item.pk} closed as {form.cleaned_data['status']}.")
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return _meeting_page(item.meeting, "actions")
