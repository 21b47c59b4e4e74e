"""The review queue: who may see which deferred case, its evidence packet, and the decision.

A case page shows a patient's clinical inputs, so access is the minimum necessary twice over:
by role (``monitoring.view_reviewcase``) and by site (a person sees the cases of the sites they
are assigned to, ``registry.SiteAssignment``, or every site with
``monitoring.review_all_sites``). Every opening of a case page is an audit event, and so is
every decision. Audit payloads never carry patient data: no feature values, scores or case keys.

Break-glass: in an emergency, a person with the role opens a case of another site after
stating a reason (``case_break_glass``, via ``accounts.break_glass``). For the grant's time the
case page is theirs to read (not to decide), each opening audited with ``break_glass: true``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Avg, DurationField, ExpressionWrapper, F, Q, QuerySet
from django.utils import timezone

from accounts import break_glass
from accounts.models import BreakGlassGrant
from accounts.permissions import has_perms, is_service_account, require_perms
from governance.audit.models import AuditEvent
from governance.audit.services import record
from monitoring.models import (
    OverrideReason,
    PredictionEvent,
    ReviewCase,
    ReviewDecision,
    ReviewStatus,
)
from monitoring.profiles import mark_stale
from registry.models import FeatureSpec, FeatureType, Site, SiteAssignment

VIEW = "monitoring.view_reviewcase"
DECIDE = "monitoring.decide_reviewcase"
ALL_SITES = "monitoring.review_all_sites"

#: How many of the case's predictions the trend shows.
TREND_LENGTH = 10
#: The pseudonymous case reference shown to people: a prefix of the keyed hash, never the key.
CASE_REF_LENGTH = 8
NOTE_MAX_LENGTH = 1000  # ReviewCase.note
DECISION_FIELDS = ["status", "decision", "reason_code", "note", "decided_by", "decided_at"]

#: Short labels of the gate's deferral reason codes, for the queue (the case page shows texts).
REASON_LABELS = {
    "frozen_deployment": "frozen deployment",
    "missing_required_input": "input missing",
    "invalid_input": "invalid input",
    "outside_population": "outside population",
    "safety_rule": "safety rule",
    "confidence_missing": "no confidence",
    "low_confidence": "low confidence",
    "near_threshold": "near threshold",
}
#: The input summary's flag for each of ``monitoring.validation``'s problem codes.
PROBLEM_FLAGS = {
    "missing_required": "missing",
    "missing_value": "missing",
    "wrong_type": "wrong type",
    "out_of_range": "out of range",
    "unknown_category": "unknown category",
    "unexpected_feature": "unexpected",
}


class CaseAlreadyDecided(ValidationError):
    """A second decision on one case (e.g. from a stale tab): the first one stands."""


# --- Who sees what --------------------------------------------------------------------------


def _sees_every_site(user: Any) -> bool:
    return bool(user.has_perm(ALL_SITES))


def visible_sites(user: Any) -> QuerySet[Site]:
    """The sites whose cases ``user`` may see (none without the role)."""
    if not _may_view_cases(user):
        return Site.objects.none()
    if _sees_every_site(user):
        return Site.objects.order_by("code")
    return Site.objects.filter(assignments__user=user).order_by("code")


def _may_view_cases(user: Any) -> bool:
    return has_perms(user, [VIEW]) and not is_service_account(user)


def cases_visible_to(user: Any) -> QuerySet[ReviewCase]:
    """Every review case ``user`` may open: by role, then by the sites they work at."""
    if not _may_view_cases(user):
        return ReviewCase.objects.none()
    cases = ReviewCase.objects.select_related("model", "site", "decided_by")
    if _sees_every_site(user):
        return cases
    return cases.filter(site__in=SiteAssignment.objects.filter(user=user).values("site"))


def may_review_site(user: Any, site_id: int) -> bool:
    return (
        _sees_every_site(user) or SiteAssignment.objects.filter(user=user, site_id=site_id).exists()
    )


# --- Services -------------------------------------------------------------------------------


def _require_person_at_site(actor: Any, case: ReviewCase, *perms: str) -> None:
    # A case is a patient's: the system itself never opens or decides one.
    if actor is None or not actor.is_authenticated:
        raise PermissionDenied("A review case is opened and decided by a person.")
    require_perms(actor, *perms)
    if not may_review_site(actor, case.site_id):
        raise PermissionDenied("You are not assigned to this case's site.")


def break_glass_grant_for(user: Any, case: ReviewCase) -> BreakGlassGrant | None:
    """``user``'s live break-glass grant for ``case``, when the case is outside their sites."""
    if not _may_view_cases(user) or may_review_site(user, case.site_id):
        return None
    return break_glass.active_grant(user=user, case_id=case.pk)


def case_opened(*, actor: Any, case: ReviewCase) -> AuditEvent:
    """Record that ``actor`` saw ``case``'s evidence (called on every rendering of its page).
    Outside their sites only with a live break-glass grant, and the event says so."""
    grant = break_glass_grant_for(actor, case) if actor is not None else None
    if grant is None:
        _require_person_at_site(actor, case, VIEW)
    payload: dict[str, Any] = {
        "model": case.model.slug,
        "site": case.site.code,
        "status": case.status,
    }
    if grant is not None:
        payload |= {"break_glass": True, "grant": grant.pk}
    return record(
        actor=actor,
        action="review.case_view",
        target=case,
        summary=(
            f"{actor.get_username()} opened review case #{case.pk} "
            f"({case.model.slug} at {case.site.code}){' by BREAK-GLASS' if grant else ''}"
        ),
        payload=payload,
    )


def case_outside_sites(user: Any, pk: int) -> ReviewCase | None:
    """The case ``pk`` when ``user`` may view cases but not at its site (break-glass may open
    it); ``None`` when it does not exist, or the user lacks the role or already sees it."""
    if not _may_view_cases(user):
        return None
    case = ReviewCase.objects.select_related("model", "site", "decided_by").filter(pk=pk).first()
    if case is None or may_review_site(user, case.site_id):
        return None
    return case


def case_break_glass(*, actor: Any, case: ReviewCase, reason: str) -> BreakGlassGrant:
    """Open ``case`` outside ``actor``'s sites for an emergency (see ``accounts.break_glass``)."""
    if actor is not None and actor.is_authenticated and may_review_site(actor, case.site_id):
        raise ValidationError({"reason": "This case is at one of your sites: open it as usual."})
    return break_glass.break_glass_grant(
        actor=actor, case_id=case.pk, reason=reason, model_slug=case.model.slug,
        site_code=case.site.code,
    )  # fmt: skip


def _decision_errors(decision: str, reason_code: str, note: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    if decision not in ReviewDecision.values:
        errors["decision"] = "Choose whether you agree with the model or override it."
    elif decision == ReviewDecision.OVERRIDE and not reason_code:
        errors["reason_code"] = "An override needs a reason code."
    elif decision == ReviewDecision.AGREE and reason_code:
        errors["reason_code"] = "Agreeing with the model takes no override reason."
    if reason_code and reason_code not in OverrideReason.values:
        errors["reason_code"] = f"Unknown reason code {reason_code!r}."
    elif reason_code == OverrideReason.OTHER and not note.strip():
        errors["note"] = "Say what the other reason is."
    if len(note) > NOTE_MAX_LENGTH:
        errors["note"] = f"Keep the note within {NOTE_MAX_LENGTH:,} characters."
    return errors


@transaction.atomic
def review_decide(
    *, actor: Any, case: ReviewCase, decision: str, reason_code: str = "", note: str = ""
) -> ReviewCase:
    """Decide an open case: agree with the model, or override it with a reason code.

    Raises ``CaseAlreadyDecided`` for a decided case and ``ValidationError`` for a bad
    decision; the time to action (decided − opened) goes into the audit event.
    """
    _require_person_at_site(actor, case, DECIDE)
    case = ReviewCase.objects.select_for_update().select_related("model", "site").get(pk=case.pk)
    if case.status != ReviewStatus.OPEN:
        raise CaseAlreadyDecided(
            f"This case was already decided ({case.get_decision_display().lower()}) "
            f"at {case.decided_at:%Y-%m-%d %H:%M} UTC; the first decision stands."
        )
    errors = _decision_errors(decision, reason_code, note)
    if errors:
        raise ValidationError(errors)
    case.status, case.decision, case.reason_code = ReviewStatus.DECIDED, decision, reason_code
    case.note, case.decided_by, case.decided_at = note.strip(), actor, timezone.now()
    case._history_user = actor  # type: ignore[attr-defined]
    case._change_reason = f"review decision: {decision}"  # type: ignore[attr-defined]
    case.save(update_fields=DECISION_FIELDS)
    seconds = (case.decided_at - case.opened_at).total_seconds()
    mark_stale([(case.event.version_id, case.event.occurred_at)], "review decided")
    detail = f": {case.get_reason_code_display()}" if reason_code else ""
    record(
        actor=actor,
        action="review.decide",
        target=case,
        summary=(
            f"{case.get_decision_display()} on case #{case.pk} "
            f"({case.model.slug} at {case.site.code}){detail}"
        ),
        payload={
            "model": case.model.slug,
            "site": case.site.code,
            "decision": decision,
            "reason_code": reason_code,
            "has_note": bool(case.note),
            "time_to_action_seconds": round(seconds, 3),
        },
    )
    return case


# --- The queue ------------------------------------------------------------------------------


def review_queue(
    user: Any,
    *,
    status: str = ReviewStatus.OPEN,
    site: Site | None = None,
    model: Any = None,
) -> QuerySet[ReviewCase]:
    """Open cases most urgent (highest score) then oldest first; decided ones newest first."""
    cases = cases_visible_to(user).filter(status=status).select_related("event")
    # The queue needs the event's hash and reasons, not the patient's inputs.
    cases = cases.defer("event__features", "event__top_factors", "event__cohort")
    if site is not None:
        cases = cases.filter(site=site)
    if model is not None:
        cases = cases.filter(model=model)
    if status == ReviewStatus.OPEN:
        return cases.order_by("-urgency", "opened_at", "pk")
    return cases.order_by("-decided_at", "-pk")


def average_time_to_action(cases: QuerySet[ReviewCase]) -> timedelta | None:
    """Mean of decided − opened over the decided ``cases``; ``None`` when none is decided."""
    waited = ExpressionWrapper(F("decided_at") - F("opened_at"), output_field=DurationField())
    average = cases.filter(status=ReviewStatus.DECIDED).aggregate(average=Avg(waited))["average"]
    if average is None or isinstance(average, timedelta):
        return average
    return timedelta(microseconds=float(average))  # some backends return microseconds


def duration_text(duration: timedelta | None) -> str:
    """``2 d 4 h``, ``3 h 12 min``, ``4 min 5 s``, ``12 s``; an em dash for ``None``."""
    if duration is None:
        return "—"
    seconds = max(int(duration.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


def case_ref(case_key_hash: str) -> str:
    return case_key_hash[:CASE_REF_LENGTH]


@dataclass(frozen=True)
class QueueRow:
    case: ReviewCase
    ref: str
    reasons: tuple[str, ...]
    time_to_action: str


def queue_rows(cases: Sequence[ReviewCase]) -> list[QueueRow]:
    return [
        QueueRow(
            case=case,
            ref=case_ref(case.event.case_key_hash),
            reasons=tuple(
                dict.fromkeys(
                    REASON_LABELS.get(r.get("code", ""), str(r.get("code", "")).replace("_", " "))
                    for r in case.event.reasons
                )
            ),
            time_to_action=duration_text(case.time_to_action),
        )
        for case in cases
    ]


# --- The evidence packet --------------------------------------------------------------------


@dataclass(frozen=True)
class InputRow:
    """One feature of the input summary. ``value`` is ``None`` when not sent (``sent`` False)
    or sent as null."""

    name: str
    value: Any
    sent: bool
    unit: str
    allowed: str
    flags: tuple[str, ...]
    problems: tuple[str, ...]  # the validation texts behind the flags
    description: str = ""


@dataclass(frozen=True)
class Threshold:
    name: str
    value: float
    crossed: bool  # the score is at or above it


@dataclass(frozen=True)
class Factor:
    label: str
    contribution: float | None


@dataclass(frozen=True)
class TrendPoint:
    occurred_at: datetime
    score: float
    action: str
    version: str
    site: str
    is_this_case: bool
    review_case_id: int | None


@dataclass(frozen=True)
class EvidencePacket:
    case: ReviewCase
    event: PredictionEvent
    ref: str
    thresholds: list[Threshold]
    reasons: list[Mapping[str, str]]
    inputs: list[InputRow]
    factors: list[Factor]
    trend: list[TrendPoint]
    flagged: int  # inputs with at least one flag
    time_to_action: str


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _allowed(spec: FeatureSpec) -> str:
    if spec.dtype == FeatureType.CATEGORICAL:
        return ", ".join(str(c) for c in spec.categories or ())
    if spec.dtype == FeatureType.BOOLEAN:
        return "yes / no"
    low, high = _number(spec.min_value), _number(spec.max_value)
    if low and high:
        return f"{low} – {high}"
    if low:
        return f"≥ {low}"
    if high:
        return f"≤ {high}"
    return "any number"


def _problems_by_feature(event: PredictionEvent) -> dict[str, list[Mapping[str, str]]]:
    found: dict[str, list[Mapping[str, str]]] = {}
    for problem in event.problems or ():
        found.setdefault(str(problem.get("feature", "")), []).append(problem)
    return found


def _input_row(
    name: str,
    features: Mapping[str, Any],
    problems: Sequence[Mapping[str, str]],
    spec: FeatureSpec | None,
) -> InputRow:
    codes = [str(p.get("code", "")) for p in problems]
    return InputRow(
        name=name,
        value=features.get(name),
        sent=name in features,
        unit=spec.unit if spec else "",
        allowed=_allowed(spec) if spec else "not in the feature spec",
        flags=tuple(dict.fromkeys(PROBLEM_FLAGS.get(c, c.replace("_", " ")) for c in codes)),
        problems=tuple(str(p.get("text", "")) for p in problems),
        description=spec.description if spec else "",
    )


def input_summary(event: PredictionEvent) -> list[InputRow]:
    """Each feature of the version's spec with its value, then anything sent outside it."""
    specs = list(FeatureSpec.objects.filter(version_id=event.version_id).order_by("name"))
    features = event.features or {}
    problems = _problems_by_feature(event)
    rows = [_input_row(s.name, features, problems.get(s.name, ()), s) for s in specs]
    known = {s.name for s in specs}
    extra = sorted((set(features) | set(problems)) - known - {""})
    rows.extend(_input_row(name, features, problems.get(name, ()), None) for name in extra)
    return rows


def _contribution(raw: Mapping[str, Any]) -> float | None:
    for key in ("contribution", "weight", "value", "shap"):
        value = raw.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def top_factors(event: PredictionEvent) -> list[Factor]:
    """The model's contributing factors as sent: ``{"feature", "contribution"}`` objects are
    the documented form; anything else is shown as text."""
    factors = []
    for raw in event.top_factors or ():
        if isinstance(raw, Mapping):
            label = raw.get("feature") or raw.get("name") or raw.get("factor")
            factors.append(Factor(str(label or raw), _contribution(raw)))
        else:
            factors.append(Factor(str(raw), None))
    return factors


def thresholds_of(event: PredictionEvent) -> list[Threshold]:
    return [
        Threshold(str(name), float(value), event.score >= float(value))
        for name, value in sorted((event.version.decision_thresholds or {}).items())
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]


def case_trend(case: ReviewCase, *, viewer: Any) -> list[TrendPoint]:
    """The last predictions of the same case key and model, at the sites ``viewer`` sees."""
    event = case.event
    events = (
        PredictionEvent.objects.filter(case_key_hash=event.case_key_hash, model_id=case.model_id)
        .select_related("version", "site", "review")
        .defer("features", "top_factors", "cohort", "problems")
        .order_by("-occurred_at", "-pk")
    )
    if not _sees_every_site(viewer):
        # Under break-glass the case itself is outside the viewer's sites: it still shows.
        events = events.filter(Q(site__in=visible_sites(viewer)) | Q(pk=event.pk))
    points = []
    for item in events[:TREND_LENGTH]:
        review = getattr(item, "review", None)
        points.append(
            TrendPoint(
                occurred_at=item.occurred_at,
                score=item.score,
                action=item.action,
                version=item.version.version,
                site=item.site.code,
                is_this_case=item.pk == event.pk,
                review_case_id=review.pk if review is not None else None,
            )
        )
    return points


def evidence_packet(case: ReviewCase, *, viewer: Any) -> EvidencePacket:
    """Everything the case page shows; ``viewer`` scopes the trend to their sites."""
    event = (
        PredictionEvent.objects.select_related("version", "model", "site")
        .filter(pk=case.event_id)
        .get()
    )
    inputs = input_summary(event)
    return EvidencePacket(
        case=case,
        event=event,
        ref=case_ref(event.case_key_hash),
        thresholds=thresholds_of(event),
        reasons=list(event.reasons or ()),
        inputs=inputs,
        factors=top_factors(event),
        trend=case_trend(case, viewer=viewer),
        flagged=sum(1 for row in inputs if row.flags),
        time_to_action=duration_text(case.time_to_action),
    )
