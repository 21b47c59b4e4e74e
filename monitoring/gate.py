"""The gate: judge each prediction (act, defer or shadow), store it immutably, open review cases.

One prediction or ten thousand go through the same path: ``gate_predictions`` resolves the
model, site, deployment, feature spec and policy once per (model, site), judges every item with
the pure functions of ``monitoring.validation`` and ``monitoring.deferral``, and stores the new
events and their review cases in bulk. Items fail one by one (a bad item never sinks the batch),
and a replayed event id returns its first answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from monitoring import deferral
from monitoring.models import DeferralPolicy, PredictionEvent, ReviewCase
from monitoring.validation import FeatureRule, Problem, check_features
from registry.models import ClinicalModel, Deployment, DeploymentMode, Site

#: How far ahead of the server's clock a prediction's time may be (clock skew).
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_BULK = 10_000


class GateError(Exception):
    """An item the gate cannot judge: ``status`` is the HTTP status, ``errors`` field messages."""

    def __init__(self, status: int, code: str, errors: Mapping[str, Any]) -> None:
        super().__init__(code)
        self.status, self.code, self.errors = status, code, dict(errors)


@dataclass(frozen=True)
class PredictionIn:
    """One validated request item (shape checked by the API serializer or the file importer)."""

    event_id: uuid.UUID
    model: str
    site: str
    occurred_at: datetime
    case_key: str
    features: Mapping[str, Any]
    score: float
    confidence: float | None = None
    top_factors: Sequence[Any] = ()
    cohort: Mapping[str, Any] = field(default_factory=dict)
    version: str | None = None

    def body_hash(self) -> str:
        """What makes two requests "the same" for replays: every field, canonically."""
        body = {
            "event_id": str(self.event_id),
            "model": self.model,
            "site": self.site,
            "occurred_at": self.occurred_at.isoformat(),
            "case_key": self.case_key,
            "features": self.features,
            "score": self.score,
            "confidence": self.confidence,
            "top_factors": list(self.top_factors),
            "cohort": self.cohort,
            "version": self.version,
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Answer:
    event_id: uuid.UUID
    action: str
    reasons: list[dict[str, str]]
    model: str
    version: str
    site: str
    deployment_mode: str
    policy_version: int
    review_case_id: int | None
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "action": self.action,
            "reasons": self.reasons,
            "model": self.model,
            "version": self.version,
            "site": self.site,
            "deployment_mode": self.deployment_mode,
            "policy_version": self.policy_version,
            "review_case_id": self.review_case_id,
        }


@dataclass(frozen=True)
class Outcome:
    """Per item: an ``answer`` (new or replayed) or an ``error``."""

    answer: Answer | None = None
    error: GateError | None = None


def pseudonymise(case_key: str) -> str:
    """The keyed hash stored instead of the client's case key (never stored raw)."""
    key = settings.VIGIL_PSEUDONYM_KEY.encode()
    return hmac.new(key, case_key.encode("utf-8"), hashlib.sha256).hexdigest()


@lru_cache(maxsize=256)
def _feature_rules(version_id: int, registered_at: datetime) -> tuple[FeatureRule, ...]:
    # A registered version's feature spec never changes (versions are immutable), so caching
    # it per process is safe. The key includes the registration time because a database may
    # hand a rolled-back row's id to the next row (SQLite does).
    from registry.models import FeatureSpec

    return tuple(
        FeatureRule(
            name=f.name,
            dtype=f.dtype,
            min_value=f.min_value,
            max_value=f.max_value,
            categories=frozenset(f.categories or ()),
            required=f.required,
            missing_allowed=f.missing_allowed,
        )
        for f in FeatureSpec.objects.filter(version_id=version_id).order_by("name")
    )


def _thresholds(version: Any) -> dict[str, float]:
    return {
        str(k): float(v)
        for k, v in (version.decision_thresholds or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def policy_in_force(version_id: int) -> DeferralPolicy | None:
    return DeferralPolicy.objects.filter(version_id=version_id).order_by("-number").first()


@dataclass
class _Target:
    """What one (model, site) resolves to, looked up once per batch."""

    model: ClinicalModel
    site: Site
    deployments: list[Deployment]


def _deployment_for(target: _Target, item: PredictionIn) -> Deployment:
    running = [
        d
        for d in target.deployments
        if d.started_at <= item.occurred_at
        and (d.ended_at is None or d.ended_at > item.occurred_at)
    ]
    live = next((d for d in running if d.mode == DeploymentMode.LIVE), None)
    if item.version is None:
        if live is None:
            raise GateError(
                409,
                "no_active_deployment",
                {
                    "site": [
                        f"No live deployment of {target.model.slug} at {target.site.code} at "
                        f"{item.occurred_at.isoformat()}: the gate never acts without one."
                    ]
                },
            )
        return live
    for deployment in running:
        if deployment.version.version == item.version:
            return deployment
    live_text = f"the live version is {live.version.version}" if live else "no version is live"
    raise GateError(
        409,
        "version_mismatch",
        {
            "version": [
                f"Version {item.version} is not deployed at {target.site.code} at "
                f"{item.occurred_at.isoformat()}; {live_text}."
            ]
        },
    )


def _resolve(account: Any, item: PredictionIn, cache: dict[tuple[str, str], _Target]) -> _Target:
    key = (item.model, item.site)
    if key in cache:
        return cache[key]
    model = (
        ClinicalModel.objects.filter(slug=item.model)
        .only("id", "slug")
        .annotate(
            in_scope=Exists(
                account.clinical_models.through.objects.filter(
                    serviceaccount_id=account.pk, clinicalmodel_id=OuterRef("pk")
                )
            )
        )
        .first()
    )
    if model is None:
        raise GateError(
            404, "unknown_model", {"model": [f"No model {item.model!r} is registered."]}
        )
    if not model.in_scope:
        raise GateError(
            403,
            "model_not_in_scope",
            {"model": [f"This token may not log predictions for {item.model}."]},
        )
    site = Site.objects.filter(code=item.site).first()
    if site is None:
        raise GateError(404, "unknown_site", {"site": [f"No site {item.site!r}."]})
    # Read fresh on every call: the frozen flag is the kill switch.
    deployments = list(
        Deployment.objects.filter(model=model, site=site)
        .select_related("version")
        .only(
            "id",
            "mode",
            "started_at",
            "ended_at",
            "frozen",
            "version__id",
            "version__version",
            "version__decision_thresholds",
            "version__created_at",
        )
    )
    cache[key] = _Target(model=model, site=site, deployments=deployments)
    return cache[key]


def _spec_features(features: Mapping[str, Any], version: Any) -> dict[str, Any]:
    """The inputs the spec declares. An unexpected input is recorded by name as a problem but
    its value is not kept: it may be anything, a patient identifier included (minimum
    necessary)."""
    declared = {rule.name for rule in _feature_rules(version.pk, version.created_at)}
    return {name: value for name, value in features.items() if name in declared}


def _judge(
    item: PredictionIn, deployment: Deployment, policy: DeferralPolicy | None
) -> tuple[deferral.Decision, list[Problem]]:
    version = deployment.version
    problems = check_features(_feature_rules(version.pk, version.created_at), item.features)
    rules = (
        policy.as_policy(_thresholds(version))
        if policy
        else deferral.Policy(number=0, thresholds=_thresholds(version))
    )
    decision = deferral.decide(
        shadow=deployment.mode == DeploymentMode.SHADOW,
        policy=rules,
        problems=problems,
        features=item.features,
        score=item.score,
        confidence=item.confidence,
        frozen=deployment.frozen,
    )
    return decision, problems


def _answer_of(event: PredictionEvent, *, replayed: bool) -> Answer:
    review = getattr(event, "review", None) if event.action == "defer" else None
    return Answer(
        event_id=event.event_id,
        action=event.action,
        reasons=event.reasons,
        model=event.model.slug,
        version=event.version.version,
        site=event.site.code,
        deployment_mode=event.mode,
        policy_version=event.policy_number,
        review_case_id=review.pk if review else None,
        replayed=replayed,
    )


@dataclass(frozen=True)
class _Stored:
    """What a replay needs of a stored event: no wide joins (a model row has ~40 columns)."""

    body_hash: str
    answer: Answer


_STORED_FIELDS = (
    "event_id",
    "body_hash",
    "action",
    "reasons",
    "mode",
    "policy_number",
    "model__slug",
    "version__version",
    "site__code",
    "review__id",
)


def _replays(items: Sequence[PredictionIn]) -> dict[uuid.UUID, _Stored]:
    ids = [item.event_id for item in items]
    found: dict[uuid.UUID, _Stored] = {}
    for start in range(0, len(ids), 1000):
        rows = PredictionEvent.objects.filter(event_id__in=ids[start : start + 1000]).values_list(
            *_STORED_FIELDS
        )
        for (
            event_id,
            body_hash,
            action,
            reasons,
            mode,
            number,
            model,
            version,
            site,
            review,
        ) in rows:
            found[event_id] = _Stored(
                body_hash,
                Answer(
                    event_id=event_id,
                    action=action,
                    reasons=reasons,
                    model=model,
                    version=version,
                    site=site,
                    deployment_mode=mode,
                    policy_version=number,
                    review_case_id=review if action == deferral.DEFER else None,
                    replayed=True,
                ),
            )
    return found


def _replay(item: PredictionIn, stored: _Stored) -> Outcome:
    if stored.body_hash != item.body_hash():
        return Outcome(
            error=GateError(
                409,
                "event_id_reused",
                {
                    "event_id": [
                        f"Event {item.event_id} was already logged with a different body; "
                        "send a new event id for a new prediction."
                    ]
                },
            )
        )
    return Outcome(answer=stored.answer)


def gate_predictions(*, account: Any, items: Sequence[PredictionIn]) -> list[Outcome]:
    """Judge and store ``items`` for a service ``account``; one outcome per item, in order."""
    if len(items) > MAX_BULK:
        raise GateError(
            400, "too_many", {"items": [f"At most {MAX_BULK} predictions per request."]}
        )
    now = timezone.now()
    stored = _replays(items)
    outcomes: list[Outcome | None] = [None] * len(items)
    fresh: list[tuple[int, PredictionEvent]] = []
    targets: dict[tuple[str, str], _Target] = {}
    policies: dict[int, DeferralPolicy | None] = {}
    seen: dict[uuid.UUID, int] = {}
    for index, item in enumerate(items):
        if item.event_id in stored:
            outcomes[index] = _replay(item, stored[item.event_id])
            continue
        if item.event_id in seen:  # the same id twice in one request
            first = items[seen[item.event_id]]
            same = first.body_hash() == item.body_hash()
            outcomes[index] = Outcome(
                error=GateError(
                    409 if not same else 400,
                    "duplicate_in_request",
                    {
                        "event_id": [
                            f"Event {item.event_id} appears more than once in this request."
                        ]
                    },
                )
            )
            continue
        seen[item.event_id] = index
        try:
            event = _build_event(account, item, now, targets, policies)
        except GateError as error:
            outcomes[index] = Outcome(error=error)
            continue
        fresh.append((index, event))
    for index, outcome in _store(fresh, items):
        outcomes[index] = outcome
    return [o for o in outcomes if o is not None]


def _build_event(
    account: Any,
    item: PredictionIn,
    now: datetime,
    targets: dict[tuple[str, str], _Target],
    policies: dict[int, DeferralPolicy | None],
) -> PredictionEvent:
    if item.occurred_at > now + MAX_CLOCK_SKEW:
        raise GateError(
            400,
            "time_in_future",
            {
                "occurred_at": [
                    f"{item.occurred_at.isoformat()} is in the future "
                    f"(server time {now.isoformat()})."
                ]
            },
        )
    target = _resolve(account, item, targets)
    deployment = _deployment_for(target, item)
    version = deployment.version
    if version.pk not in policies:
        policies[version.pk] = policy_in_force(version.pk)
    policy = policies[version.pk]
    decision, problems = _judge(item, deployment, policy)
    return PredictionEvent(
        event_id=item.event_id,
        model=target.model,
        version=version,
        site=target.site,
        deployment=deployment,
        mode=deployment.mode,
        occurred_at=item.occurred_at,
        received_at=now,
        case_key_hash=pseudonymise(item.case_key),
        features=_spec_features(item.features, deployment.version),
        score=item.score,
        confidence=item.confidence,
        top_factors=list(item.top_factors),
        cohort=dict(item.cohort),
        action=decision.action,
        reasons=[r.as_dict() for r in decision.reasons],
        problems=[p.as_dict() for p in problems],
        policy=policy,
        policy_number=policy.number if policy else 0,
        body_hash=item.body_hash(),
        submitted_by=account.user,
    )


def _store(
    fresh: list[tuple[int, PredictionEvent]], items: Sequence[PredictionIn]
) -> list[tuple[int, Outcome]]:
    """Insert the new events and their review cases in one transaction; if a concurrent request
    logged one of these ids first, fall back to one by one so each gets its true answer."""
    if not fresh:
        return []
    try:
        with transaction.atomic():
            events = PredictionEvent.objects.bulk_create(
                [event for _, event in fresh], batch_size=1000
            )
            _open_reviews(events)
    except IntegrityError:
        return [_store_one(index, event, items[index]) for index, event in fresh]
    return [
        (index, Outcome(answer=_answer_of(event, replayed=False)))
        for (index, _), event in zip(fresh, events, strict=True)
    ]


def _store_one(index: int, event: PredictionEvent, item: PredictionIn) -> tuple[int, Outcome]:
    try:
        with transaction.atomic():
            event.save(force_insert=True)
            _open_reviews([event])
    except IntegrityError:
        stored = _replays([item]).get(item.event_id)
        if stored is None:
            raise
        return index, _replay(item, stored)
    return index, Outcome(answer=_answer_of(event, replayed=False))


def _open_reviews(events: Sequence[PredictionEvent]) -> None:
    """Every deferred live case opens a review case (shadow never reaches a clinician)."""
    cases = [
        ReviewCase(
            event=event,
            model=event.model,
            site=event.site,
            urgency=event.score,
            opened_at=event.received_at,
        )
        for event in events
        if event.action == deferral.DEFER
    ]
    if cases:
        ReviewCase.objects.bulk_create_recorded(cases, user=None, reason="deferred by the gate")
        for case in cases:
            case.event.review = case
