"""Demo traffic: the synthetic hospital (``governance.synthetic``) sent through the services.

For every live deployment of a demo model: 90 days of predictions through the gate, the
outcomes the service learns once they mature (``monitoring.outcomes.outcomes_record``), the
overrides clinicians report on the model's ``act`` answers (``override_record``), and the
reviewer's decisions on most deferred cases older than a day (``review_decide``), so the review
queue keeps its recent cases open. Every write goes through its service: permissions are
checked and the audit trail is appended as if the hospital had sent it.

Deterministic (seeded generator, event ids from uuid5). The times hang on when the demo is
seeded, so a deployment that already has its traffic is skipped as a whole (a resend would
carry other times under the same ids, which the gate rightly refuses as conflicts).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import ServiceAccount
from governance import synthetic
from monitoring.gate import PredictionIn, gate_predictions
from monitoring.outcomes import OutcomeIn, outcomes_record, override_record
from monitoring.review import review_decide
from registry.models import ClinicalModel, Deployment, DeploymentMode

NAMESPACE = uuid.UUID("6f1d3c7e-8a1b-4f9e-9d35-2a4c1e0b7d11")
CHUNK = 5_000
#: Deferred cases older than this are mostly decided; younger ones wait in the queue.
REVIEW_AFTER = timedelta(days=1)
DECIDED_SHARE = 0.92
REVIEW_OVERRIDE_SHARE = 0.2
REVIEWER = "reviewer"
#: Who overrides each model's answers, and what they did instead, per reason code.
CLINICIANS = {
    "sepsis-ews": "charge nurse",
    "readmit-30d": "case manager",
    "noshow-outreach": "outreach coordinator",
}
FINAL_ACTIONS = {
    "alert_fatigue": "Dismissed the advisory without acting on it",
    "clinical_judgement": "Assessed the patient; no action needed",
    "already_treated": "Already being managed; nothing added",
    "data_error": "Re-checked the inputs; the source value was wrong",
    "not_applicable": "Model not applicable to this patient; usual care",
}


@dataclass
class Totals:
    stored: int = 0
    skipped: int = 0
    rejected: int = 0
    defer: int = 0
    outcomes: int = 0
    overrides: int = 0
    reviews: int = 0
    review_cases: list[int] = field(default_factory=list)

    @property
    def created(self) -> int:
        return self.stored + self.outcomes + self.overrides + self.reviews


def event_id(slug: str, site: str, index: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"synthetic/{slug}/{site}/{index}")


def occurred_at(encounter: synthetic.Encounter, now: datetime) -> datetime:
    offset = timedelta(days=synthetic.DAYS - encounter.day, seconds=-encounter.seconds)
    return (now - offset).replace(microsecond=0)


def _item(deployment: Deployment, encounter: synthetic.Encounter, now: datetime) -> PredictionIn:
    slug, site = deployment.model.slug, deployment.site.code
    return PredictionIn(
        event_id=event_id(slug, site, encounter.index),
        model=slug,
        site=site,
        occurred_at=occurred_at(encounter, now),
        case_key=encounter.case_key,
        features=encounter.features,
        score=encounter.score,
        confidence=encounter.confidence,
        top_factors=list(encounter.top_factors),
        cohort=encounter.cohort,
        version=None,
    )


def _send(account: Any, items: Sequence[PredictionIn], totals: Totals) -> dict[uuid.UUID, str]:
    """Gate ``items``; the action answered per event id."""
    actions: dict[uuid.UUID, str] = {}
    for start in range(0, len(items), CHUNK):
        for outcome in gate_predictions(account=account, items=items[start : start + CHUNK]):
            if outcome.answer is None:
                totals.rejected += 1
                continue
            answer = outcome.answer
            actions[answer.event_id] = answer.action
            totals.stored += not answer.replayed
            totals.defer += answer.action == "defer"
            if answer.review_case_id is not None and not answer.replayed:
                totals.review_cases.append(answer.review_case_id)
    return actions


def _send_outcomes(
    account: Any, sent: list[tuple[PredictionIn, synthetic.Encounter]], now: datetime
) -> int:
    """The labels known by ``now``: the youngest predictions have none yet."""
    items = []
    for item, encounter in sent:
        observed = item.occurred_at + timedelta(hours=encounter.label_delay_hours)
        if observed <= now:
            items.append(
                OutcomeIn(
                    label=float(encounter.label), observed_at=observed, event_id=item.event_id
                )
            )
    created = 0
    for start in range(0, len(items), CHUNK):
        results = outcomes_record(account=account, items=items[start : start + CHUNK])
        created += sum(r.created for r in results)
    return created


def _send_overrides(
    account: Any,
    slug: str,
    sent: list[tuple[PredictionIn, synthetic.Encounter]],
    actions: dict[uuid.UUID, str],
    now: datetime,
) -> int:
    created = 0
    for item, encounter in sent:
        reason = encounter.override_reason
        if not reason or actions.get(item.event_id) != "act":
            continue
        when = item.occurred_at + timedelta(minutes=5 + encounter.index % 85)
        if when > now:
            continue
        _, new = override_record(
            account=account,
            event_id=item.event_id,
            clinician_role=CLINICIANS[slug],
            clinician_ref="",
            reason_code=reason,
            final_action=FINAL_ACTIONS[reason],
            note="",
            occurred_at=when,
        )
        created += new
    return created


def _decide_reviews(case_ids: Sequence[int], now: datetime) -> int:
    """The reviewer decides most deferred cases older than ``REVIEW_AFTER``, in a seeded
    order, agreeing with the model four times in five."""
    from monitoring.models import ReviewCase, ReviewStatus

    reviewer = get_user_model().objects.filter(username=REVIEWER).first()
    if reviewer is None or not case_ids:
        return 0
    rng = synthetic.rng_for("reviews")
    cases = (
        ReviewCase.objects.filter(
            pk__in=case_ids,
            status=ReviewStatus.OPEN,
            event__occurred_at__lte=now - REVIEW_AFTER,
        )
        .select_related("model", "site")
        .order_by("pk")
    )
    reasons = list(FINAL_ACTIONS)
    decided = 0
    for case in cases:
        waiting, overriding = rng.random() >= DECIDED_SHARE, rng.random() < REVIEW_OVERRIDE_SHARE
        reason = reasons[rng.integers(len(reasons))]
        if waiting:
            continue  # an old case nobody has picked up yet
        if overriding:
            review_decide(actor=reviewer, case=case, decision="override", reason_code=reason)
        else:
            review_decide(actor=reviewer, case=case, decision="agree")
        decided += 1
    return decided


def _seed_deployment(
    account: Any, deployment: Deployment, now: datetime, totals: Totals
) -> int | None:
    """Send one deployment's traffic; ``None`` if it was sent before (nothing is resent)."""
    slug, site = deployment.model.slug, deployment.site.code
    if _already_stored(event_id(slug, site, 0)):
        return None  # the common case of a repeat run, without generating the traffic
    sent = [
        (item, encounter)
        for encounter in synthetic.traffic(slug, site)
        if (item := _item(deployment, encounter, now)).occurred_at >= deployment.started_at
    ]
    if not sent or _already_stored(sent[0][0].event_id):
        return None
    actions = _send(account, [item for item, _ in sent], totals)
    totals.outcomes += _send_outcomes(account, sent, now)
    totals.overrides += _send_overrides(account, slug, sent, actions, now)
    return len(sent)


def seed_predictions(*, write: Callable[[str], None], now: datetime | None = None) -> Totals:
    """Send the synthetic hospital's traffic, outcomes, overrides and review decisions."""
    moment = now or timezone.now()
    totals = Totals()
    for model in ClinicalModel.objects.filter(slug__in=synthetic.VOLUME).order_by("slug"):
        account = ServiceAccount.objects.filter(name=model.slug).first()
        if account is None:
            continue
        deployments = (
            Deployment.objects.filter(model=model, mode=DeploymentMode.LIVE, ended_at__isnull=True)
            .select_related("version", "site", "model")
            .order_by("site__code")
        )
        for deployment in deployments:
            count = _seed_deployment(account, deployment, moment, totals)
            if count is None:
                totals.skipped += 1
                continue
            write(
                f"  sent     {count} predictions for {deployment.version} at {deployment.site.code}"
            )
    totals.reviews = _decide_reviews(totals.review_cases, moment)
    return totals


def _already_stored(first: uuid.UUID) -> bool:
    from monitoring.models import PredictionEvent

    return PredictionEvent.objects.filter(event_id=first).exists()
