"""Review queue pages. Thin: access in the decorators and ``review.cases_visible_to`` (a case of
a site the user does not work at is a 404, so its existence is not revealed), reads and writes
in ``monitoring.review``, whose ``ValidationError`` comes back as inline form errors."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import perms_required
from monitoring import review
from monitoring.models import OverrideReason, ReviewCase, ReviewDecision, ReviewStatus
from registry.forms import add_service_errors
from registry.models import ClinicalModel

PAGE_SIZE = 50
RECENTLY_DECIDED = 10


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
    review.case_opened(actor=request.user, case=case)
    may_decide = request.user.has_perm(review.DECIDE) and case.status == ReviewStatus.OPEN
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
    return _case_page(request, _visible_case(request, pk), None)


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
