"""Monitoring pages: the health-system overview, a model's dashboard, one metric, a version's
reference data and a model's monitoring policy. Thin: access in the decorators, reads in
``monitoring.dashboard``, writes in the services (reference upload, policy save, run_now)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.permissions import perms_required
from monitoring import dashboard, monitor_policy
from monitoring.models import Band, Layer, MonitorPolicy
from monitoring.monitor_forms import MonitorPolicyForm, ReferenceUploadForm
from monitoring.reference import ReferenceProblem, upload_from_django_file
from monitoring.runner import run_now
from monitoring.thresholds import LAYERS, metric_spec
from registry.models import ClinicalModel, ModelVersion

VIEW_RESULTS = "monitoring.view_metricresult"
VIEW_REFERENCE = "monitoring.view_referenceprofile"
VIEW_POLICY = "monitoring.view_monitorpolicy"
LEGEND = [(b.value, dashboard.BAND_WORDS[b]) for b in Band]


def _model(slug: str) -> ClinicalModel:
    return get_object_or_404(ClinicalModel, slug=slug)


@perms_required(VIEW_RESULTS)
def overview(request: HttpRequest) -> HttpResponse:
    return render(
        request, "monitoring/overview.html", {"rows": dashboard.overview(), "legend": LEGEND}
    )


@perms_required(VIEW_RESULTS)
def model_dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    model = _model(slug)
    grid = dashboard.grid(
        model, version=request.GET.get("version"), window=request.GET.get("window")
    )
    return render(
        request,
        "monitoring/dashboard.html",
        {
            "model": model,
            "grid": grid,
            "legend": LEGEND,
            "state": dashboard.empty_state(model),
            "version_param": grid.version.version
            if grid.version and len(grid.versions) > 1
            else "",
        },
    )


@perms_required(VIEW_RESULTS, "monitoring.run_evaluation")
@require_POST
def evaluate(request: HttpRequest, slug: str) -> HttpResponse:
    model = _model(slug)
    end = timezone.now().date()
    summary = run_now(actor=request.user, window_end=end, model_slug=model.slug)
    if not summary.evaluations:
        messages.warning(
            request,
            f"Nothing to evaluate for {model.slug}: no deployed version has a reference "
            "profile yet. Upload its reference data first.",
        )
    else:
        bands = ", ".join(f"{n} {b}" for b, n in sorted(summary.bands.items()))
        messages.success(
            request,
            f"Evaluated {model.slug} for windows ending {end:%Y-%m-%d}: built "
            f"{summary.built_days} daily profile(s), {summary.results} results ({bands}).",
        )
    return redirect("monitor:dashboard", slug=model.slug)


@perms_required(VIEW_RESULTS)
def metric(request: HttpRequest, slug: str, metric: str) -> HttpResponse:
    model = _model(slug)
    if not dashboard.known_metric(model, metric):
        raise Http404(f"No metric {metric!r} for {model.slug}.")
    spec = metric_spec(metric)
    end = dashboard.latest_window_end(model)
    versions = dashboard.versions_with_results(model, end)
    version = dashboard.pick_version(versions, request.GET.get("version"))
    windows = dashboard.windows_of(model, version, end)
    window = dashboard.pick_window(windows, request.GET.get("window"))
    slice_key = request.GET.get("slice") or dashboard.ALL
    context: dict[str, Any] = {
        "model": model,
        "metric": metric,
        "label": dashboard.metric_label(metric),
        "spec": spec,
        "layer": Layer(spec.layer).label,
        "direction": dashboard.DIRECTION_WORDS[spec.direction],
        "n_of": dashboard.n_of_words(spec),
        "slice_key": slice_key,
        "slice_label": dashboard.slice_label(slice_key, dashboard.sites_by_code()),
        "versions": versions,
        "version": version,
        "version_param": version.version if version and len(versions) > 1 else "",
        "windows": windows,
        "window": window,
        "legend": LEGEND,
        "series": [],
        "compared": [],
    }
    if version is not None and window is not None and end is not None:
        sites = dashboard.sites_by_code()
        series = dashboard.trend(version, metric, slice_key, window)
        cohorts = dashboard.cohort_values(version)
        compared = [
            dashboard.point(r, spec, sites)
            for r in dashboard.comparison(version, metric, window, end, cohorts)
        ]
        latest = series[-1] if series else None
        context.update(
            series=[dashboard.point(r, spec, sites) for r in reversed(series)],
            compared=compared,
            latest=latest,
            reading=dashboard.reading(latest, spec) if latest else [],
            details=dashboard.other_details(latest) if latest else [],
            chart=dashboard.chart_payload(series, compared, spec),
            window_end=end,
        )
    return render(request, "monitoring/metric.html", context)


def _version(slug: str, number: str) -> ModelVersion:
    return get_object_or_404(
        ModelVersion.objects.select_related("model"), model__slug=slug, version=number
    )


def _reference_page(
    request: HttpRequest, version: ModelVersion, form: ReferenceUploadForm | None, **extra: Any
) -> HttpResponse:
    may_upload = request.user.has_perm("monitoring.add_referenceprofile")
    return render(
        request,
        "monitoring/reference.html",
        {
            "model": version.model,
            "version": version,
            "rows": dashboard.reference_rows(version),
            "form": (form or ReferenceUploadForm()) if may_upload else None,
            "problems": [],
            **extra,
        },
    )


@perms_required(VIEW_REFERENCE)
def reference(request: HttpRequest, slug: str, version: str) -> HttpResponse:
    return _reference_page(request, _version(slug, version), None)


@perms_required(VIEW_REFERENCE, "monitoring.add_referenceprofile")
@require_POST
def reference_upload(request: HttpRequest, slug: str, version: str) -> HttpResponse:
    target = _version(slug, version)
    form = ReferenceUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _reference_page(request, target, form)
    try:
        profile = upload_from_django_file(
            actor=request.user,
            version=target,
            uploaded=form.cleaned_data["file"],
            note=form.cleaned_data["note"],
        )
    except ReferenceProblem as exc:
        return _reference_page(request, target, form, problems=exc.problems)
    messages.success(
        request,
        f"Reference profile #{profile.number} of {target} stored from {profile.file_name}: "
        f"{profile.row_count} rows, {profile.labelled_count} labelled. It is in force for the "
        "next evaluation.",
    )
    return redirect("monitor:reference", slug=slug, version=version)


def _policy_of(model: ClinicalModel) -> MonitorPolicy | None:
    return MonitorPolicy.objects.filter(model=model).select_related("updated_by").first()


@perms_required(VIEW_POLICY)
def policy(request: HttpRequest, slug: str) -> HttpResponse:
    model = _model(slug)
    current = _policy_of(model)
    rows = monitor_policy.policy_rows(model, current)
    launch_days = current.launch_days if current else 90
    return render(
        request,
        "monitoring/monitor_policy.html",
        {
            "model": model,
            "policy": current,
            "in_force": monitor_policy.as_dict(model, current),
            "layers": [
                (Layer(layer).label, [r for r in rows if r.layer == layer]) for layer in LAYERS
            ],
            "tightening": monitor_policy.tightening_text(model, launch_days),
            "history": dashboard.policy_history(current),
        },
    )


@perms_required(VIEW_POLICY, "monitoring.change_monitorpolicy")
def policy_edit(request: HttpRequest, slug: str) -> HttpResponse:
    model = _model(slug)
    current = _policy_of(model)
    form = MonitorPolicyForm(request.POST or None, policy=current)
    if request.method == "POST" and form.is_valid():
        thresholds, min_samples = form.overrides()
        try:
            monitor_policy.monitor_policy_save(
                actor=request.user,
                model=model,
                windows=form.cleaned_data["windows"],
                thresholds=thresholds,
                min_samples=min_samples,
                launch_days=form.cleaned_data["launch_days"],
                sustained_windows=form.cleaned_data["sustained_windows"],
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"The monitoring policy of {model.slug} is in force.")
            return redirect(reverse("monitor:policy", kwargs={"slug": model.slug}))
    layers = [
        (Layer(layer).label, [r for r in form.rows() if r["spec"].layer == layer])
        for layer in LAYERS
    ]
    return render(
        request,
        "monitoring/monitor_policy_edit.html",
        {"model": model, "policy": current, "form": form, "layers": layers},
    )
