"""Registry pages. Thin: access is in the decorators, reads in ``registry.selectors``, every
write in ``registry.services`` (whose validation errors come back as inline form errors)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.permissions import AnyOf, perms_required
from registry import selectors, services
from registry.forms import (
    ClinicalModelEditForm,
    ClinicalModelForm,
    DataFeedForm,
    DeploymentFreezeForm,
    InventoryFilterForm,
    LiveQueryForm,
    SiteForm,
    VersionRegistration,
    VersionTransitionForm,
    add_service_errors,
)
from registry.models import ClinicalModel, Deployment, ModelVersion

T = TypeVar("T")

VIEW_MODEL = ("registry.view_clinicalmodel", "registry.view_modelversion",
              "registry.view_deployment")


def _through_service(form: forms.BaseForm, write: Callable[[], T]) -> T | None:
    """Run one service write for a valid form; its ``ValidationError`` becomes inline errors
    (and, the service being atomic, nothing is saved)."""
    try:
        return write()
    except ValidationError as exc:
        add_service_errors(form, exc)
        return None


def _posted(request: HttpRequest) -> Any:
    return request.POST if request.method == "POST" else None


# --- Inventory and one model ----------------------------------------------------------------

@perms_required("registry.view_clinicalmodel")
def inventory(request: HttpRequest) -> HttpResponse:
    filters = InventoryFilterForm(request.GET or None)
    models = selectors.inventory(**filters.filters())
    return render(request, "registry/inventory.html", {"filters": filters, "models": models})


@perms_required(*VIEW_MODEL)
def model_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return _model_page(request, get_object_or_404(ClinicalModel, slug=slug))


def _model_page(
    request: HttpRequest, model: ClinicalModel, refused: DeploymentFreezeForm | None = None
) -> HttpResponse:
    """The model detail page; ``refused`` is a freeze form to show again with its errors."""
    deployments = list(selectors.model_deployments(model))
    for deployment in deployments:
        deployment.freeze_form = (  # type: ignore[attr-defined]
            refused if refused is not None and refused.deployment.pk == deployment.pk
            else DeploymentFreezeForm(deployment=deployment)
        )
    return render(request, "registry/model_detail.html", {
        "model": model,
        "versions": selectors.model_versions(model),
        "deployments": deployments,
    })


@perms_required("registry.add_clinicalmodel")
def model_register(request: HttpRequest) -> HttpResponse:
    form = ClinicalModelForm(_posted(request))
    if form.is_bound and form.is_valid():
        model = _through_service(form, lambda: services.model_register(
            actor=request.user, fields=form.cleaned_data))
        if model is not None:
            messages.success(request, f"Registered {model.name}. Next: register its first version.")
            return redirect("registry:model_detail", slug=model.slug)
    return render(request, "registry/model_form.html", {"form": form, "model": None})


@perms_required("registry.change_clinicalmodel")
def model_edit(request: HttpRequest, slug: str) -> HttpResponse:
    model = get_object_or_404(ClinicalModel, slug=slug)
    # The form gets its own copy: validation writes the proposed values onto its instance.
    form = ClinicalModelEditForm(_posted(request), instance=ClinicalModel.objects.get(pk=model.pk))
    if form.is_bound and form.is_valid():
        if not form.changed_fields():
            form.add_error(None, "Nothing to save: no field of the record was changed.")
        elif _through_service(form, lambda: services.model_update(
                actor=request.user, model=model, fields=form.changed_fields(),
                reason=form.cleaned_data["reason"])):
            messages.success(request, f"Saved the changes to {model.slug}.")
            return redirect("registry:model_detail", slug=model.slug)
    return render(request, "registry/model_form.html", {"form": form, "model": model})


@perms_required(*VIEW_MODEL)
def history(request: HttpRequest, slug: str) -> HttpResponse:
    model = get_object_or_404(ClinicalModel, slug=slug)
    # The audit trail is restricted to the roles that may read it (audit.view_auditevent).
    may_audit = request.user.has_perm("audit.view_auditevent")
    return render(request, "registry/history.html", {
        "model": model,
        "entries": selectors.model_history(model),
        "audit_events": selectors.model_audit_events(model) if may_audit else None,
    })


@perms_required("registry.freeze_deployment")
@require_POST
def deployment_freeze(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    deployment = get_object_or_404(
        Deployment.objects.select_related("model", "site", "version"), pk=pk, model__slug=slug
    )
    form = DeploymentFreezeForm(request.POST, deployment=deployment)
    if form.is_valid() and _through_service(form, lambda: services.deployment_set_frozen(
            actor=request.user, deployment=deployment, frozen=form.cleaned_data["frozen"],
            reason=form.cleaned_data["reason"])):
        state = "frozen: every case defers to a human" if form.cleaned_data["frozen"] else "running"
        messages.success(request, f"{deployment.version} at {deployment.site.code} is {state}.")
        return redirect("registry:model_detail", slug=slug)
    return _model_page(request, deployment.model, refused=form)


# --- Versions -------------------------------------------------------------------------------

def _extra_rows(request: HttpRequest) -> int:
    try:
        return min(max(int(request.GET.get("rows", 8)), 1), 60)
    except ValueError:
        return 8


@perms_required("registry.add_modelversion")
def version_register(request: HttpRequest, slug: str) -> HttpResponse:
    model = get_object_or_404(ClinicalModel, slug=slug)
    registration = VersionRegistration(model, _posted(request), extra_rows=_extra_rows(request))
    if registration.is_bound and registration.is_valid():
        try:
            version = services.version_register(
                actor=request.user, model=model, **registration.service_arguments()
            )
        except ValidationError as exc:
            registration.add_service_errors(exc)
        else:
            messages.success(request, f"Registered {model.slug} version {version.version}.")
            return redirect("registry:version_detail", slug=slug, version=version.version)
    return render(request, "registry/version_form.html", {
        "model": model, "form": registration.form, "features": registration.features,
        "more_rows": len(registration.features.forms) + 5,
    })


def _get_version(slug: str, version: str) -> ModelVersion:
    return get_object_or_404(
        ModelVersion.objects.select_related("model", "created_by"),
        model__slug=slug, version=version,
    )


@perms_required(*VIEW_MODEL)
def version_detail(request: HttpRequest, slug: str, version: str) -> HttpResponse:
    found = _get_version(slug, version)
    return _version_page(request, found, VersionTransitionForm(version=found, user=request.user))


@perms_required(AnyOf(("registry.change_modelversion", "registry.approve_modelversion")))
@require_POST
def version_transition(request: HttpRequest, slug: str, version: str) -> HttpResponse:
    found = _get_version(slug, version)
    form = VersionTransitionForm(request.POST, version=found, user=request.user)
    if form.is_valid() and _through_service(form, lambda: services.version_transition(
            actor=request.user, version=found, to_status=form.cleaned_data["to_status"],
            reason=form.cleaned_data["reason"])):
        messages.success(request, f"{found} is now {form.cleaned_data['to_status']}.")
        return redirect("registry:version_detail", slug=slug, version=version)
    return _version_page(request, found, form)


@dataclass(frozen=True)
class MetricRow:
    """One validation metric, as ``ModelVersion.validation_results`` holds it."""

    group: str
    metric: str
    value: Any
    ci_low: Any
    ci_high: Any
    n: Any


def _metric_rows(group: str, metrics: Any) -> list[MetricRow]:
    if not isinstance(metrics, Mapping):
        return []
    return [
        MetricRow(group, str(name), *(
            result.get(k) if isinstance(result, Mapping) else (result if k == "value" else None)
            for k in ("value", "ci_low", "ci_high", "n")
        ))
        for name, result in metrics.items()
    ]


def validation_rows(results: Any) -> list[MetricRow]:
    """Overall then per-subgroup metrics, tolerant of partly filled results."""
    if not isinstance(results, Mapping):
        return []
    rows = _metric_rows("overall", results.get("overall"))
    subgroups = results.get("subgroups")
    for group, metrics in (subgroups.items() if isinstance(subgroups, Mapping) else []):
        rows.extend(_metric_rows(str(group), metrics))
    return rows


def _version_page(
    request: HttpRequest, version: ModelVersion, transition: VersionTransitionForm
) -> HttpResponse:
    results = version.validation_results if isinstance(version.validation_results, dict) else {}
    return render(request, "registry/version_detail.html", {
        "model": version.model,
        "version": version,
        "features": selectors.version_features(version),
        "cohorts": version.cohorts.order_by("name"),
        "deployments": selectors.version_deployments(version),
        "validation_rows": validation_rows(results),
        "validation_notes": {k: results[k] for k in ("process", "dataset") if results.get(k)},
        "parameters_json": json.dumps(version.parameters, indent=2),
        "demographics_json": json.dumps(version.demographics_summary, indent=2),
        "transition": transition,
    })


# --- Live deployments -----------------------------------------------------------------------

@perms_required("registry.view_deployment", "registry.view_clinicalmodel")
def live(request: HttpRequest) -> HttpResponse:
    query = LiveQueryForm(
        request.GET or None, initial={"at": timezone.now().replace(microsecond=0)}
    )
    answer = selectors.deployments_live_at(**query.cleaned_data) if query.is_valid() else None
    return render(request, "registry/live.html", {
        "query": query, "answer": answer, "running": selectors.running_deployments(),
    })


# --- Sites and feeds ------------------------------------------------------------------------

@perms_required("registry.view_site")
def sites(request: HttpRequest) -> HttpResponse:
    return _sites_page(request, SiteForm())


@perms_required("registry.add_site")
@require_POST
def site_create(request: HttpRequest) -> HttpResponse:
    form = SiteForm(request.POST)
    if form.is_valid() and _through_service(
            form, lambda: services.site_create(actor=request.user, **form.cleaned_data)):
        messages.success(request, f"Registered site {form.cleaned_data['code']}.")
        return redirect("registry:sites")
    return _sites_page(request, form)


def _sites_page(request: HttpRequest, form: SiteForm) -> HttpResponse:
    return render(request, "registry/sites.html", {
        "sites": selectors.sites_with_deployments(), "form": form,
    })


@perms_required("registry.view_datafeed", "registry.view_featurespec")
def feeds(request: HttpRequest) -> HttpResponse:
    return _feeds_page(request, DataFeedForm())


@perms_required("registry.add_datafeed")
@require_POST
def feed_create(request: HttpRequest) -> HttpResponse:
    form = DataFeedForm(request.POST)
    if form.is_valid() and _through_service(
            form, lambda: services.datafeed_create(actor=request.user, fields=form.cleaned_data)):
        messages.success(request, f"Registered data feed {form.cleaned_data['slug']}.")
        return redirect("registry:feeds")
    return _feeds_page(request, form)


def _feeds_page(request: HttpRequest, form: DataFeedForm) -> HttpResponse:
    return render(request, "registry/feeds.html", {
        "feeds": selectors.feeds_with_features(), "form": form,
    })
