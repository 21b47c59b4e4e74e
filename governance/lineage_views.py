"""Decision lineage pages: find an event by its id, and see which version, thresholds,
deferral policy and signed release produced it. Thin: the answer is ``governance.lineage``."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.permissions import AnyOf, perms_required
from governance import lineage

READ = AnyOf((lineage.VIEW_AUDIT, lineage.VIEW_CASES))


@perms_required(READ)
def lineage_search(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("event_id", "").strip()
    error = ""
    if raw:
        try:
            event_id = uuid.UUID(raw)
        except ValueError:
            error = "Enter an event id as a UUID, e.g. 3f2b8c1e-6d4a-4e8f-9b1a-2c7d5e9f0a13."
        else:
            event = lineage.event_for_lineage(event_id)
            if event is not None and lineage.may_view(request.user, event):
                return redirect(reverse("governance:lineage-detail", args=[event_id]))
            error = f"No prediction event {event_id} that you may see."
    status = 404 if error.startswith("No ") else 400 if error else 200
    return render(
        request, "governance/lineage/search.html", {"query": raw, "error": error}, status=status
    )


@perms_required(READ)
def lineage_detail(request: HttpRequest, event_id: uuid.UUID) -> HttpResponse:
    event = lineage.event_for_lineage(event_id)
    if event is None or not lineage.may_view(request.user, event):
        raise Http404("No prediction event with this id that you may see.")
    return render(request, "governance/lineage/detail.html", {"lineage": lineage.lineage(event)})
