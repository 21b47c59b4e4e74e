"""Model card pages and exports: thin views over ``registry.cards.build_card``."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from accounts.permissions import perms_required
from registry.card_exports import EXPORT_FORMATS
from registry.cards import ModelCard, build_card, default_card_version
from registry.models import ClinicalModel, ModelVersion


def _card(request: HttpRequest, slug: str) -> tuple[ClinicalModel, ModelCard]:
    """The card for ``?version=`` if given (404 if the model has no such version), else for
    the default version."""
    model = get_object_or_404(ClinicalModel, slug=slug)
    wanted = request.GET.get("version", "").strip()
    if wanted:
        version = get_object_or_404(ModelVersion, model=model, version=wanted)
    else:
        version = default_card_version(model)
    return model, build_card(model, version=version)


@perms_required("registry.view_clinicalmodel")
def card(request: HttpRequest, slug: str) -> HttpResponse:
    model, model_card = _card(request, slug)
    context = {
        "model": model,
        "card": model_card,
        "completeness": model_card.completeness,
        "versions": model.versions.order_by("-created_at", "-pk"),
        "formats": sorted(EXPORT_FORMATS),
    }
    return render(request, "registry/model_card.html", context)


@perms_required("registry.view_clinicalmodel")
def export(request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
    export_format = EXPORT_FORMATS.get(fmt)
    if export_format is None:
        raise Http404(f"No model card export as {fmt!r}.")
    _, model_card = _card(request, slug)
    response = HttpResponse(
        export_format.render(model_card), content_type=export_format.content_type
    )
    filename = f"{model_card.slug}-{model_card.version or 'no-version'}-model-card.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
