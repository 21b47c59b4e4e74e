"""Release pages: the approvals inbox, a release with its evidence, diff and signature
ceremony, the release form, and deployment history per site with the rollback button. Thin:
access in the decorators, writes in the services; every refusal comes back as a message."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.pages import refused
from accounts.permissions import has_perms, perms_required
from governance import deploy, releases, signing
from governance.forms import CredentialsForm, EvidenceForm, ReasonForm, ReleaseForm, RollbackForm
from governance.models import EvidenceFile, Release, ReleaseStatus, SigningAttempt
from registry.models import ClinicalModel, Deployment, ModelVersion, Site

VIEW = "governance.view_release"
ADD = "governance.add_release"
CHANGE = "governance.change_release"
SIGN = "governance.sign_release"
DEPLOY = "governance.deploy_release"
UNLOCK = "governance.unlock_signing"
S = ReleaseStatus


def _release(pk: int) -> Release:
    return get_object_or_404(
        Release.objects.select_related("model", "version", "author").prefetch_related("sites"),
        pk=pk,
    )


def _back(release: Release, anchor: str = "") -> HttpResponseRedirect:
    url = reverse("governance:release-detail", args=[release.pk])
    return redirect(f"{url}#{anchor}" if anchor else url)


def _awaiting(user: Any) -> list[Release]:
    held = set(user.groups.values_list("name", flat=True))
    open_ = (
        Release.objects.filter(status__in=(S.SUBMITTED, S.IN_REVIEW))
        .exclude(author=user)
        .select_related("model", "author")
        .order_by("submitted_at")
    )
    return [r for r in open_ if any(role in held for role, _ in releases.missing_signers(r))]


# --- inbox and lists ------------------------------------------------------------------------


@perms_required(VIEW)
def inbox(request: HttpRequest) -> HttpResponse:
    """The medical director's approvals inbox: what awaits my signature, then what is
    approved and waiting to deploy, my drafts, and the latest deployments by release."""
    user = request.user
    context = {
        "awaiting": _awaiting(user) if has_perms(user, [SIGN]) else [],
        "approved": Release.objects.filter(status=S.APPROVED).select_related("model"),
        "drafts": Release.objects.filter(author=user, status__in=(S.DRAFT, S.SUBMITTED,
                                                                  S.IN_REVIEW))
        .select_related("model"),
        "recent": Release.objects.filter(status=S.DEPLOYED)
        .select_related("model")
        .order_by("-deployed_at")[:10],
        "locked": _locked_users() if has_perms(user, [UNLOCK]) else [],
        "can_propose": has_perms(user, [ADD]),
    }  # fmt: skip
    return render(request, "governance/inbox.html", context)


def _locked_users() -> list[Any]:
    last: dict[int, SigningAttempt] = {}
    for attempt in (
        SigningAttempt.objects.filter(outcome__in=("locked", "unlocked"))
        .select_related("user")
        .order_by("at", "pk")
    ):
        last[attempt.user_id] = attempt
    return [a for a in last.values() if a.outcome == "locked"]


@perms_required(VIEW)
def release_list(request: HttpRequest) -> HttpResponse:
    rows = Release.objects.select_related("model", "author").order_by("-created_at", "-pk")
    model, status = request.GET.get("model", ""), request.GET.get("status", "")
    if model:
        rows = rows.filter(model__slug=model)
    if status in S.values:
        rows = rows.filter(status=status)
    return render(
        request,
        "governance/release_list.html",
        {"releases": rows[:200], "models": ClinicalModel.objects.all(), "statuses": S.choices,
         "model": model, "status": status},
    )  # fmt: skip


# --- proposing and editing ------------------------------------------------------------------


def _version_of(form: ReleaseForm) -> ModelVersion | None:
    name = form.cleaned_data.get("version", "").strip()
    if not name:
        return None
    version = ModelVersion.objects.filter(model=form.cleaned_data["model"], version=name).first()
    if version is None:
        form.add_error("version", f"{form.cleaned_data['model'].slug} has no version {name!r}.")
    return version


@perms_required(VIEW, ADD)
def release_new(request: HttpRequest) -> HttpResponse:
    initial = {k: request.GET[k] for k in ("model", "kind", "title") if k in request.GET}
    form = ReleaseForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        version = _version_of(form)
        if not form.errors:
            origin = {}
            if request.POST.get("incident", "").isdigit():
                origin["incident"] = int(request.POST["incident"])
            try:
                release = releases.release_create(
                    actor=request.user, model=form.cleaned_data["model"],
                    kind=form.cleaned_data["kind"], title=form.cleaned_data["title"],
                    rationale=form.cleaned_data["rationale"], version=version,
                    sites=list(form.cleaned_data["sites"]), origin=origin, **form.content(),
                )  # fmt: skip
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    target = field if field in form.fields else None
                    if field == "score_mapping":
                        target = "mapping_method"
                    for error in errors:
                        form.add_error(target, error)
            else:
                messages.success(request, f"{release.number} drafted. Add evidence, then submit.")
                return _back(release)
    context = {"form": form, "incident": request.GET.get("incident", "")}
    status = 400 if request.method == "POST" else 200
    return render(request, "governance/release_form.html", context, status=status)


@perms_required(VIEW, CHANGE)
def release_edit(request: HttpRequest, pk: int) -> HttpResponse:
    release = _release(pk)
    mapping = release.score_mapping or {}
    initial = {
        "model": release.model.slug, "kind": release.kind, "title": release.title,
        "rationale": release.rationale,
        "version": release.version.version if release.version else "",
        "sites": list(release.sites.values_list("code", flat=True)),
        "mapping_method": mapping.get("method", ""), "intercept": mapping.get("intercept"),
        "slope": mapping.get("slope"),
        "thresholds": "" if release.thresholds is None else json.dumps(release.thresholds),
        "deferral_policy_number": release.deferral_policy_number,
    }  # fmt: skip
    form = ReleaseForm(request.POST or None, initial=initial)
    form.fields["model"].disabled = form.fields["kind"].disabled = True
    if request.method == "POST" and form.is_valid():
        version = _version_of(form)
        if not form.errors:
            changes = {
                "title": form.cleaned_data["title"],
                "rationale": form.cleaned_data["rationale"],
                "version": version or release.version,
                "sites": list(form.cleaned_data["sites"]),
                **form.content(),
            }
            try:
                releases.release_update(actor=request.user, release=release, changes=changes,
                                        reason=request.POST.get("reason", ""))  # fmt: skip
            except (ValidationError, PermissionDenied) as exc:
                refused(request, exc)
            else:
                messages.success(request, "Saved.")
                return _back(release)
    context = {"form": form, "release": release}
    return render(
        request, "governance/release_form.html", context, status=400 if form.errors else 200
    )


# --- one release ----------------------------------------------------------------------------


@perms_required(VIEW)
def release_detail(request: HttpRequest, pk: int) -> HttpResponse:
    from governance.evidence import evidence_summary

    release = _release(pk)
    user = request.user
    current = releases.content_hash(release)
    signatures = list(release.signatures.select_related("signer"))
    for s in signatures:
        s.valid_now = s.voided_at is None and s.content_sha256 == current
        s.altered = s.voided_at is None and s.content_sha256 != current
    held = set(user.groups.values_list("name", flat=True))
    missing = releases.missing_signers(release)
    can_sign = (
        has_perms(user, [SIGN]) and release.status in (S.SUBMITTED, S.IN_REVIEW)
        and release.author_id != user.pk and any(role in held for role, _ in missing)
        and not any(s.valid_now and s.signer_id == user.pk and s.meaning != "authorship"
                    for s in signatures)
    )  # fmt: skip
    is_author = release.author_id == user.pk
    context = {
        "release": release,
        "signatures": signatures,
        "required": releases.required_signers(release),
        "missing": missing,
        "current_hash": current,
        "altered": bool(release.content_sha256) and current != release.content_sha256,
        "diff": releases.diff_against_live(release) if release.kind != "rollback" else [],
        "restores": _restores(release),
        "summary": evidence_summary(release.evidence or {}) if release.evidence else [],
        "files": release.files.select_related("uploaded_by").defer("data"),
        "deployments": release.deployments.select_related("site", "version"),
        "can_edit": has_perms(user, [CHANGE]) and release.status in releases.OPEN
        and release.kind != "rollback",
        "can_submit": is_author and release.status == S.DRAFT,
        "can_sign": can_sign,
        "can_reject": has_perms(user, [SIGN]) and not is_author
        and release.status in (S.SUBMITTED, S.IN_REVIEW),
        "can_withdraw": release.status in releases.OPEN and has_perms(user, [CHANGE])
        and (is_author or has_perms(user, [DEPLOY])),
        "can_deploy": has_perms(user, [DEPLOY]) and release.status == S.APPROVED,
        "can_void": has_perms(user, [UNLOCK]),
        "needs_username": not request.session.get(signing.SESSION_KEY),
        "locked": signing.is_locked(user),
        "evidence_form": EvidenceForm(),
    }  # fmt: skip
    return render(request, "governance/release.html", context)


def _restores(release: Release) -> list[dict[str, Any]]:
    rows = []
    for code, pk in sorted((release.restores or {}).items()):
        target = Deployment.objects.select_related("version").filter(pk=pk).first()
        live = releases.live_configuration(release.model, Site.objects.get(code=code))
        rows.append({"site": code, "target": target, "live": live})
    return rows


def _credentials(request: HttpRequest) -> tuple[str, str, bool] | None:
    form = CredentialsForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Re-enter your password to sign.")
        return None
    need = not request.session.get(signing.SESSION_KEY)
    return form.cleaned_data["username"], form.cleaned_data["password"], need


@require_POST
@perms_required(VIEW, CHANGE)
def release_submit(request: HttpRequest, pk: int) -> HttpResponse:
    release = _release(pk)
    creds = _credentials(request)
    if creds is None:
        return _back(release, "ceremony")
    username, password, need = creds
    try:
        releases.release_submit(actor=request.user, release=release, password=password,
                                username=username, require_username=need)  # fmt: skip
    except (ValidationError, PermissionDenied) as exc:
        refused(request, exc)
    else:
        request.session[signing.SESSION_KEY] = True
        messages.success(request, f"{release.number} submitted and signed (authorship).")
    return _back(release, "ceremony")


@require_POST
@perms_required(VIEW, SIGN)
def release_sign(request: HttpRequest, pk: int) -> HttpResponse:
    release = _release(pk)
    creds = _credentials(request)
    if creds is None:
        return _back(release, "ceremony")
    username, password, need = creds
    try:
        signature = signing.release_sign(actor=request.user, release=release, password=password,
                                         username=username, require_username=need)  # fmt: skip
    except (ValidationError, PermissionDenied) as exc:
        refused(request, exc)
    else:
        request.session[signing.SESSION_KEY] = True
        release.refresh_from_db()
        text = f"Signed ({signature.get_meaning_display().lower()}, as {signature.role})."
        if release.status == S.DEPLOYED:
            text += f" The rollback is live: {release.deploy_seconds * 1000:.0f} ms to deploy."
        elif release.status == S.APPROVED:
            text += " Every required signature is in: the release is approved."
        messages.success(request, text)
    return _back(release, "ceremony")


def _reasoned(action: Any, success: str) -> Any:
    @require_POST
    def view(request: HttpRequest, pk: int) -> HttpResponse:
        release = _release(pk)
        form = ReasonForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Give a reason.")
            return _back(release)
        try:
            action(actor=request.user, release=release, reason=form.cleaned_data["reason"])
        except (ValidationError, PermissionDenied) as exc:
            refused(request, exc)
        else:
            messages.success(request, success)
        return _back(release)

    return view


release_reject = perms_required(VIEW, SIGN)(_reasoned(releases.release_reject, "Rejected."))
release_withdraw = perms_required(VIEW, CHANGE)(_reasoned(releases.release_withdraw, "Withdrawn."))


@require_POST
@perms_required(VIEW, DEPLOY)
def release_deploy(request: HttpRequest, pk: int) -> HttpResponse:
    release = _release(pk)
    try:
        release = deploy.release_deploy(actor=request.user, release=release)
    except (ValidationError, PermissionDenied) as exc:
        refused(request, exc)
    else:
        messages.success(request, f"Deployed in {release.deploy_seconds * 1000:.0f} ms: the gate "
                                  "applies it from the next request.")  # fmt: skip
    return _back(release)


@require_POST
@perms_required(VIEW, CHANGE)
def release_evidence(request: HttpRequest, pk: int) -> HttpResponse:
    release = _release(pk)
    form = EvidenceForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose a file and its kind.")
        return _back(release, "evidence")
    upload = form.cleaned_data["file"]
    data = upload.read()
    try:
        if form.cleaned_data["kind"] == EvidenceFile.Kind.VALIDATION_SET:
            releases.validation_set_add(actor=request.user, release=release, name=upload.name,
                                        data=data)  # fmt: skip
        else:
            releases.evidence_file_add(
                actor=request.user, release=release, kind=form.cleaned_data["kind"],
                name=upload.name, data=data, content_type=upload.content_type or "",
            )  # fmt: skip
    except (ValidationError, PermissionDenied) as exc:
        refused(request, exc)
    else:
        messages.success(request, f"{upload.name} attached with its sha256.")
    return _back(release, "evidence")


@perms_required(VIEW)
def evidence_download(request: HttpRequest, pk: int, file_pk: int) -> HttpResponse:
    stored = get_object_or_404(EvidenceFile, pk=file_pk, release_id=pk)
    response = HttpResponse(bytes(stored.data), content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{stored.name}"'
    response["X-Content-SHA256"] = stored.sha256
    return response


@require_POST
@perms_required(VIEW, UNLOCK)
def signature_void(request: HttpRequest, pk: int, signature_pk: int) -> HttpResponse:
    release = _release(pk)
    signature = get_object_or_404(release.signatures, pk=signature_pk)
    try:
        signing.signature_void(actor=request.user, signature=signature,
                               reason=request.POST.get("reason", ""))  # fmt: skip
    except (ValidationError, PermissionDenied) as exc:
        refused(request, exc)
    else:
        messages.success(request, "Signature voided; it stays on the release, struck through.")
    return _back(release, "ceremony")


@require_POST
@perms_required(VIEW, UNLOCK)
def signing_unlock(request: HttpRequest, user_pk: int) -> HttpResponse:
    from django.contrib.auth import get_user_model

    person = get_object_or_404(get_user_model(), pk=user_pk)
    try:
        signing.signing_unlock(actor=request.user, user=person,
                               reason=request.POST.get("reason", ""))  # fmt: skip
    except (ValidationError, PermissionDenied) as exc:
        refused(request, exc)
    else:
        messages.success(request, f"Signing unlocked for {person.get_username()}.")
    return redirect("governance:inbox")


# --- deployments and rollback ---------------------------------------------------------------


@perms_required(VIEW, "registry.view_deployment")
def deployments(request: HttpRequest, slug: str) -> HttpResponse:
    """Deployment history per site, each row with the release behind it, and the rollback
    button for each site that has something to roll back to."""
    model = get_object_or_404(ClinicalModel, slug=slug)
    history = deploy.deployment_history(model)
    sites = Site.objects.filter(
        Q(deployments__model=model)
    ).distinct().order_by("code")  # fmt: skip
    per_site = []
    for site in sites:
        target = releases.rollback_target(model, site)
        per_site.append(
            {"site": site, "rows": [r for r in history if r["deployment"].site_id == site.pk],
             "live": releases.live_configuration(model, site), "target": target}
        )  # fmt: skip
    rollbacks = Release.objects.filter(model=model, kind="rollback").order_by("-created_at")[:10]
    form = RollbackForm(initial={"incident": request.GET.get("incident")})
    form.fields["sites"].queryset = Site.objects.filter(
        pk__in=[p["site"].pk for p in per_site if p["target"]]
    )
    return render(
        request,
        "governance/deployments.html",
        {"model": model, "per_site": per_site, "form": form, "rollbacks": rollbacks,
         "can_rollback": has_perms(request.user, [ADD])},
    )  # fmt: skip


@require_POST
@perms_required(VIEW, ADD)
def rollback(request: HttpRequest, slug: str) -> HttpResponse:
    model = get_object_or_404(ClinicalModel, slug=slug)
    form = RollbackForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            for error in errors:
                messages.error(request, f"{field.capitalize()}: {error}")
        return redirect("governance:deployments", slug=slug)
    origin = {"incident": form.cleaned_data["incident"]} if form.cleaned_data["incident"] else {}
    try:
        release = releases.rollback_propose(
            actor=request.user, model=model, sites=list(form.cleaned_data["sites"]),
            rationale=form.cleaned_data["rationale"], origin=origin,
        )  # fmt: skip
    except (ValidationError, PermissionDenied) as exc:
        refused(request, exc)
        return redirect("governance:deployments", slug=slug)
    messages.success(request, f"{release.number} proposed: one medical director's signature "
                              "deploys it.")  # fmt: skip
    return _back(release, "ceremony")
