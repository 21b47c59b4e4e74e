"""The access review page for compliance: six sections, filters, CSV export per section, and
the "reviewed" form of each break-glass grant. Thin: reads in ``accounts.access_review``,
writes in ``accounts.break_glass`` and ``access_review.access_review_export``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import access_review, break_glass
from accounts.models import BreakGlassGrant
from accounts.permissions import perms_required

#: Rows shown per section on the page; the CSV export has them all.
PAGE_ROWS = 100


class AccessFilterForm(forms.Form):
    date_from = forms.DateField(
        label="From (UTC date)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To (UTC date, inclusive)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    user = forms.CharField(label="User (username)", required=False, max_length=150)

    def clean_user(self) -> str:
        # Not checked against existing accounts: failed logins name usernames that don't exist.
        return str(self.cleaned_data["user"]).strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise ValidationError("The start date is after the end date.")
        return cleaned

    def filters(self) -> access_review.Filters | None:
        """The chosen filters, or ``None`` when one is invalid: the page then shows the errors
        and no rows, never the unfiltered review as if it were filtered."""
        if not self.is_valid():
            return None
        data = self.cleaned_data
        return access_review.Filters(data["date_from"], data["date_to"], data["user"])


class GrantReviewForm(forms.Form):
    note = forms.CharField(
        label="Review note",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=break_glass.NOTE_MAX_LENGTH,
        error_messages={"required": "Say what you checked before marking this reviewed."},
    )


def _bad_request(text: str) -> HttpResponse:
    return HttpResponse(text, status=400, content_type="text/plain; charset=utf-8")


def _export(request: HttpRequest, filters: access_review.Filters) -> HttpResponse:
    section = request.GET.get("section", "")
    try:
        lines = access_review.access_review_export(
            actor=request.user, section=section, filters=filters
        )
    except ValidationError as exc:
        return _bad_request(" ".join(exc.messages))
    stamp = timezone.now().strftime("%Y%m%dT%H%MZ")
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="access-{section}-{stamp}.csv"'
    return response


def _page(
    request: HttpRequest,
    filter_form: AccessFilterForm,
    filters: access_review.Filters | None,
    *,
    review_forms: dict[int, GrantReviewForm] | None = None,
    status: int = 200,
) -> HttpResponse:
    sections: dict[str, Any] = {name: [] for name in access_review.SECTIONS}
    if filters is not None:
        people = access_review.people()
        sections = {
            "people": [p for p in people if p.username == (filters.username or p.username)],
            "case_views": access_review.case_views(filters)[:PAGE_ROWS],
            "denied": access_review.denied_attempts(filters)[:PAGE_ROWS],
            "signing": access_review.signing_attempts(filters)[:PAGE_ROWS],
            "logins": access_review.login_lockouts(filters)[:PAGE_ROWS],
            "break_glass": access_review.break_glass_grants(filters, pending_only=True),
        }
    forms_by_grant = review_forms or {}
    pending = [(g, forms_by_grant.get(g.pk) or GrantReviewForm()) for g in sections["break_glass"]]
    return render(
        request,
        "accounts/access_review.html",
        {
            "filter_form": filter_form,
            "filtered": filters is not None and filters != access_review.Filters(),
            "query": request.GET.urlencode() if filters is not None else "",
            "sections": sections,
            "pending": pending,
            "page_rows": PAGE_ROWS,
            "titles": {name: spec.title for name, spec in access_review.SECTIONS.items()},
        },
        status=status,
    )


@perms_required(access_review.REVIEW_ACCESS)
def access_review_page(request: HttpRequest) -> HttpResponse:
    filter_form = AccessFilterForm(request.GET)
    filters = filter_form.filters()
    if request.GET.get("export"):
        if request.GET["export"] != "csv":
            return _bad_request("Only export=csv is offered.")
        if filters is None:
            errors = "; ".join(e for errs in filter_form.errors.values() for e in errs)
            return _bad_request(f"Invalid filters: {errors}")
        return _export(request, filters)
    return _page(request, filter_form, filters, status=200 if filters is not None else 400)


@perms_required(access_review.REVIEW_ACCESS)
@require_POST
def grant_reviewed(request: HttpRequest, pk: int) -> HttpResponse:
    grant = get_object_or_404(BreakGlassGrant, pk=pk)
    form = GrantReviewForm(request.POST)
    if form.is_valid():
        try:
            break_glass.break_glass_review(actor=request.user, grant=grant, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error("note", exc.messages)
        else:
            messages.success(
                request, f"Break-glass access to case #{grant.case_id} by {grant.user} reviewed."
            )
            return redirect("access:review")
    if grant.reviewed_at is not None:  # no longer listed, so its errors go on top
        messages.error(request, " ".join(form.errors.get("note", [])))
    filter_form = AccessFilterForm({})
    return _page(request, filter_form, filter_form.filters(), review_forms={pk: form}, status=400)
