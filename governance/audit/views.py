"""The audit trail page: every recorded action, filtered and paged, with the chain's status."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django_filters import DateFilter

from accounts.permissions import perms_required
from governance.audit.api.filters import AuditEventFilter
from governance.audit.exports import MEDIA_TYPES, ExportFilters, audit_export
from governance.audit.models import AuditEvent, ChainVerification
from governance.audit.services import chain_verify
from registry.models import ClinicalModel

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
            "filtered": filtered_for_export(request),
            "known_actions": AuditEvent.objects.order_by("action")
            .values_list("action", flat=True)
            .distinct(),
            "verification": verification,
            "may_verify": request.user.has_perm("audit.verify_auditevent"),
            "may_export": request.user.has_perm("audit.export_auditevent"),
            "export_query": request.GET.urlencode() if filtered_for_export(request) else "",
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


def filtered_for_export(request: HttpRequest) -> bool:
    return any(value for key, value in request.GET.items() if key != "page")


# --- Export ---------------------------------------------------------------------------------

FORMAT_CHOICES = [
    ("jsonl", "JSON Lines — verifiable offline"),
    ("csv", "CSV — for spreadsheets"),
    ("pdf", "PDF — for reading"),
]


class ExportForm(forms.Form):
    """The export's filters. Dates are whole UTC days; ``date_to`` is included."""

    model = forms.ChoiceField(required=False, label="Model")
    date_from = forms.DateField(
        required=False, label="From (UTC date)", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False,
        label="To (UTC date, inclusive)",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    actor = forms.CharField(required=False, max_length=150, label="Actor (username or user id)")
    action = forms.CharField(
        required=False,
        max_length=80,
        label="Action",
        help_text="Exact, e.g. release.sign, or a prefix ending in *, e.g. release.*",
    )
    format = forms.ChoiceField(choices=FORMAT_CHOICES, initial="jsonl", label="Format")

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("auto_id", "export-%s")
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["model"].choices = [("", "All models")] + [
            (slug, f"{name} ({slug})")
            for slug, name in ClinicalModel.objects.order_by("name").values_list("slug", "name")
        ]

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> ExportFilters:
        data = self.cleaned_data
        start, end = data.get("date_from"), data.get("date_to")
        return ExportFilters(
            model=data["model"],
            since=datetime.combine(start, time(), tzinfo=UTC) if start else None,
            until=datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC) if end else None,
            actor=data["actor"].strip(),
            action=data["action"].strip(),
        )


def _export_filename(filters: ExportFilters, fmt: str) -> str:
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    return f"vigil-audit-{filters.model or 'all'}-{stamp}.{fmt}"


@perms_required("audit.export_auditevent")
@require_http_methods(["GET", "POST"])
def export(request: HttpRequest) -> HttpResponse:
    """GET: the form (filled from the trail page's filters). POST: the file, streamed; the
    ``audit.export`` event with its sha256 is appended when the last byte has left."""
    if request.method == "POST":
        form = ExportForm(request.POST)
        if form.is_valid():
            filters, fmt = form.filters(), form.cleaned_data["format"]
            response = StreamingHttpResponse(
                audit_export(actor=request.user, filters=filters, fmt=fmt),
                content_type=MEDIA_TYPES[fmt],
            )
            response["Content-Disposition"] = (
                f'attachment; filename="{_export_filename(filters, fmt)}"'
            )
            response["Cache-Control"] = "no-store"
            return response
    else:
        prefill = {k: v for k, v in request.GET.items() if k in ExportForm.base_fields}
        form = ExportForm(initial=prefill)
    return render(
        request,
        "audit/export.html",
        {
            "form": form,
            "recent_exports": AuditEvent.objects.filter(action="audit.export").order_by("-seq")[
                :10
            ],
        },
        status=400 if form.is_bound else 200,
    )
