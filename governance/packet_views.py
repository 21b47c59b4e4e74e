"""The audit packet page and its downloads. Thin: the packet is ``governance.packet``.

The page (sections with their counts) is for whoever reads the audit trail; downloading the
PDF or the bundle is an export of the audit trail, so it needs the export permission and is
recorded (a POST, so that a recorded action is never a link a crawler or prefetch can follow).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from accounts.permissions import perms_required
from governance import packet
from registry.models import ClinicalModel

FORMATS = {"pdf": "Download PDF", "zip": "Download bundle (zip)"}


def _counts(data: dict[str, Any]) -> dict[str, str]:
    card = data["card"]["completeness"]
    incidents = data["incidents"]
    workflow = data["workflow"]
    return {
        "card": f"{card['filled']} of {card['total']} fields filled ({card['percent']}%)",
        "versions": f"{len(data['versions'])} versions",
        "releases": f"{len(data['releases'])} releases, "
        f"{sum(len(r['signatures']) for r in data['releases'])} signatures",
        "deployments": f"{sum(len(v) for v in data['deployments'].values())} deployments at "
        f"{len(data['deployments'])} sites",
        "monitoring": f"{data['monitoring']['results']} metric results",
        "incidents": f"{incidents['count']} incidents, {incidents['with_impact_assessment']} "
        f"impact assessments, {incidents['with_review']} reviews",
        "workflow": f"{workflow['predictions']} predictions, {workflow['deferred']} deferred, "
        f"{workflow['overridden']} overridden",
        "review_meetings": f"{len(data['review_meetings'])} meetings",
        "audit": f"{data['audit']['count']} audit events",
    }


@perms_required(packet.VIEW)
@require_GET
def packet_model(request: HttpRequest, slug: str) -> HttpResponse:
    model = get_object_or_404(ClinicalModel, slug=slug)
    data = packet.assemble(model)
    counts = _counts(data)
    return render(
        request,
        "governance/packet/model.html",
        {
            "model": model,
            "sections": [(key, title, counts[key]) for key, title in packet.SECTIONS],
            "formats": FORMATS.items(),
            "may_download": request.user.has_perm(packet.EXPORT),
            "pdf_limit": packet.PDF_AUDIT_LIMIT,
        },
    )


@perms_required(packet.VIEW, packet.EXPORT)
@require_POST
def packet_download(request: HttpRequest, slug: str) -> HttpResponse:
    model = get_object_or_404(ClinicalModel, slug=slug)
    kind = request.POST.get("format", "")
    if kind not in FORMATS:
        return HttpResponseBadRequest(
            f"Unknown packet format {kind!r}: choose pdf or zip.", content_type="text/plain"
        )
    made = packet.packet_download(actor=request.user, model=model, kind=kind)
    response = HttpResponse(made.data, content_type=made.content_type)
    response["Content-Disposition"] = f'attachment; filename="{made.name}"'
    response["X-Content-SHA256"] = made.sha256
    return response
