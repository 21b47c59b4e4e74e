"""Governance checks (run by beat): what is live must be signed, reviewed and documented.

Each run finds, from the database as it is (so a deployment started behind the workflow's back,
or a release edited outside Vigil, is caught):

- a live deployment that no deployed release with a complete set of valid signatures started;
- a live release carrying a voided signature, or one whose content no longer matches what was
  signed;
- an overdue review meeting and overdue review action items;
- a deployed model whose model card has empty fields.

The findings go to incidents as one ``governance.signals.checked`` signal: each raises or
updates a governance-layer alert routed by the RACI; those no longer found resolve.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.utils import timezone

from governance import releases, signals
from governance.findings import Finding
from governance.models import Release, ReleaseStatus
from registry.models import ClinicalModel, Deployment, DeploymentMode

#: The kinds one run covers (``signing_locked`` is raised when it happens, not by the run).
RUN_KINDS = (
    "unsigned_deployment",
    "voided_signature",
    "overdue_review",
    "overdue_action",
    "incomplete_model_card",
)


def _live() -> list[Deployment]:
    return list(
        Deployment.objects.filter(mode=DeploymentMode.LIVE, ended_at__isnull=True)
        .select_related("model", "version", "site")
        .order_by("model_id", "site__code")
    )


def deployment_findings(live: list[Deployment]) -> list[Finding]:
    found = []
    by_deployment: dict[int, list[Release]] = {}
    for release in Release.objects.filter(deployments__in=[d.pk for d in live]).distinct():
        for pk in release.deployments.values_list("pk", flat=True):
            by_deployment.setdefault(pk, []).append(release)
    for d in live:
        started_by = [r for r in by_deployment.get(d.pk, []) if r.status == ReleaseStatus.DEPLOYED]
        if not started_by:
            found.append(
                Finding(
                    kind="unsigned_deployment",
                    model_id=d.model_id,
                    key=f"deployment:{d.pk}",
                    summary=f"{d.version} is live at {d.site.code} without a signed release "
                    f"(started {d.started_at:%Y-%m-%d %H:%M} UTC: “{d.reason}”)",
                    details={"deployment": d.pk, "site": d.site.code, "version": d.version.version},
                )
            )
            continue
        for release in started_by:
            missing = releases.missing_signers(release)
            # Signatures voided before deployment were redone (the release went back to draft
            # and was signed again); only one voided while the release is live matters.
            voided = release.signatures.filter(voided_at__gt=release.deployed_at).count()
            altered = releases.content_hash(release) != release.content_sha256
            if altered or voided or missing:
                why = []
                if altered:
                    why.append("its content changed after signing")
                if voided:
                    why.append(f"{voided} signature(s) voided")
                if missing:
                    why.append("missing: " + ", ".join(r for r, _ in missing))
                found.append(
                    Finding(
                        kind="voided_signature",
                        model_id=d.model_id,
                        key=f"release:{release.pk}",
                        band="red" if altered else "orange",
                        summary=f"{release.number}, live at {d.site.code}: " + "; ".join(why),
                        details={
                            "release": release.pk,
                            "site": d.site.code,
                            "content_altered": altered,
                            "voided": voided,
                        },
                    )  # fmt: skip
                )
    # One finding per release is enough, whatever the number of its sites.
    unique: dict[tuple[str, str], Finding] = {}
    for f in found:
        unique.setdefault((f.kind, f.key), f)
    return list(unique.values())


def model_card_findings(live: list[Deployment]) -> list[Finding]:
    from registry.cards import build_card

    found = []
    for model_id in sorted({d.model_id for d in live}):
        model = ClinicalModel.objects.get(pk=model_id)
        card = build_card(model)
        missing = card.missing_fields
        if missing:
            found.append(
                Finding(
                    kind="incomplete_model_card",
                    model_id=model_id,
                    key="card",
                    band="yellow",
                    summary=f"The model card of {model.slug} is {card.completeness.percent}% "
                    f"complete; empty: {', '.join(f.label for f in missing[:6])}"
                    + ("…" if len(missing) > 6 else ""),
                    details={
                        "missing": [f.key for f in missing],
                        "percent": card.completeness.percent,
                    },
                )  # fmt: skip
            )
    return found


def review_findings(today: date) -> list[Finding]:
    from governance import reviews

    return [*reviews.overdue_review_findings(today), *reviews.overdue_action_findings(today)]


def run(today: date | None = None) -> list[Finding]:
    """Every check, and the signal that turns findings into alerts. Returns the findings."""
    today = today or timezone.localdate()
    live = _live()
    findings = [*deployment_findings(live), *review_findings(today), *model_card_findings(live)]
    signals.checked.send(sender=Release, kinds=RUN_KINDS, findings=findings)
    return findings


def summary(findings: list[Finding]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    return counts
