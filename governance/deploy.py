"""Deploying an approved release: the gate uses its configuration from the next request.

Each target site gets a new ``Deployment`` row (the previous one ends and stays on record as the
rollback target), pinned to the release's version, recalibration, thresholds and deferral
policy. A recalibration, threshold or deferral-policy change keeps whatever else is live at the
site; a new model or retrain deploys the version as registered, with the deferral policy in
force pinned so that a rollback can restore it exactly.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.permissions import require_perms
from governance import releases
from governance.models import Release, ReleaseKind, ReleaseStatus
from registry import services as registry
from registry.models import Deployment, ModelVersion, Site, VersionStatus

K = ReleaseKind


def _policy_in_force(version: ModelVersion) -> int | None:
    from monitoring.gate import policy_in_force

    policy = policy_in_force(version.pk)
    return policy.number if policy else None


def _approve_version(version: ModelVersion, release: Release) -> None:
    """A signed release is the version's approval: walk it to ``approved`` (as the system,
    naming the release) so the registry lets it deploy."""
    reason = f"approved by signed release {release.number}"
    if version.status == VersionStatus.DRAFT:
        registry.version_transition(actor=None, version=version, to_status="candidate",
                                    reason=reason)  # fmt: skip
        version.refresh_from_db()
    if version.status == VersionStatus.CANDIDATE:
        registry.version_transition(actor=None, version=version, to_status="approved",
                                    reason=reason)  # fmt: skip
        version.refresh_from_db()
    if version.status == VersionStatus.RETIRED:
        raise ValidationError({"version": f"{version} is retired and cannot be deployed."})


def _config_for(release: Release, site: Site) -> dict[str, Any]:
    """What the release makes live at ``site``."""
    if release.kind == K.ROLLBACK:
        target = Deployment.objects.select_related("version").get(pk=release.restores[site.code])
        policy = target.deferral_policy_number
        if policy is None:  # deployed before releases pinned it: what was in force then
            policy = (
                target.version.deferral_policies.filter(created_at__lte=target.ended_at)
                .order_by("-number")
                .values_list("number", flat=True)
                .first()
            )
        return {
            "version": target.version,
            "score_mapping": target.score_mapping or None,
            "thresholds": target.thresholds,
            "deferral_policy_number": policy,
        }
    live = releases.live_configuration(release.model, site)
    version = release.version
    keep_live = release.kind in (K.RECALIBRATION, K.THRESHOLD, K.DEFERRAL_POLICY)
    if keep_live and live is not None and live.version_id == version.pk:
        mapping = release.score_mapping or live.score_mapping or None
        thresholds = release.thresholds if release.thresholds is not None else live.thresholds
        policy = release.deferral_policy_number or live.deferral_policy_number
    else:
        mapping = release.score_mapping or None
        thresholds = release.thresholds
        policy = release.deferral_policy_number
    return {
        "version": version,
        "score_mapping": mapping,
        "thresholds": thresholds,
        "deferral_policy_number": policy if policy is not None else _policy_in_force(version),
    }


def release_deploy(*, actor: Any, release: Release, at: datetime | None = None) -> Release:
    """Start the release's configuration at every target site, in one transaction.

    ``at`` back-dates the deployments' start (the demo data set's history only; pages and the
    API always deploy now). The audit event records it."""
    require_perms(actor, "governance.deploy_release")
    started = time.perf_counter()
    with transaction.atomic():
        release = releases._locked(release)
        if release.status != ReleaseStatus.APPROVED:
            raise ValidationError(
                {"status": f"Only an approved release can be deployed; this one is "
                           f"{release.get_status_display().lower()}."}
            )  # fmt: skip
        missing = releases.missing_signers(release)
        if missing:
            raise ValidationError(
                {"signatures": "Signatures are missing or void: "
                               + ", ".join(f"{r} ({m})" for r, m in missing) + "."}
            )  # fmt: skip
        if release.kind != K.ROLLBACK:
            _approve_version(release.version, release)
        made = []
        for site in release.sites.order_by("code"):
            config = _config_for(release, site)
            if config["version"].status not in (VersionStatus.APPROVED, VersionStatus.DEPLOYED):
                _approve_version(config["version"], release)
            made.append(
                registry.deployment_start(
                    actor=None,
                    on_behalf_of=actor,
                    site=site,
                    reason=f"{release.number}: {release.title}"[:300],
                    at=at,
                    **config,
                )  # fmt: skip
            )
        release.deployments.add(*made)
        release.deploy_seconds = time.perf_counter() - started
        release.deployed_at = timezone.now()
        release.status = ReleaseStatus.DEPLOYED
        releases._save(release, actor=actor, reason="deployed",
                       update_fields=["status", "deployed_at", "deploy_seconds"])  # fmt: skip
        releases._audit(
            release, actor=actor, action="deployed",
            summary=f"live at {', '.join(d.site.code for d in made)} in "
                    f"{release.deploy_seconds * 1000:.0f} ms",
            deployments=[d.pk for d in made], sites=[d.site.code for d in made],
            deploy_ms=round(release.deploy_seconds * 1000, 1),
            backdated_to=at.isoformat() if at else None,
            proposed_to_live_s=round((release.deployed_at - release.created_at).total_seconds(), 1),
        )  # fmt: skip
    return release


def deployment_history(model: Any, site: Site | None = None) -> list[dict[str, Any]]:
    """Every deployment of ``model`` (at ``site``), newest first, with the release that
    started it and whether a rollback could restore it."""
    rows = Deployment.objects.filter(model=model).select_related("version", "site")
    if site is not None:
        rows = rows.filter(site=site)
    by_deployment: dict[int, Release] = {}
    for release in Release.objects.filter(model=model, deployments__isnull=False).distinct():
        for pk in release.deployments.values_list("pk", flat=True):
            by_deployment[pk] = release
    out = []
    for d in rows.order_by("-started_at", "-pk"):
        out.append({"deployment": d, "release": by_deployment.get(d.pk)})
    return out
