"""Pages of a model's updates: its written recalibration / retraining policy, the update
ladder's recommendations, and the releases they lead to. Thin: access in the decorators, writes
in ``governance.recalibration``; a refused action comes back to the page as a message."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.pages import refused
from accounts.permissions import has_perms, perms_required
from governance import recalibration as svc
from governance.models import Recommendation, Release, UpdatePolicy
from governance.recal_forms import ProposeForm, ThresholdForm, UpdatePolicyForm, WindowForm
from registry.models import ClinicalModel, Site

VIEW_POLICY = "governance.view_updatepolicy"
VIEW_RECOMMENDATION = "governance.view_recommendation"
EDIT_POLICY = "governance.change_updatepolicy"
RECOMMEND = "governance.add_recommendation"
PROPOSE = "governance.add_release"


def _model(slug: str) -> ClinicalModel:
    return get_object_or_404(ClinicalModel, slug=slug)


def _form_errors_to_page(form: Any, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        for error in errors:
            form.add_error(field if field in form.fields else None, error)


def _overview(slug: str) -> HttpResponseRedirect:
    return redirect(reverse("governance:update-policy", args=[slug]))


def _release(release: Release) -> HttpResponseRedirect:
    return redirect(reverse("governance:release-detail", args=[release.pk]))


def _incident_of(request: HttpRequest) -> str:
    """The incident that led here (``?incident=N``), carried through to the release."""
    value = request.GET.get("incident", "")
    return value if value.isdigit() else ""


def _detail(rec: Recommendation, incident: str = "") -> HttpResponseRedirect:
    url = reverse("governance:recommendation-detail", args=[rec.model.slug, rec.pk])
    return redirect(f"{url}?incident={incident}" if incident else url)


def _site_of(request: HttpRequest) -> Any:
    site_id = request.GET.get("site", "")
    return Site.objects.filter(pk=int(site_id)).first() if site_id.isdigit() else None


@perms_required(VIEW_POLICY, VIEW_RECOMMENDATION)
def overview(request: HttpRequest, slug: str) -> HttpResponse:
    model = _model(slug)
    policy = UpdatePolicy.objects.filter(model=model).select_related("retraining_owner").first()
    user = request.user
    context = {
        "model": model,
        "policy": policy,
        "triggers": [
            (key, label, (policy.triggers or {}).get(key)) for key, label in svc.TRIGGERS.items()
        ]
        if policy
        else [],
        "recommendations": svc.recommendations_of(model),
        "window_form": WindowForm(initial={"site": _site_of(request)}),
        "incident": _incident_of(request),
        "can_edit": has_perms(user, [EDIT_POLICY]),
        "can_recommend": has_perms(user, [RECOMMEND]),
        "can_propose": has_perms(user, [PROPOSE]),
    }
    return render(request, "governance/updates/overview.html", context)


@perms_required(VIEW_POLICY, EDIT_POLICY)
def policy_edit(request: HttpRequest, slug: str) -> HttpResponse:
    model = _model(slug)
    policy = UpdatePolicy.objects.filter(model=model).first()
    if request.method == "POST":
        form = UpdatePolicyForm(request.POST)
        if form.is_valid():
            try:
                svc.update_policy_save(actor=request.user, model=model, fields=form.policy_fields())
            except ValidationError as exc:
                _form_errors_to_page(form, exc)
            else:
                messages.success(
                    request, "The update policy is saved (its history keeps the old text)."
                )
                return _overview(slug)
    else:
        form = UpdatePolicyForm(initial=UpdatePolicyForm.initial_from(policy))
    notes = [form[f"note_{key}"] for key in svc.TRIGGERS]
    main = [f for f in form if not f.name.startswith("note_")]
    return render(
        request,
        "governance/updates/policy_form.html",
        {"model": model, "policy": policy, "form": form, "main_fields": main, "notes": notes},
    )


@perms_required(VIEW_RECOMMENDATION, RECOMMEND)
@require_POST
def recommendation_new(request: HttpRequest, slug: str) -> HttpResponse:
    model = _model(slug)
    form = WindowForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return _overview(slug)
    data = form.cleaned_data
    try:
        rec = svc.recommend(
            actor=request.user, model=model, start=data["start"], end=data["end"], site=data["site"]
        )
    except (ValidationError, PermissionDenied) as exc:
        refused(request, exc)
        return _overview(slug)
    return _detail(rec, _incident_of(request))


@perms_required(VIEW_RECOMMENDATION)
def recommendation_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    rec = get_object_or_404(
        Recommendation.objects.select_related("model", "version", "site", "release", "created_by"),
        model__slug=slug,
        pk=pk,
    )
    stats = rec.statistics or {}
    ladder = stats.get("ladder", {})
    proposal = stats.get("recalibration") or stats.get("interim_logistic")
    user = request.user
    is_recal = rec.level in (Recommendation.Level.INTERCEPT, Recommendation.Level.LOGISTIC)
    context = {
        "model": rec.model,
        "rec": rec,
        "stats": stats,
        "ladder": ladder,
        "fits": sorted((ladder.get("fits") or {}).items()),
        "proposal": proposal,
        "is_interim": "interim_logistic" in stats,
        "metrics": _metric_rows(proposal["evidence"]) if proposal else [],
        "split": _metric_rows(proposal["evidence"].get("split_sample", {})) if proposal else [],
        "rates": _rate_rows(proposal["evidence"], stats.get("thresholds") or {})
        if proposal
        else [],
        "can_recalibrate": is_recal and rec.release_id is None and has_perms(user, [PROPOSE]),
        "can_retrain": rec.level == Recommendation.Level.REFIT
        and rec.release_id is None
        and has_perms(user, [PROPOSE]),
        "propose_form": ProposeForm(initial={"incident": _incident_of(request) or None}),
    }
    return render(request, "governance/updates/recommendation.html", context)


METRICS = (
    ("calibration_intercept", "Calibration intercept (0 is ideal)"),
    ("calibration_slope", "Calibration slope (1 is ideal)"),
    ("observed_expected", "Observed / expected (1 is ideal)"),
    ("ece", "Expected calibration error"),
)


def _metric_rows(evidence: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    if "before" not in evidence:
        return []
    return [(label, evidence["before"][key], evidence["after"][key]) for key, label in METRICS]


def _rate_rows(
    evidence: dict[str, Any], thresholds: dict[str, float]
) -> list[tuple[str, Any, Any, Any, Any, Any]]:
    labelled = evidence.get("action_rate", {})
    everyone = evidence.get("action_rate_all_events", {})
    return [
        (
            name,
            thresholds.get(name),
            labelled["before"][name],
            labelled["after"][name],
            everyone.get("before", {}).get(name),
            everyone.get("after", {}).get(name),
        )
        for name in labelled.get("before", {})
    ]


def _propose(request: HttpRequest, slug: str, pk: int, *, retrain: bool) -> HttpResponse:
    rec = get_object_or_404(Recommendation.objects.select_related("model"), model__slug=slug, pk=pk)
    form = ProposeForm(request.POST)
    incident = form.cleaned_data.get("incident") if form.is_valid() else None
    try:
        if retrain:
            release = svc.open_retrain_draft(actor=request.user, recommendation=rec)
        else:
            release = svc.propose_recalibration(
                actor=request.user, recommendation=rec, incident=incident
            )
    except (ValidationError, PermissionDenied) as exc:
        refused(request, exc)
    else:
        messages.success(
            request, f"Drafted {release.number}: fill it in and submit it for signing."
        )
        return _release(release)
    return _detail(rec)


@perms_required(VIEW_RECOMMENDATION, PROPOSE)
@require_POST
def recommendation_recalibrate(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    return _propose(request, slug, pk, retrain=False)


@perms_required(VIEW_RECOMMENDATION, PROPOSE)
@require_POST
def recommendation_retrain(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    return _propose(request, slug, pk, retrain=True)


@perms_required(VIEW_POLICY, PROPOSE)
def threshold_change(request: HttpRequest, slug: str) -> HttpResponse:
    model = _model(slug)
    # The thresholds in force where the change applies: one site (?site=<id>) or every site
    # when they all run the same configuration.
    site_id = request.POST.get("site") or request.GET.get("site") or ""
    site = Site.objects.filter(pk=int(site_id)).first() if site_id.isdigit() else None
    try:
        scope = svc.scope_of(model, site)
    except ValidationError as exc:
        refused(request, exc)
        return _overview(slug)
    initial = {"site": site, "incident": _incident_of(request) or None}
    form = ThresholdForm(request.POST or None, thresholds=scope.thresholds, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            release = svc.propose_threshold_change(
                actor=request.user, model=model, thresholds=form.thresholds(),
                start=data["start"], end=data["end"], site=data["site"],
                rationale=data["rationale"], incident=data.get("incident"),
            )  # fmt: skip
        except ValidationError as exc:
            _form_errors_to_page(form, exc)
        except PermissionDenied as exc:
            refused(request, exc)
        else:
            messages.success(request, f"Drafted {release.number} with its action-rate evidence.")
            return _release(release)
    return render(
        request,
        "governance/updates/threshold_form.html",
        {"model": model, "scope": scope, "form": form},
    )
