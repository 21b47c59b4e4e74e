"""Releases: how one change for one model reaches patients, in an enforced order.

draft → submitted → in review → approved → deployed, or rejected / withdrawn on the way. The
author submits with an authorship signature; the model's risk tier decides which roles must
sign (``required_signers``); the release is approved the moment the last required signature
lands; deploying it starts the pinned configuration at its sites (``governance.deploy``).
Editing the content after submission voids every signature, visibly, and sends the release
back to review. Every change appends an audit event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.permissions import require_perms
from governance.audit.services import record
from governance.models import (
    EvidenceFile,
    Release,
    ReleaseKind,
    ReleaseStatus,
    Signature,
    SignatureMeaning,
)
from registry.models import ClinicalModel, Deployment, DeploymentMode, ModelVersion, Site
from registry.services import deployment_config_errors

K, S = ReleaseKind, ReleaseStatus
OPEN = (S.DRAFT, S.SUBMITTED, S.IN_REVIEW, S.APPROVED)
#: The enforced order: each state's allowed next states.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.WITHDRAWN}),
    S.SUBMITTED: frozenset({S.IN_REVIEW, S.REJECTED, S.WITHDRAWN, S.DRAFT}),
    S.IN_REVIEW: frozenset({S.APPROVED, S.REJECTED, S.WITHDRAWN, S.DRAFT}),
    S.APPROVED: frozenset({S.DEPLOYED, S.WITHDRAWN, S.DRAFT}),
    S.DEPLOYED: frozenset(),
    S.REJECTED: frozenset(),
    S.WITHDRAWN: frozenset(),
}
#: Whose signatures a release needs, by the model's risk tier: (role, meaning).
REQUIRED_SIGNERS: dict[str, tuple[tuple[str, str], ...]] = {
    "critical": (
        ("medical_director", SignatureMeaning.APPROVAL),
        ("quality_safety", SignatureMeaning.REVIEW),
        ("compliance_officer", SignatureMeaning.RESPONSIBILITY),
    ),
    "high": (
        ("medical_director", SignatureMeaning.APPROVAL),
        ("quality_safety", SignatureMeaning.REVIEW),
    ),
    "moderate": (("medical_director", SignatureMeaning.APPROVAL),),
    "low": (("ml_engineer", SignatureMeaning.APPROVAL),),
}
#: The rollback fast path: one medical director's signature, whatever the tier.
ROLLBACK_SIGNERS: tuple[tuple[str, str], ...] = (("medical_director", SignatureMeaning.APPROVAL),)
MAX_EVIDENCE_FILE = 20 * 1024 * 1024
#: Fields whose change after submission voids the signatures (the signed content).
CONTENT_FIELDS = frozenset(
    {"title", "rationale", "version", "sites", "score_mapping", "thresholds",
     "deferral_policy_number", "evidence"}
)  # fmt: skip


def required_signers(release: Release) -> tuple[tuple[str, str], ...]:
    if release.kind == K.ROLLBACK:
        return ROLLBACK_SIGNERS
    return REQUIRED_SIGNERS[release.model.risk_tier]


# --- canonical content ----------------------------------------------------------------------


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_content(release: Release) -> dict[str, Any]:
    """Exactly what a signature signs, read from the database as it is now: a change made
    behind the services' back changes the hash too, so the signature shows as void."""
    version = release.version
    return {
        "release": release.pk,
        "model": release.model.slug,
        "kind": release.kind,
        "title": release.title,
        "rationale": release.rationale,
        "version": (
            {"version": version.version, "artifact_sha256": version.artifact_sha256}
            if version is not None
            else None
        ),
        "sites": sorted(release.sites.values_list("code", flat=True)),
        "score_mapping": release.score_mapping or {},
        "thresholds": release.thresholds,
        "deferral_policy_number": release.deferral_policy_number,
        "restores": release.restores or {},
        "evidence_sha256": hashlib.sha256(
            _canonical_json(release.evidence or {}).encode()
        ).hexdigest(),
        "files": sorted(
            [f.name, f.sha256] for f in release.files.only("name", "sha256").order_by("pk")
        ),
    }


def content_hash(release: Release) -> str:
    return hashlib.sha256(_canonical_json(canonical_content(release)).encode()).hexdigest()


# --- reading --------------------------------------------------------------------------------


def valid_signatures(release: Release) -> list[Signature]:
    current = content_hash(release)
    return [
        s for s in release.signatures.filter(voided_at__isnull=True) if s.content_sha256 == current
    ]


def missing_signers(release: Release) -> list[tuple[str, str]]:
    """The required (role, meaning) pairs no valid signature fills yet."""
    filled = {(s.role, s.meaning) for s in valid_signatures(release)}
    return [need for need in required_signers(release) if need not in filled]


def is_fully_signed(release: Release) -> bool:
    return not missing_signers(release)


def live_configuration(model: ClinicalModel, site: Site) -> Deployment | None:
    return (
        Deployment.objects.filter(
            model=model, site=site, mode=DeploymentMode.LIVE, ended_at__isnull=True
        )
        .select_related("version")
        .first()
    )


def diff_against_live(release: Release) -> list[dict[str, Any]]:
    """Per target site: what is live now and what the release would make live."""
    rows = []
    for site in release.sites.order_by("code"):
        live = live_configuration(release.model, site)
        version = release.version or (live.version if live else None)
        rows.append(
            {
                "site": site.code,
                "live": _describe(live.version, live.score_mapping, live.thresholds,
                                  live.deferral_policy_number) if live else None,
                "frozen": bool(live and live.frozen),
                "proposed": _describe(version, release.score_mapping, release.thresholds,
                                      release.deferral_policy_number) if version else None,
            }
        )  # fmt: skip
    return rows


def _describe(
    version: ModelVersion, mapping: Mapping[str, Any] | None, thresholds: Any, policy: int | None
) -> dict[str, Any]:
    from monitoring.gate import policy_in_force

    in_force = policy_in_force(version.pk)
    return {
        "version": version.version,
        "score_mapping": dict(mapping or {}),
        "thresholds": thresholds if thresholds is not None else version.decision_thresholds,
        "thresholds_source": "release" if thresholds is not None else "version",
        "deferral_policy": policy if policy is not None else (in_force.number if in_force else 0),
    }


# --- writing --------------------------------------------------------------------------------


def _save(release: Release, *, actor: Any, reason: str, **kwargs: Any) -> None:
    release._history_user = actor if actor is not None and actor.is_authenticated else None  # type: ignore[attr-defined]
    release._change_reason = reason  # type: ignore[attr-defined]
    release.save(**kwargs)


def _audit(release: Release, *, actor: Any, action: str, summary: str, **payload: Any) -> None:
    record(
        actor=actor,
        action=f"release.{action}",
        target=release,
        summary=f"{release.number} ({release.model.slug}): {summary}"[:500],
        payload={"release": release.pk, "model": release.model.slug, "kind": release.kind,
                 **payload},
    )  # fmt: skip


def _locked(release: Release) -> Release:
    return Release.objects.select_for_update().select_related("model", "version").get(pk=release.pk)


def _check_content(
    *,
    model: ClinicalModel,
    kind: str,
    title: str,
    rationale: str,
    version: ModelVersion | None,
    sites: Sequence[Site],
    score_mapping: Mapping[str, Any] | None,
    thresholds: Mapping[str, float] | None,
    deferral_policy_number: int | None,
    for_submission: bool,
) -> dict[str, Any]:
    """Every problem with a release's content, by field. Drafts may be incomplete; a submitted
    release must say what it changes and where."""
    errors: dict[str, Any] = {}
    if kind not in K.values:
        errors["kind"] = f"Unknown kind {kind!r}; use one of {', '.join(K.values)}."
    if not title.strip():
        errors["title"] = "Give the release a title."
    if not rationale.strip():
        errors["rationale"] = "Say why this change is needed."
    if version is not None and version.model_id != model.pk:
        errors["version"] = f"{version} is not a version of {model.slug}."
    inactive = [s.code for s in sites if not s.is_active]
    if inactive:
        errors["sites"] = f"Inactive sites: {', '.join(inactive)}."
    if kind in (K.NEW_MODEL, K.RETRAIN) and (score_mapping or thresholds is not None):
        errors["score_mapping"] = "A new model or retrain deploys a version as registered."
    if kind == K.RECALIBRATION and for_submission and not score_mapping:
        errors["score_mapping"] = "A recalibration needs its fitted mapping."
    if kind == K.THRESHOLD and for_submission and thresholds is None:
        errors["thresholds"] = "A threshold change needs the new thresholds."
    if kind == K.DEFERRAL_POLICY and for_submission and deferral_policy_number is None:
        errors["deferral_policy_number"] = "Name the deferral policy version to deploy."
    if for_submission:
        if not sites:
            errors["sites"] = "Name the sites this release targets."
        if version is None:
            errors["version"] = "Name the version this release deploys."
    if version is not None and "version" not in errors:
        try:
            deployment_config_errors(
                version,
                score_mapping=score_mapping,
                thresholds=thresholds,
                deferral_policy_number=deferral_policy_number,
            )
        except ValidationError as exc:
            errors.update({k: " ".join(v) for k, v in exc.message_dict.items()})
    return errors


def _current_version(model: ClinicalModel, sites: Sequence[Site]) -> ModelVersion | None:
    live = Deployment.objects.filter(
        model=model, mode=DeploymentMode.LIVE, ended_at__isnull=True
    ).select_related("version")
    if sites:
        live = live.filter(site__in=sites)
    versions = {d.version for d in live}
    return versions.pop() if len(versions) == 1 else None


@transaction.atomic
def release_create(
    *,
    actor: Any,
    model: ClinicalModel,
    kind: str,
    title: str,
    rationale: str,
    version: ModelVersion | None = None,
    sites: Iterable[Site] = (),
    score_mapping: Mapping[str, Any] | None = None,
    thresholds: Mapping[str, float] | None = None,
    deferral_policy_number: int | None = None,
    evidence: Mapping[str, Any] | None = None,
    origin: Mapping[str, Any] | None = None,
) -> Release:
    """A draft release. A recalibration, threshold or deferral-policy change keeps the version
    live at its sites unless one is named."""
    require_perms(actor, "governance.add_release")
    if kind == K.ROLLBACK:
        raise ValidationError({"kind": "Propose a rollback with rollback_propose."})
    sites = list(sites)
    if version is None and kind in (K.RECALIBRATION, K.THRESHOLD, K.DEFERRAL_POLICY):
        version = _current_version(model, sites)
    errors = _check_content(
        model=model, kind=kind, title=title, rationale=rationale, version=version, sites=sites,
        score_mapping=score_mapping, thresholds=thresholds,
        deferral_policy_number=deferral_policy_number, for_submission=False,
    )  # fmt: skip
    if errors:
        raise ValidationError(errors)
    release = Release(
        model=model,
        kind=kind,
        title=title.strip(),
        rationale=rationale.strip(),
        version=version,
        score_mapping=dict(score_mapping or {}),
        thresholds=dict(thresholds) if thresholds is not None else None,
        deferral_policy_number=deferral_policy_number,
        evidence=dict(evidence or {}),
        origin=dict(origin or {}),
        author=actor,
    )
    _save(release, actor=actor, reason="drafted")
    release.sites.set(sites)
    _audit(release, actor=actor, action="create", summary=f"drafted “{release.title}”",
           sites=sorted(s.code for s in sites), origin=release.origin)  # fmt: skip
    return release


@transaction.atomic
def release_update(
    *, actor: Any, release: Release, changes: Mapping[str, Any], reason: str
) -> Release:
    """Change a release's content: only its author may. Before submission this is drafting;
    afterwards every signature, the author's own included, is voided (shown struck through
    with the reason) and the release goes back to draft: the author submits it again and
    every signer signs again."""
    require_perms(actor, "governance.change_release")
    release = _locked(release)
    if release.author_id != getattr(actor, "pk", None):
        raise PermissionDenied("Only the release's author changes its content.")
    if release.status not in OPEN:
        raise ValidationError({"status": f"A {release.get_status_display().lower()} release "
                                         "cannot change; propose a new one."})  # fmt: skip
    unknown = sorted(set(changes) - CONTENT_FIELDS)
    if unknown:
        raise ValidationError({name: "This field cannot be changed here." for name in unknown})
    if release.status != S.DRAFT and not reason.strip():
        raise ValidationError({"reason": "Say why the signed content changes."})
    if release.kind == K.ROLLBACK:
        raise ValidationError({"kind": "A rollback's content is fixed; withdraw it instead."})
    current = {
        "title": release.title, "rationale": release.rationale, "version": release.version,
        "sites": list(release.sites.all()), "score_mapping": release.score_mapping,
        "thresholds": release.thresholds,
        "deferral_policy_number": release.deferral_policy_number,
    }  # fmt: skip
    merged = {**current, **{k: v for k, v in changes.items() if k != "evidence"}}
    errors = _check_content(model=release.model, kind=release.kind,
                            for_submission=release.status != S.DRAFT, **merged)  # fmt: skip
    if errors:
        raise ValidationError(errors)
    before = content_hash(release)
    for name in ("title", "rationale", "version", "score_mapping", "thresholds",
                 "deferral_policy_number"):  # fmt: skip
        if name in changes:
            setattr(release, name, merged[name])
    if "evidence" in changes:
        release.evidence = dict(changes["evidence"] or {})
    _save(release, actor=actor, reason=reason or "drafting")
    if "sites" in changes:
        release.sites.set(merged["sites"])
    after = content_hash(release)
    if after == before:
        return release
    voided = 0
    if release.status != S.DRAFT:
        voided = _back_to_draft(release, actor=actor, reason=f"content changed: {reason}")
    _audit(release, actor=actor, action="update",
           summary=f"content changed ({', '.join(sorted(changes))}); {voided} signatures voided",
           changed=sorted(changes), reason=reason, voided=voided,
           content_sha256=after)  # fmt: skip
    return release


def _back_to_draft(release: Release, *, actor: Any, reason: str) -> int:
    """Signed content changed: void every signature and return the release to draft."""
    voided = _void_all(release, actor=actor, reason=reason)
    release.content_sha256 = ""
    release.approved_at = release.submitted_at = release.review_started_at = None
    fields = ["content_sha256", "approved_at", "submitted_at", "review_started_at"]
    _save(release, actor=actor, reason=reason, update_fields=fields)
    _move(release, S.DRAFT, actor=actor, stamp=None, reason=reason)
    return voided


def _void_all(release: Release, *, actor: Any, reason: str) -> int:
    now = timezone.now()
    count = 0
    for signature in release.signatures.filter(voided_at__isnull=True):
        signature.voided_at, signature.void_reason = now, reason[:300]
        signature._history_user = actor  # type: ignore[attr-defined]
        signature.save(update_fields=["voided_at", "void_reason"])
        count += 1
    return count


@transaction.atomic
def evidence_file_add(
    *, actor: Any, release: Release, kind: str, name: str, data: bytes, content_type: str = ""
) -> EvidenceFile:
    """Attach a file as evidence, stored with its sha256. After submission this changes the
    signed content, so it voids the signatures like any other change."""
    require_perms(actor, "governance.change_release")
    release = _locked(release)
    if release.author_id != getattr(actor, "pk", None):
        raise PermissionDenied("Only the release's author attaches its evidence.")
    errors = {}
    if release.status not in OPEN:
        errors["release"] = "Evidence can be added only to an open release."
    if release.kind == K.ROLLBACK:
        errors["release"] = "A rollback's content is fixed: it restores a past deployment."
    if kind not in EvidenceFile.Kind.values:
        errors["kind"] = f"Unknown evidence kind {kind!r}."
    if not name.strip() or len(name) > 255:
        errors["name"] = "Give the file a name (at most 255 characters)."
    if not data:
        errors["file"] = "The file is empty."
    elif len(data) > MAX_EVIDENCE_FILE:
        errors["file"] = f"Files up to {MAX_EVIDENCE_FILE // (1024 * 1024)} MB are accepted."
    if errors:
        raise ValidationError(errors)
    digest = hashlib.sha256(data).hexdigest()
    before = content_hash(release)
    evidence = EvidenceFile.objects.create(
        release=release, kind=kind, name=name.strip(), content_type=content_type[:100],
        size=len(data), sha256=digest, data=data, uploaded_by=actor,
    )  # fmt: skip
    voided = 0
    if release.status != S.DRAFT and content_hash(release) != before:
        voided = _back_to_draft(release, actor=actor, reason=f"evidence file {name} added")
    _audit(release, actor=actor, action="evidence", summary=f"evidence file {name} ({digest[:12]})",
           file=name, sha256=digest, size=len(data), voided=voided)  # fmt: skip
    return evidence


def _move(release: Release, to: str, *, actor: Any, stamp: str | None, reason: str) -> None:
    if to not in TRANSITIONS[release.status]:
        raise ValidationError(
            {"status": f"A {release.get_status_display().lower()} release cannot become "
                       f"{S(to).label.lower()}."}
        )  # fmt: skip
    old = release.status
    release.status = to
    fields = ["status"]
    if stamp:
        setattr(release, stamp, timezone.now())
        fields.append(stamp)
    if to in (S.REJECTED, S.WITHDRAWN):
        release.closed_reason = reason[:500]
        fields.append("closed_reason")
    _save(release, actor=actor, reason=reason or f"{old} → {to}", update_fields=fields)
    _audit(release, actor=actor, action=to, summary=f"{old} → {to}", reason=reason,
           content_sha256=release.content_sha256)  # fmt: skip


def release_submit(
    *, actor: Any, release: Release, password: str, username: str = "",
    require_username: bool = False,
) -> Release:  # fmt: skip
    """The author submits: the content is frozen into its hash and the author signs it
    (authorship), re-entering their password."""
    from governance import signing

    require_perms(actor, "governance.change_release")
    signing.check_credentials(actor=actor, password=password, username=username,
                              require_username=require_username, release=release)  # fmt: skip
    with transaction.atomic():
        return _submit(actor=actor, release=release)


def _submit(*, actor: Any, release: Release) -> Release:
    from governance import signing

    release = _locked(release)
    if release.author_id != actor.pk:
        raise PermissionDenied("Only the release's author submits it.")
    if release.status != S.DRAFT:
        raise ValidationError({"status": "Only a draft can be submitted."})
    errors = _check_content(
        model=release.model, kind=release.kind, title=release.title,
        rationale=release.rationale, version=release.version,
        sites=list(release.sites.all()), score_mapping=release.score_mapping,
        thresholds=release.thresholds, deferral_policy_number=release.deferral_policy_number,
        for_submission=True,
    )  # fmt: skip
    if errors:
        raise ValidationError(errors)
    release.content_sha256 = content_hash(release)
    _save(release, actor=actor, reason="submitted", update_fields=["content_sha256"])
    signing.sign(actor=actor, release=release, meaning=SignatureMeaning.AUTHORSHIP,
                 role="author")  # fmt: skip
    _move(release, S.SUBMITTED, actor=actor, stamp="submitted_at", reason="submitted")
    return release


@transaction.atomic
def release_start_review(*, actor: Any, release: Release) -> Release:
    """A required signer takes the release into review."""
    require_perms(actor, "governance.sign_release")
    release = _locked(release)
    if release.author_id == actor.pk:
        raise PermissionDenied("The author cannot review their own release.")
    _move(release, S.IN_REVIEW, actor=actor, stamp="review_started_at", reason="review started")
    return release


@transaction.atomic
def release_reject(*, actor: Any, release: Release, reason: str) -> Release:
    require_perms(actor, "governance.sign_release")
    release = _locked(release)
    if release.author_id == actor.pk:
        raise PermissionDenied("The author cannot reject their own release; withdraw it.")
    held = set(actor.groups.values_list("name", flat=True))
    if not any(role in held for role, _ in required_signers(release)):
        raise PermissionDenied("Only a role whose signature this release needs may reject it.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the release is rejected."})
    _move(release, S.REJECTED, actor=actor, stamp="closed_at", reason=reason.strip())
    return release


@transaction.atomic
def release_withdraw(*, actor: Any, release: Release, reason: str) -> Release:
    require_perms(actor, "governance.change_release")
    release = _locked(release)
    if release.author_id != actor.pk and not actor.has_perm("governance.deploy_release"):
        raise PermissionDenied("Only the author or a deployer may withdraw a release.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the release is withdrawn."})
    _move(release, S.WITHDRAWN, actor=actor, stamp="closed_at", reason=reason.strip())
    return release


def approve_if_complete(release: Release, *, actor: Any) -> bool:
    """Called after each signature: the last required one approves the release."""
    if release.status == S.IN_REVIEW and is_fully_signed(release):
        _move(release, S.APPROVED, actor=actor, stamp="approved_at",
              reason="every required signature is in")  # fmt: skip
        return True
    return False


# --- rollback -------------------------------------------------------------------------------


def rollback_target(model: ClinicalModel, site: Site) -> Deployment | None:
    """The live deployment the current one superseded at ``site``: what a rollback restores."""
    current = live_configuration(model, site)
    if current is None:
        return None
    return (
        Deployment.objects.filter(
            model=model, site=site, mode=DeploymentMode.LIVE, ended_at__isnull=False,
            started_at__lte=current.started_at,
        )
        .exclude(pk=current.pk)
        .order_by("-ended_at", "-pk")
        .select_related("version")
        .first()
    )  # fmt: skip


@transaction.atomic
def rollback_propose(
    *,
    actor: Any,
    model: ClinicalModel,
    sites: Iterable[Site],
    rationale: str,
    origin: Mapping[str, Any] | None = None,
) -> Release:
    """A rollback release restoring, at each site, the deployment the live one replaced:
    its version, recalibration, thresholds and deferral policy. It is submitted at once (no
    authorship ceremony: speed matters) and needs one medical director's signature, which
    deploys it."""
    require_perms(actor, "governance.add_release")
    sites = list(sites)
    errors: dict[str, str] = {}
    if not rationale.strip():
        errors["rationale"] = "Say why the model is rolled back."
    if not sites:
        errors["sites"] = "Name the sites to roll back."
    restores: dict[str, int] = {}
    versions = set()
    for site in sites:
        target = rollback_target(model, site)
        if target is None:
            errors["sites"] = f"Nothing to roll back to at {site.code}: no earlier deployment."
            continue
        restores[site.code] = target.pk
        versions.add(target.version_id)
    if errors:
        raise ValidationError(errors)
    first = Deployment.objects.select_related("version").get(pk=next(iter(restores.values())))
    release = Release(
        model=model,
        kind=K.ROLLBACK,
        title=f"Roll back {model.slug} at {', '.join(sorted(restores))}",
        rationale=rationale.strip(),
        version=first.version if len(versions) == 1 else None,
        restores=restores,
        origin=dict(origin or {}),
        author=actor,
    )
    _save(release, actor=actor, reason="rollback proposed")
    release.sites.set(sites)
    release.content_sha256 = content_hash(release)
    release.status, release.submitted_at = S.SUBMITTED, timezone.now()
    _save(release, actor=actor, reason="rollback submitted",
          update_fields=["content_sha256", "status", "submitted_at"])  # fmt: skip
    what = ", ".join(f"{code} → deployment {pk}" for code, pk in sorted(restores.items()))
    _audit(release, actor=actor, action="rollback_proposed", summary=f"restore {what}",
           restores=restores, origin=release.origin)  # fmt: skip
    return release


def validation_set_add(*, actor: Any, release: Release, name: str, data: bytes) -> Release:
    """Upload a validation set: Vigil computes discrimination and calibration overall and per
    subgroup, the regression check against the current version and the backtests
    (``governance.evidence``), stores the file with its sha256 and the results as the
    release's evidence. A bad file is refused with every problem and nothing is stored."""
    from governance import evidence

    require_perms(actor, "governance.change_release")
    if release.version is None:
        raise ValidationError({"version": "Name the version first: the set is checked against "
                                          "its feature spec."})  # fmt: skip
    current = evidence.current_version_at(model=release.model, sites=list(release.sites.all()))
    computed = evidence.evaluate_validation_set(
        version=release.version, data=data, filename=name,
        current_version=current if current != release.version else None,
    )  # fmt: skip
    with transaction.atomic():
        evidence_file_add(actor=actor, release=release, kind=EvidenceFile.Kind.VALIDATION_SET,
                          name=name, data=data)  # fmt: skip
        release.refresh_from_db()
        merged = {**(release.evidence or {}), "validation": computed}
        shadow = evidence.shadow_results(version=release.version, sites=release.sites.all())
        if shadow is not None:
            merged["shadow"] = shadow
        return release_update(actor=actor, release=release, changes={"evidence": merged},
                              reason=f"validation set {name} evaluated")  # fmt: skip
