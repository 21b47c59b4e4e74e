"""A model's monitoring policy: reading the one in force and changing it (with history)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.permissions import require_perms
from governance.audit.services import record
from monitoring.models import MonitorPolicy
from monitoring.thresholds import (
    BAND_NAMES,
    DEFAULT_WINDOWS,
    LAUNCH_FACTOR,
    METRICS,
    TIER_FACTOR,
    TIGHT_TIERS,
    policy_errors,
    thresholds_for,
)
from registry.models import ClinicalModel


@dataclass(frozen=True)
class MetricRow:
    """One metric of a policy as shown on its page and in the API."""

    metric: str
    layer: str
    label: str
    unit: str
    direction: str
    yellow: float
    orange: float
    red: float
    min_n: int
    overridden: bool
    in_force: dict[str, float]  # after tightening for the model's tier (outside a launch)
    in_launch: dict[str, float]  # during the first launch_days after a deployment
    source: str


def policy_rows(model: ClinicalModel, policy: MonitorPolicy | None) -> list[MetricRow]:
    own = (policy.thresholds if policy else {}) or {}
    mins = (policy.min_samples if policy else {}) or {}
    rows = []
    for spec in METRICS.values():
        bands = {n: float(own.get(spec.name, {}).get(n, getattr(spec, n))) for n in BAND_NAMES}
        rows.append(
            MetricRow(
                metric=spec.name,
                layer=spec.layer,
                label=spec.label,
                unit=spec.unit,
                direction=spec.direction,
                min_n=int(mins.get(spec.name, spec.min_n)),
                overridden=spec.name in own or spec.name in mins,
                in_force=thresholds_for(spec, overrides=own, tier=model.risk_tier),
                in_launch=thresholds_for(spec, overrides=own, tier=model.risk_tier, in_launch=True),
                source=spec.source,
                **bands,
            )
        )
    return rows


def tightening_text(model: ClinicalModel, launch_days: int) -> str:
    tier = (
        f"{model.get_risk_tier_display()} tier: thresholds × {TIER_FACTOR}"
        if model.risk_tier in TIGHT_TIERS
        else f"{model.get_risk_tier_display()} tier: no tier tightening"
    )
    return f"{tier}; first {launch_days} days after a launch at a site: × {LAUNCH_FACTOR} more"


def as_dict(model: ClinicalModel, policy: MonitorPolicy | None) -> dict[str, Any]:
    return {
        "model": model.slug,
        "risk_tier": model.risk_tier,
        "is_default": policy is None,
        "windows": list(policy.windows) if policy else list(DEFAULT_WINDOWS),
        "launch_days": policy.launch_days if policy else 90,
        "sustained_windows": policy.sustained_windows if policy else 3,
        "thresholds": (policy.thresholds if policy else {}) or {},
        "min_samples": (policy.min_samples if policy else {}) or {},
        "reason": policy.reason if policy else "",
        "updated_by": policy.updated_by.get_username() if policy else None,
        "updated_at": policy.updated_at.isoformat() if policy else None,
    }


def monitor_policy_save(
    *,
    actor: Any,
    model: ClinicalModel,
    windows: Any,
    thresholds: Mapping[str, Any],
    min_samples: Mapping[str, Any],
    launch_days: Any,
    reason: str,
    sustained_windows: Any = 3,
) -> MonitorPolicy:
    """Put a whole policy in force for ``model`` (the previous one stays in its history)."""
    require_perms(actor, "monitoring.change_monitorpolicy")
    errors = policy_errors(thresholds, min_samples, windows)
    if (
        not isinstance(launch_days, int)
        or isinstance(launch_days, bool)
        or not (0 <= launch_days <= 730)
    ):
        errors["launch_days"] = "Give the launch period in days (0–730)."
    if (
        not isinstance(sustained_windows, int)
        or isinstance(sustained_windows, bool)
        or not 1 <= sustained_windows <= 30
    ):
        errors["sustained_windows"] = "Give how many consecutive evaluations page (1–30)."
    if not (reason or "").strip():
        errors["reason"] = "Say why the policy changes (kept in its history)."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        policy = MonitorPolicy.objects.select_for_update().filter(model=model).first()
        before = as_dict(model, policy)
        if policy is None:
            policy = MonitorPolicy(model=model)
        policy.windows = sorted(windows)
        policy.thresholds = {k: dict(v) for k, v in thresholds.items()}
        policy.min_samples = dict(min_samples)
        policy.launch_days = launch_days
        policy.sustained_windows = sustained_windows
        policy.reason = reason.strip()[:300]
        policy.updated_by = actor
        policy.updated_at = timezone.now()
        policy._history_user = actor  # type: ignore[attr-defined]
        policy._change_reason = policy.reason  # type: ignore[attr-defined]
        policy.save()
        after = as_dict(model, policy)
        changed = sorted(
            k
            for k in ("windows", "launch_days", "sustained_windows", "thresholds", "min_samples")
            if before[k] != after[k]
        )
        record(
            actor=actor,
            action="monitoring.policy_changed",
            summary=f"Monitoring policy of {model.slug} changed"
            + (f" ({', '.join(changed)})" if changed else " (no change in values)")
            + f": {policy.reason}",
            target=policy,
            payload={"model": model.slug, "changed": changed, "before": before, "after": after},
        )
    return policy
