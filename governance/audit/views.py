from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.permissions import perms_required
from governance.audit.models import AuditEvent


@perms_required("audit.view_auditevent")
def trail(request: HttpRequest) -> HttpResponse:
    return render(request, "audit/trail.html", {"events": AuditEvent.objects.order_by("-seq")[:100]})
