"""From metric results to alerts: raise, deduplicate, escalate, suggest resolution.

``process_results(version, window_end)`` runs after each evaluation of the newest window. A
result worse than green raises (or updates) the alert of its fingerprint (model, slice, metric)
when it is confident (its interval clears the green threshold), sustained (``SUSTAINED_K``
consecutive window ends worse than green) or a sequential chart's alarm; ``insufficient`` never
pages anyone. Each alert's payload holds aggregates only. The alert joins an incident: the
metric's root slice (the site or cohort whose deviation is largest) owns it, so one site's
problem seen again in the whole deployment and in every cohort is one incident, not many.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from governance.audit.services import record
from incidents import routing
from incidents.models import Alert, AlertOccurrence, AlertStatus, Suppression
from monitoring.models import MetricResult, MonitorPolicy
from monitoring.thresholds import METRICS
from registry.models import ModelVersion

#: A result worse than green for this many consecutive window ends is "sustained".
SUSTAINED_K = 3
SEQUENTIAL = ("cusum_", "ewma_")


def fingerprint(model_id: int, slice_key: str, metric: str) -> str:
    return hashlib.sha256(f"{model_id}|{slice_key}|{metric}".encode()).hexdigest()


def _worse(a: str, b: str) -> str:
    return a if routing.BAND_RANK.get(a, 0) >= routing.BAND_RANK.get(b, 0) else b


@dataclass
class Processed:
    raised: list[Alert] = field(default_factory=list)
    updated: list[Alert] = field(default_factory=list)
    escalated: list[Alert] = field(default_factory=list)
    back_to_green: list[Alert] = field(default_factory=list)
    suppressed: int = 0


def _sustained(result: MetricResult, k: int) -> bool:
    earlier = list(
        MetricResult.objects.filter(
            version_id=result.version_id,
            slice_key=result.slice_key,
            metric=result.metric,
            window_days=result.window_days,
            window_end__lt=result.window_end,
        )
        .order_by("-window_end")
        .values_list("band", flat=True)[: k - 1]
    )
    return len(earlier) == k - 1 and all(b in ("yellow", "orange", "red") for b in earlier)


def _why(result: MetricResult, k: int = SUSTAINED_K) -> str | None:
    """Why this result pages someone, or None."""
    if result.band in ("green", "insufficient"):
        return None
    if result.metric.startswith(SEQUENTIAL) and result.band == "red":
        return "sequential"
    if result.clears_threshold:
        return "confident"
    if _sustained(result, k):
        return "sustained"
    return None


def slice_words(key: str) -> str:
    """A slice key in plain words: "site SOUTH", "patients with age band 80+"."""
    if key == "all":
        return "the whole deployment"
    if key == "governance":
        return "its governance records"
    if key.startswith("site="):
        return f"site {key.partition('=')[2]}"
    column, _, value = key.partition("=")
    return f"patients with {column.replace('_', ' ')} {value}"


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.3g}"


def recommended_response(layer: str, metric: str) -> str:
    """The response the alert type's runbook prescribes (its steps in order), with the layer's
    one-line advice when no runbook applies."""
    from incidents.models import Runbook

    base = metric.partition(":")[0]
    book = (
        Runbook.objects.filter(layer=layer, metric=base).first()
        or Runbook.objects.filter(layer=layer, metric="").first()
    )
    if book is None:
        return routing.RESPONSE.get(layer, "")
    steps = "; ".join(f"{i}. {step['title']}" for i, step in enumerate(book.steps, start=1))
    return f"{routing.RESPONSE.get(layer, '')} Runbook “{book.title}”: {steps}.".strip()


def payload(result: MetricResult, why: str, k: int = SUSTAINED_K) -> dict[str, Any]:
    """What changed, by how much, for whom, how sure, what to do: aggregates only."""
    spec = METRICS[result.metric.partition(":")[0]]
    feature = result.metric.partition(":")[2]
    label = spec.label + (f" — {feature}" if feature else "")
    small = result.n < 2 * int(result.details.get("min_n", spec.min_n))
    confidence = {
        "confident": "The whole 95% interval lies beyond the green threshold: this is not "
        "chance at this sample size.",
        "sustained": f"Worse than green for {k} consecutive evaluations, though the "
        "interval of the latest one still reaches the green range.",
        "sequential": "A sequential chart over the daily results crossed its alarm limit.",
    }[why]
    if small:
        confidence += f" The sample is small (n = {result.n}): read the interval, not the value."
    slug = result.model.slug
    return {
        "model": slug,
        "version": result.version.version,
        "metric": result.metric,
        "metric_label": label,
        "layer": result.layer,
        "slice": result.slice_key,
        "slice_words": slice_words(result.slice_key),
        "window": {
            "days": result.window_days,
            "start": result.window_start.isoformat(),
            "end": result.window_end.isoformat(),
        },
        "band": result.band,
        "value": result.value,
        "interval": [result.low, result.high],
        "baseline": result.baseline,
        "thresholds": result.thresholds,
        "n": result.n,
        "summary": (
            f"{label} for {slice_words(result.slice_key)} is {_number(result.value)} "
            f"(95% interval {_number(result.low)} to {_number(result.high)}, n = {result.n}) "
            f"against a baseline of {_number(result.baseline)}: {result.band}."
        ),
        "confidence": confidence,
        "clinical_impact": routing.CLINICAL_IMPACT.get(result.layer, ""),
        "intended_use": result.model.intended_use[:300],
        "recommended_response": recommended_response(result.layer, result.metric),
        "links": {
            "dashboard": f"/monitoring/{slug}/",
            "metric": f"/monitoring/{slug}/metric/{result.metric}/?slice={result.slice_key}"
            f"&window={result.window_days}",
        },
    }


def _suppressed(fp: str, now: Any) -> bool:
    return Suppression.objects.filter(
        fingerprint=fp, lifted_at__isnull=True, expires_at__gt=now
    ).exists()


def process_results(*, version: ModelVersion, window_end: date) -> Processed:
    """Raise or update the alerts of the version's results for ``window_end``; suggest (or, for
    yellow, record) resolution where a fingerprint is back to green. Then the incidents."""
    from incidents.services import attach_to_incidents  # incidents build on alerts

    now = timezone.now()
    out = Processed()
    policy = MonitorPolicy.objects.filter(model_id=version.model_id).first()
    sustained_k = policy.sustained_windows if policy else SUSTAINED_K
    results = list(
        MetricResult.objects.filter(version=version, window_end=window_end)
        .select_related("model", "version", "site")
        .order_by("slice_key", "metric", "window_days")
    )
    by_fp: dict[str, list[MetricResult]] = defaultdict(list)
    for r in results:
        by_fp[fingerprint(r.model_id, r.slice_key, r.metric)].append(r)
    with transaction.atomic():
        open_alerts = {
            a.fingerprint: a
            for a in Alert.objects.select_for_update().filter(
                model_id=version.model_id, status=AlertStatus.OPEN
            )
        }
        touched = []
        for fp, rows in by_fp.items():
            paging = [(r, why) for r in rows if (why := _why(r, sustained_k))]
            alert = open_alerts.get(fp)
            if not paging:
                if alert is not None and all(r.band in ("green", "insufficient") for r in rows):
                    _back_to_green(alert, window_end, out)
                continue
            if _suppressed(fp, now):
                out.suppressed += 1
                continue
            worst, why = max(paging, key=lambda p: routing.BAND_RANK[p[0].band])
            if alert is None:
                alert = _raise(worst, why, fp, now, sustained_k)
                out.raised.append(alert)
            else:
                _update(alert, worst, why, now, out, sustained_k)
            for r, _ in paging:
                AlertOccurrence.objects.get_or_create(
                    alert=alert,
                    window_end=r.window_end,
                    window_days=r.window_days,
                    defaults={
                        "band": r.band, "value": r.value, "low": r.low, "high": r.high,
                        "n": r.n, "confident": r.clears_threshold,
                    },
                )  # fmt: skip
            touched.append((alert, worst))
        attach_to_incidents(version=version, alerts=touched, window_end=window_end)
    return out


def _raise(result: MetricResult, why: str, fp: str, now: Any, k: int = SUSTAINED_K) -> Alert:
    alert = Alert(
        model_id=result.model_id,
        version_id=result.version_id,
        site_id=result.site_id,
        slice_key=result.slice_key,
        metric=result.metric,
        layer=result.layer,
        fingerprint=fp,
        band=result.band,
        worst_band=result.band,
        reason=why,
        payload=payload(result, why, k),
        routed_role=routing.responsible(result.layer, result.model),
        first_seen_at=now,
        last_seen_at=now,
    )
    alert.save()
    record(
        actor=None,
        action="alert.raised",
        summary=f"Alert: {alert.payload['summary']}",
        target=alert,
        payload={k: alert.payload[k] for k in ("model", "metric", "slice", "band", "n")}
        | {"reason": why, "routed_to": alert.routed_role},
    )
    return alert


def _update(
    alert: Alert, result: MetricResult, why: str, now: Any, out: Processed, k: int = SUSTAINED_K
) -> None:
    worse = routing.BAND_RANK[result.band] > routing.BAND_RANK[alert.worst_band]
    alert.band, alert.reason, alert.last_seen_at = result.band, why, now
    alert.payload, alert.green_since = payload(result, why, k), None
    alert.version_id = result.version_id
    if worse:
        from incidents.services import notify_parties

        alert.worst_band = result.band
        out.escalated.append(alert)
        notify_parties(
            routing.responsible_parties(alert.layer, result.model),
            subject=f"[Vigil] Alert worse: {alert.payload['metric_label']} now {result.band}",
            body=alert.payload,
            alert=alert,
            incident=alert.incident,
            is_drill=alert.is_drill,
        )
        record(
            actor=None,
            action="alert.escalated",
            summary=f"Alert escalated to {result.band}: {alert.payload['summary']}",
            target=alert,
            payload={"metric": alert.metric, "slice": alert.slice_key, "band": result.band},
        )
    else:
        out.updated.append(alert)
    alert.save()


def _back_to_green(alert: Alert, window_end: date, out: Processed) -> None:
    if alert.green_since is not None:
        return
    alert.green_since = window_end
    auto = alert.worst_band == "yellow"
    if auto:  # a yellow alert resolves itself; orange and red need a person
        alert.status, alert.resolved_at = AlertStatus.RESOLVED, timezone.now()
    alert.save()
    out.back_to_green.append(alert)
    record(
        actor=None,
        action="alert.resolved" if auto else "alert.back_to_green",
        summary=(
            f"{alert.metric} for {alert.slice_key} is back to green"
            + (": resolved (it was only yellow)." if auto else "; resolution suggested.")
        ),
        target=alert,
        payload={"metric": alert.metric, "slice": alert.slice_key, "since": window_end.isoformat()},
    )


def suppress(*, actor: Any, alert: Alert, reason: str, days: int) -> Suppression:
    """An owner validated the alert as noise: no alert for its fingerprint for ``days``."""
    from django.core.exceptions import ValidationError

    from accounts.permissions import require_perms

    require_perms(actor, "incidents.suppress_alert")
    if not reason.strip():
        raise ValidationError({"reason": "Say why this is noise (kept in the audit trail)."})
    if not 1 <= days <= 90:
        raise ValidationError({"days": "Suppress for 1 to 90 days."})
    with transaction.atomic():
        until = timezone.now() + timedelta(days=days)
        sup = Suppression.objects.create(
            model_id=alert.model_id, slice_key=alert.slice_key, metric=alert.metric,
            fingerprint=alert.fingerprint, reason=reason.strip()[:500], expires_at=until,
            created_by=actor,
        )  # fmt: skip
        record(
            actor=actor,
            action="alert.suppressed",
            summary=f"{alert.metric} for {alert.slice_key} suppressed until {until:%Y-%m-%d}",
            target=sup,
            payload={"metric": alert.metric, "slice": alert.slice_key, "days": days},
        )
    return sup


def lift_expired(*, now: Any = None) -> int:
    """Suppressions past their expiry lift themselves (beat); each lift is audited."""
    now = now or timezone.now()
    lifted = 0
    for sup in Suppression.objects.filter(lifted_at__isnull=True, expires_at__lte=now):
        with transaction.atomic():
            sup.lifted_at = now
            sup.save(update_fields=["lifted_at"])
            record(
                actor=None,
                action="alert.suppression_lifted",
                summary=f"Suppression of {sup.metric} for {sup.slice_key} expired and lifted",
                target=sup,
                payload={"metric": sup.metric, "slice": sup.slice_key},
            )
        lifted += 1
    return lifted
