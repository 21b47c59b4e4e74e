"""Incident pages: the queue, the work page of one incident and the alert list. Thin: access
in the decorators, reads in ``incidents.selectors``, writes in the services; every refused
action comes back to the page as a message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.pages import form_refused
from accounts.permissions import has_perms, perms_required
from incidents import alerts as alert_services
from incidents import runbook_services, selectors, services
from incidents.drills import incident_stats, start_drill
from incidents.forms import (
    INCIDENT_ROLES,
    AssignForm,
    CorrectiveActionFormSet,
    DrillForm,
    EvidenceForm,
    FreezeForm,
    ImpactForm,
    MergeForm,
    ReasonForm,
    ReviewForm,
    RunbookCreateForm,
    RunbookForm,
    SuppressForm,
    UnfreezeForm,
    steps_as_text,
)
from incidents.models import Alert, AlertStatus, Incident, Runbook
from registry.models import ClinicalModel

User = get_user_model()

VIEW_INCIDENT = "incidents.view_incident"
WORK = "incidents.work_incident"
CLOSE = "incidents.close_incident"
FREEZE = "registry.freeze_deployment"


def _incident(number: int) -> Incident:
    found = Incident.objects.select_related(
        "model", "site", "commander", "scribe", "clinical_lead", "model_owner", "merged_into"
    )
    return get_object_or_404(found, number=number)


def _refused(request: HttpRequest, exc: ValidationError | PermissionDenied) -> None:
    if isinstance(exc, PermissionDenied):
        messages.error(request, str(exc) or "Your role does not allow this.")
    else:
        messages.error(request, " ".join(exc.messages))


def _back(incident: Incident, anchor: str = "") -> HttpResponseRedirect:
    url = reverse("incidents:detail", args=[incident.number])
    return redirect(f"{url}#{anchor}" if anchor else url)


# --- the queue -------------------------------------------------------------------------------


@perms_required(VIEW_INCIDENT)
def queue(request: HttpRequest) -> HttpResponse:
    tab = request.GET.get("tab")
    if tab not in selectors.QUEUE_TABS:
        # the first tab with something in it, so nobody lands on an empty page by default
        tab = next(
            (t for t in ("mine", "team") if selectors.incident_queue(user=request.user, tab=t)),
            "all",
        )
    closed = request.GET.get("closed") == "1"
    rows = list(selectors.incident_queue(user=request.user, tab=tab, open_only=not closed))
    now = timezone.now()
    counts = {
        t: selectors.incident_queue(user=request.user, tab=t).count() for t in selectors.QUEUE_TABS
    }
    return render(
        request,
        "incidents/queue.html",
        {
            "tab": tab,
            "closed": closed,
            "counts": counts,
            "rows": [(i, selectors.is_overdue(i, now)) for i in rows],
            "can_drill": has_perms(request.user, [CLOSE]),
        },
    )


# --- one incident ----------------------------------------------------------------------------


@perms_required(VIEW_INCIDENT)
def detail(request: HttpRequest, number: int) -> HttpResponse:
    incident = _incident(number)
    book, steps = selectors.runbook_steps(incident)
    user = request.user
    deployments = selectors.live_deployments(incident)
    actions = selectors.allowed_actions(user, incident)
    alerts = list(incident.alerts.select_related("site", "version").order_by("-worst_band", "pk"))
    context = {
        "incident": incident,
        "overdue": selectors.is_overdue(incident),
        "alerts": alerts,
        "alert_charts": [(a, selectors.alert_chart(a)) for a in alerts],
        "book": book,
        "steps": steps,
        "timeline": incident.timeline.select_related("actor"),
        "counts": services.impact_counts(incident) if not incident.impact else None,
        "gaps": services.closure_gaps(incident),
        "actions": [(a, selectors.ACTION_LABELS[a]) for a in actions if a != "merge"],
        "can_merge": "merge" in actions,
        "merge_targets": selectors.merge_targets(incident),
        "is_open": incident.status in services.OPEN_STATES,
        "can_work": has_perms(user, [WORK]),
        "can_close": has_perms(user, [CLOSE]),
        "deployments": deployments,
        "can_freeze": has_perms(user, [FREEZE]) and deployments.filter(frozen=False).exists(),
        "can_unfreeze": user.groups.filter(name="medical_director").exists()
        and deployments.filter(frozen=True).exists(),
        "freeze_form": FreezeForm(deployments=deployments.filter(frozen=False)),
        "unfreeze_form": UnfreezeForm(deployments=deployments.filter(frozen=True)),
        "evidence_form": EvidenceForm(),
        "impact_form": ImpactForm(),
        "review_form": ReviewForm(),
        "actions_formset": CorrectiveActionFormSet(prefix="ca"),
        "reason_form": ReasonForm(),
        "roles": [(r, label, getattr(incident, r)) for r, label in INCIDENT_ROLES],
        "can_assign": has_perms(user, [WORK]) and incident.status not in services.FINISHED_STATES,
        "notifications": selectors.incident_notifications(incident),
        "releases": selectors.releases_from(incident),
        "can_propose": has_perms(user, ["governance.add_release"]),
    }
    return render(request, "incidents/incident.html", context)


def _transition_view(action: str) -> Callable[..., HttpResponse]:
    perm = CLOSE if action in ("resolve", "close") else WORK

    @perms_required(VIEW_INCIDENT, perm)
    @require_POST
    def view(request: HttpRequest, number: int) -> HttpResponse:
        incident = _incident(number)
        form = (MergeForm if action == "merge" else ReasonForm)(request.POST)
        if not form.is_valid():
            form_refused(request, form)
            return _back(incident, "actions")
        into = None
        if action == "merge":
            into = Incident.objects.filter(number=form.cleaned_data["into"]).first()
            if into is None:
                messages.error(request, f"No incident INC-{form.cleaned_data['into']}.")
                return _back(incident, "actions")
        to = selectors.ACTIONS[action]
        try:
            services.transition(actor=request.user, incident=incident, to=to,
                                reason=form.cleaned_data["reason"], into=into)  # fmt: skip
        except (ValidationError, PermissionDenied) as exc:
            _refused(request, exc)
        else:
            messages.success(request, f"INC-{incident.number} is now {to}.")
        return _back(incident, "actions")

    view.__name__ = f"incident_{action}"
    return view


TRANSITION_VIEWS = {action: _transition_view(action) for action in selectors.ACTIONS}


@perms_required(VIEW_INCIDENT, WORK)
@require_POST
def step(request: HttpRequest, number: int, step: int) -> HttpResponse:
    incident = _incident(number)
    form = EvidenceForm(request.POST)
    if not form.is_valid():
        form_refused(request, form)
        return _back(incident, f"step-{step}")
    try:
        services.check_step(actor=request.user, incident=incident, step=step,
                            evidence=form.cleaned_data["evidence"])  # fmt: skip
    except (ValidationError, PermissionDenied) as exc:
        _refused(request, exc)
    else:
        messages.success(request, f"Step {step + 1} checked off.")
    return _back(incident, f"step-{step}")


@perms_required(VIEW_INCIDENT, WORK)
@require_POST
def impact(request: HttpRequest, number: int) -> HttpResponse:
    incident = _incident(number)
    form = ImpactForm(request.POST)
    if not form.is_valid():
        form_refused(request, form)
        return _back(incident, "impact")
    try:
        services.assess_impact(actor=request.user, incident=incident, **form.cleaned_data)
    except (ValidationError, PermissionDenied) as exc:
        _refused(request, exc)
    else:
        messages.success(request, "Impact assessment recorded.")
    return _back(incident, "impact")


@perms_required(VIEW_INCIDENT, CLOSE)
@require_POST
def review(request: HttpRequest, number: int) -> HttpResponse:
    incident = _incident(number)
    form = ReviewForm(request.POST)
    rows = CorrectiveActionFormSet(request.POST, prefix="ca")
    if not form.is_valid():
        form_refused(request, form)
        return _back(incident, "review")
    if not rows.is_valid():
        for error in rows.non_form_errors():
            messages.error(request, f"Corrective actions: {error}")
        for i, row in enumerate(rows.forms, start=1):
            for field, errors in row.errors.items():
                for error in errors:
                    messages.error(request, f"Corrective action {i}, {field}: {error}")
        return _back(incident, "review")
    actions = [
        {"action": r["action"], "owner": r["owner"], "due": r["due"].isoformat()}
        for r in rows.cleaned_data
        if r
    ]
    try:
        services.record_review(actor=request.user, incident=incident,
                               summary=form.cleaned_data["summary"],
                               corrective_actions=actions)  # fmt: skip
    except (ValidationError, PermissionDenied) as exc:
        _refused(request, exc)
    else:
        messages.success(request, "Post-incident review recorded.")
    return _back(incident, "review")


@perms_required(VIEW_INCIDENT, FREEZE)
@require_POST
def freeze(request: HttpRequest, number: int) -> HttpResponse:
    incident = _incident(number)
    form = FreezeForm(request.POST, deployments=selectors.live_deployments(incident))
    if not form.is_valid():
        form_refused(request, form)
        return _back(incident, "kill-switch")
    try:
        services.freeze(actor=request.user, incident=incident, **form.cleaned_data)
    except (ValidationError, PermissionDenied) as exc:
        _refused(request, exc)
    else:
        site = form.cleaned_data["deployment"].site.code
        messages.success(request, f"Deployment at {site} frozen: every case now defers.")
    return _back(incident, "kill-switch")


@perms_required(VIEW_INCIDENT, FREEZE)
@require_POST
def unfreeze(request: HttpRequest, number: int) -> HttpResponse:
    if not request.user.groups.filter(name="medical_director").exists():
        raise PermissionDenied("Only a medical director may unfreeze a deployment.")
    incident = _incident(number)
    form = UnfreezeForm(request.POST, deployments=selectors.live_deployments(incident))
    if not form.is_valid():
        form_refused(request, form)
        return _back(incident, "kill-switch")
    try:
        services.unfreeze(actor=request.user, incident=incident, **form.cleaned_data)
    except (ValidationError, PermissionDenied) as exc:
        _refused(request, exc)
    else:
        site = form.cleaned_data["deployment"].site.code
        messages.success(request, f"Deployment at {site} unfrozen: the model acts again.")
    return _back(incident, "kill-switch")


# --- alerts ----------------------------------------------------------------------------------


@perms_required("incidents.view_alert")
def alert_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", AlertStatus.OPEN)
    found = selectors.alerts_visible_to(user=request.user).order_by("-last_seen_at", "pk")
    if status in AlertStatus.values:
        found = found.filter(status=status)
    return render(
        request,
        "incidents/alerts.html",
        {
            "alerts": found[:300],
            "status": status,
            "can_suppress": has_perms(request.user, ["incidents.suppress_alert"]),
            "form": SuppressForm(),
        },
    )


@perms_required("incidents.view_alert", "incidents.suppress_alert")
@require_POST
def alert_suppress(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_object_or_404(Alert, pk=pk)
    form = SuppressForm(request.POST)
    back = redirect(f"{reverse('incidents:alerts')}#alert-{alert.pk}")
    if not form.is_valid():
        form_refused(request, form)
        return back
    try:
        sup = alert_services.suppress(actor=request.user, alert=alert, **form.cleaned_data)
    except (ValidationError, PermissionDenied) as exc:
        _refused(request, exc)
    else:
        messages.success(
            request,
            f"{alert.metric} for {alert.slice_key} suppressed until {sup.expires_at:%Y-%m-%d}.",
        )
    return back


# --- incident roles --------------------------------------------------------------------------


@perms_required(VIEW_INCIDENT, WORK)
@require_POST
def assign(request: HttpRequest, number: int) -> HttpResponse:
    incident = _incident(number)
    form = AssignForm(request.POST)
    if not form.is_valid():
        form_refused(request, form)
        return _back(incident, "roles")
    data = form.cleaned_data
    person = User.objects.filter(username=data["username"].strip()).first()
    if person is None:
        messages.error(request, f"No user named {data['username'].strip()}.")
        return _back(incident, "roles")
    try:
        services.assign_role(actor=request.user, incident=incident, role=data["role"], user=person)
    except (ValidationError, PermissionDenied) as exc:
        _refused(request, exc)
    else:
        label = dict(INCIDENT_ROLES)[data["role"]]
        messages.success(request, f"{label}: {person.get_username()}.")
    return _back(incident, "roles")


# --- runbooks --------------------------------------------------------------------------------

VIEW_RUNBOOK = "incidents.view_runbook"
CHANGE_RUNBOOK = "incidents.change_runbook"


def _errors_to_form(form: Any, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@perms_required(VIEW_RUNBOOK)
def runbook_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "incidents/runbooks.html",
        {
            "runbooks": selectors.runbooks_visible_to(user=request.user),
            "can_edit": has_perms(request.user, [CHANGE_RUNBOOK]),
        },
    )


@perms_required(VIEW_RUNBOOK)
def runbook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    runbook = get_object_or_404(selectors.runbooks_visible_to(user=request.user), pk=pk)
    return render(
        request,
        "incidents/runbook.html",
        {
            "runbook": runbook,
            "history": selectors.runbook_history(runbook),
            "can_edit": has_perms(request.user, [CHANGE_RUNBOOK]),
        },
    )


@perms_required(VIEW_RUNBOOK, CHANGE_RUNBOOK)
def runbook_edit(request: HttpRequest, pk: int) -> HttpResponse:
    runbook = get_object_or_404(Runbook, pk=pk)
    if request.method == "POST":
        form = RunbookForm(request.POST)
        if form.is_valid():
            try:
                runbook_services.runbook_save(actor=request.user, runbook=runbook,
                                              **form.cleaned_data)  # fmt: skip
            except ValidationError as exc:
                _errors_to_form(form, exc)
            else:
                messages.success(request, "Runbook saved: the previous version is in its history.")
                return redirect("incidents:runbook", pk=runbook.pk)
    else:
        form = RunbookForm(initial={"title": runbook.title, "steps": steps_as_text(runbook.steps)})
    return render(request, "incidents/runbook_edit.html", {"runbook": runbook, "form": form})


@perms_required(VIEW_RUNBOOK, CHANGE_RUNBOOK)
def runbook_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = RunbookCreateForm(request.POST)
        if form.is_valid():
            try:
                runbook = runbook_services.runbook_create(actor=request.user, **form.cleaned_data)
            except ValidationError as exc:
                _errors_to_form(form, exc)
            else:
                messages.success(request, f"Runbook for {runbook.metric} created.")
                return redirect("incidents:runbook", pk=runbook.pk)
    else:
        form = RunbookCreateForm()
    return render(request, "incidents/runbook_edit.html", {"runbook": None, "form": form})


# --- drills and statistics -------------------------------------------------------------------


@perms_required(VIEW_INCIDENT, CLOSE)
def drill(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = DrillForm(request.POST)
        if form.is_valid():
            try:
                incident = start_drill(actor=request.user, **form.cleaned_data)
            except ValidationError as exc:
                _errors_to_form(form, exc)
            else:
                messages.success(
                    request, f"DRILL INC-{incident.number} started: its notifications reach no one."
                )
                return _back(incident)
    else:
        form = DrillForm()
    return render(request, "incidents/drill.html", {"form": form})


@perms_required(VIEW_INCIDENT)
def stats(request: HttpRequest) -> HttpResponse:
    model = request.GET.get("model", "").strip()
    spans = ("detect", "acknowledge", "mitigate", "resolve")
    rows = incident_stats(model_slug=model or None)
    for row in rows:
        row["cells"] = [row[span] for span in spans]
    return render(
        request,
        "incidents/stats.html",
        {
            "rows": rows,
            "model": model,
            "models": ClinicalModel.objects.order_by("slug").values_list("slug", flat=True),
            "spans": spans,
        },
    )
