"""The audit trail page: every recorded action, filtered and paged, with the chain's status."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_filters import DateFilter

from accounts.permissions import perms_required
from governance.audit.api.filters import AuditEventFilter
from governance.audit.models import AuditEvent, ChainVerification
from governance.audit.services import chain_verify

PAGE_SIZE = 50
#: The filters shown on the page, in order (the API's since/until also work in the URL).
PAGE_FILTERS = ("action", "actor", "object_type", "object_id", "date_from", "date_to")


class AuditTrailFilter(AuditEventFilter):
    """The API's filters plus a whole-day date range (UTC), which suits a date picker."""

    date_from = DateFilter(
        field_name="occurred_at",
        lookup_expr="date__gte",
        label="From (UTC date)",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    date_to = DateFilter(
        field_name="occurred_at",
        lookup_expr="date__lte",
        label="To (UTC date, inclusive)",
        widget=forms.DateInput(attrs={"type": "date"}),
    )


@perms_required("audit.view_auditevent")
def trail(request: HttpRequest) -> HttpResponse:
    filterset = AuditTrailFilter(request.GET, queryset=AuditEvent.objects.order_by("-seq"))
    # Invalid filters show their errors and no rows, never the unfiltered trail as if filtered.
    events = filterset.qs if filterset.is_valid() else AuditEvent.objects.none()
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    # Verification reads the whole chain, so the page shows the latest stored verdict (hourly
    # by schedule, or on request) rather than re-reading an ever-growing trail on every view.
    verification = ChainVerification.objects.select_related("verified_by").first()
    return render(
        request,
        "audit/trail.html",
        {
            "page": page,
            "filter_fields": [filterset.form[name] for name in PAGE_FILTERS],
            "filter_errors": filterset.form.non_field_errors(),
            "filtered": any(value for key, value in request.GET.items() if key != "page"),
            "known_actions": AuditEvent.objects.order_by("action")
            .values_list("action", flat=True)
            .distinct(),
            "verification": verification,
            "may_verify": request.user.has_perm("audit.verify_auditevent"),
        },
    )


@perms_required("audit.verify_auditevent")
@require_POST
def verify(request: HttpRequest) -> HttpResponse:
    result = chain_verify(actor=request.user, trigger=ChainVerification.Trigger.PAGE)
    if result.ok:
        messages.success(request, f"Audit chain verified: all {result.event_count} events intact.")
    else:
        messages.error(
            request, f"Audit chain BROKEN at event #{result.broken_seq}: {result.reason}"
        )
    return redirect("audit:trail")
