"""Review queue pages. Thin: access in the decorators and ``review.cases_visible_to``, reads and
writes in ``monitoring.review``, whose ``ValidationError`` comes back as inline form errors.

A case of a site the user does not work at is not shown: its page offers the break-glass form
(403), whose emergency reason lets them read that one case for a limited time; deciding it
stays a 404. A case that does not exist is a 404."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts import break_glass
from accounts.permissions import perms_required
from monitoring import review
from monitoring.models import OverrideReason, ReviewCase, ReviewDecision, ReviewStatus
from registry.forms import add_service_errors
from registry.models import ClinicalModel

PAGE_SIZE = 50
RECENTLY_DECIDED = 10


class BreakGlassForm(forms.Form):
    reason = forms.CharField(
        label="Why do you need this case now?",
        widget=forms.Textarea(attrs={"rows": 3}),
        min_length=break_glass.REASON_MIN_LENGTH,
        max_length=break_glass.REASON_MAX_LENGTH,
        help_text=(
            f"At least {break_glass.REASON_MIN_LENGTH} characters: the emergency and your part "
            "in it. Avoid names and record numbers."
        ),
        error_messages={"required": "State the emergency before opening the case."},
    )


class QueueFilterForm(forms.Form):
    site = forms.ModelChoiceField(queryset=None, required=False, empty_label="All my sites")
    model = forms.ModelChoiceField(
        queryset=ClinicalModel.objects.order_by("name"), required=False, empty_label="Any model"
    )
    status = forms.ChoiceField(
        choices=[(ReviewStatus.OPEN, "Waiting"), (ReviewStatus.DECIDED, "Decided")],
        required=False,
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = review.visible_sites(user)  # type: ignore[attr-defined]

    def filters(self) -> dict[str, Any] | None:
        """The chosen filters, or ``None`` when one is invalid (e.g. a site the user does not
        work at): the page then shows the error and no rows, never an unfiltered queue."""
        if self.is_bound and not self.is_valid():
            return None
        cleaned = getattr(self, "cleaned_data", {})
        return {
            "site": cleaned.get("site"),
            "model": cleaned.get("model"),
            "status": cleaned.get("status") or ReviewStatus.OPEN,
        }


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        label="Your decision",
        choices=ReviewDecision.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose whether you agree with the model or override it."},
    )
    reason_code = forms.ChoiceField(
        label="Override reason",
        choices=[("", "— choose for an override —"), *OverrideReason.choices],
        required=False,
        help_text="Required when you override; leave empty when you agree.",
    )
    note = forms.CharField(
        label="Note",
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=review.NOTE_MAX_LENGTH,
        help_text="Optional (required for “Other”). Avoid names and record numbers.",
    )


@perms_required(review.VIEW)
def queue(request: HttpRequest) -> HttpResponse:
    filters = QueueFilterForm(request.GET or None, user=request.user)
    chosen = filters.filters()
    status = chosen.pop("status") if chosen is not None else ReviewStatus.OPEN
    if chosen is None:
        cases = decided = ReviewCase.objects.none()
    else:
        cases = review.review_queue(request.user, status=status, **chosen)
        decided = review.review_queue(request.user, status=ReviewStatus.DECIDED, **chosen)
    page = Paginator(cases, PAGE_SIZE).get_page(request.GET.get("page"))
    recent = None
    if status != ReviewStatus.DECIDED:
        recent = review.queue_rows(decided[:RECENTLY_DECIDED])
    return render(
        request,
        "monitoring/queue.html",
        {
            "filters": filters,
            "status": status,
            "page": page,
            "rows": review.queue_rows(page.object_list),
            "recent": recent,
            "average_time_to_action": review.duration_text(review.average_time_to_action(decided)),
            "decided_count": decided.count(),
            "site_count": review.visible_sites(request.user).count(),
        },
    )


def _case_page(
    request: HttpRequest, case: ReviewCase, form: DecisionForm | None, status: int = 200
) -> HttpResponse:
    """The evidence packet. Every rendering shows patient data, so every one is audited."""
    event = review.case_opened(actor=request.user, case=case)
    under_break_glass = bool(event.payload.get("break_glass"))
    if under_break_glass:
        grant = break_glass.active_grant(user=request.user, case_id=case.pk)
        until = f"{grant.expires_at:%H:%M} UTC" if grant else "the grant ends"
        messages.warning(
            request,
            f"Break-glass access to a case outside your sites, until {until}. Every opening "
            "is recorded and reviewed by compliance; decisions stay with the site's reviewers.",
        )
    may_decide = (
        request.user.has_perm(review.DECIDE)
        and case.status == ReviewStatus.OPEN
        and not under_break_glass
    )
    return render(
        request,
        "monitoring/case.html",
        {
            "case": case,
            "packet": review.evidence_packet(case, viewer=request.user),
            "form": (form or DecisionForm()) if may_decide else None,
            "refused": form if form is not None and not may_decide else None,
        },
        status=status,
    )


def _visible_case(request: HttpRequest, pk: int) -> ReviewCase:
    return get_object_or_404(review.cases_visible_to(request.user), pk=pk)


@perms_required(review.VIEW)
def case(request: HttpRequest, pk: int) -> HttpResponse:
    visible = review.cases_visible_to(request.user).filter(pk=pk).first()
    if visible is not None:
        return _case_page(request, visible, None)
    return _break_glass(request, pk)


def _break_glass(request: HttpRequest, pk: int) -> HttpResponse:
    """A case of another site: the page under a live grant, else the break-glass form (403,
    400 with the errors of a bad reason). Cases that do not exist stay a 404."""
    outside = review.case_outside_sites(request.user, pk)
    if outside is None:
        raise Http404("No such review case.")
    if request.method != "POST" and review.break_glass_grant_for(request.user, outside):
        return _case_page(request, outside, None)
    form = BreakGlassForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            review.case_break_glass(actor=request.user, case=outside, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return redirect("review:case", pk=pk)
    # The refusal's reason in the access review's denied attempts (AccessDeniedAuditMiddleware).
    request.vigil_denied_detail = "Case outside the user's sites; break-glass offered."  # type: ignore[attr-defined]
    return render(
        request,
        "monitoring/break_glass.html",
        {"case": outside, "form": form, "minutes": break_glass.grant_minutes()},
        status=400 if form.is_bound else 403,
    )


@perms_required(review.VIEW, review.DECIDE)
@require_POST
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    case = _visible_case(request, pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _case_page(request, case, form)
    try:
        decided = review.review_decide(actor=request.user, case=case, **form.cleaned_data)
    except review.CaseAlreadyDecided as exc:
        add_service_errors(form, exc)
        return _case_page(request, _visible_case(request, pk), form, status=409)
    except ValidationError as exc:
        add_service_errors(form, exc)
        return _case_page(request, case, form)
    verb = "Overrode" if decided.decision == ReviewDecision.OVERRIDE else "Agreed with"
    messages.success(
        request,
        f"{verb} the model on case {review.case_ref(decided.event.case_key_hash)} "
        f"({decided.model.slug} at {decided.site.code}); time to action "
        f"{review.duration_text(decided.time_to_action)}.",
    )
    return redirect("review:queue")
