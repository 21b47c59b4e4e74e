"""The gate: judge each prediction (act, defer or shadow), store it immutably, open review cases.

One prediction or ten thousand go through the same path: ``gate_predictions`` resolves the
model, token scope, site, deployments and policy in force with one query per (model, site) and
request, judges every item with the pure functions of ``monitoring.validation`` and
``monitoring.deferral``, and stores the new events and their review cases in bulk (``COPY`` on
PostgreSQL). Items fail one by one (a bad item never sinks the batch), and a replayed event id
returns its first answer.

Nothing that can change is cached between requests: deployments (``frozen`` is the kill switch,
ended and new ones) and the policy in force are read on every request, in the same query, so a
freeze takes effect on the very next request in every process. What is cached per process is
immutable (a registered version's feature spec) or keyed by its content (the deferral rules
built from the columns just read).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from monitoring import deferral
from monitoring.models import DeferralPolicy, PredictionEvent, ReviewCase
from monitoring.profiles import mark_stale
from monitoring.stats.recalibration import apply_mapping
from monitoring.validation import FeatureRule, Problem, check_features
from registry.models import DeploymentMode

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
    score: float
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
            "score": self.score,
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


def _thresholds(decision_thresholds: Any) -> dict[str, float]:
    return {
        str(k): float(v)
        for k, v in (decision_thresholds or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def policy_in_force(version_id: int) -> DeferralPolicy | None:
    return DeferralPolicy.objects.filter(version_id=version_id).order_by("-number").first()


@lru_cache(maxsize=512)
def _rules(
    thresholds: str | None,
    number: int | None,
    min_confidence: float | None,
    threshold_margin: float | None,
    exclusions: str | None,
    safety: str | None,
) -> deferral.Policy:
    """The deferral rules of a version's thresholds and its policy in force, built from the
    columns as read on this very call: the cache key is the content itself, so an edited
    policy (a new row) or anything else changed is a new key, never a stale hit."""
    cut = _thresholds(_json(thresholds))
    if number is None:
        return deferral.Policy(number=0, thresholds=cut)
    policy = DeferralPolicy(
        number=number,
        min_confidence=min_confidence,
        threshold_margin=threshold_margin,
        population_exclusions=_json(exclusions) or [],
        safety_rules=_json(safety) or [],
    )
    return policy.as_policy(cut)


def _json(value: Any) -> Any:
    """A JSON column read by a raw query: text on SQLite and on PostgreSQL (Django reads jsonb
    as text and decodes it in ``JSONField.from_db_value``, as done here)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _aware(value: Any) -> Any:
    """A datetime column read by a raw query: aware on PostgreSQL; naive (in the connection's
    zone) or text on SQLite, made aware the way Django's SQLite backend does."""
    if value is None or (isinstance(value, datetime) and value.tzinfo is not None):
        return value
    if isinstance(value, str):
        value = parse_datetime(value)
    return timezone.make_aware(value, connection.timezone)


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


@dataclass(frozen=True)
class _Deployment:
    """A deployment as the gate needs it, read fresh on every request (``frozen`` is the kill
    switch), with its version's thresholds and the deferral policy in force for the version."""

    id: int
    mode: str
    started_at: datetime
    ended_at: datetime | None
    frozen: bool
    version_id: int
    version: str
    version_created_at: datetime
    policy_id: int | None
    rules: deferral.Policy
    #: (intercept, slope) of a recalibration deployed by a release; None: scores as sent
    mapping: tuple[float, float] | None = None


@dataclass(frozen=True)
class _Target:
    """What one (model, site) resolves to, looked up once per request (one query)."""

    model_id: int
    model_slug: str
    site_id: int
    site_code: str
    deployments: tuple[_Deployment, ...]


@lru_cache(maxsize=1)
def _resolve_sql() -> str:
    # One query for the model (by slug), the token's scope, the site (by code), every
    # deployment of the model at the site with its version, and per version the policy in
    # force: the number the deployment pins (a release's), else the highest. Plain SQL that
    # SQLite and PostgreSQL both run. Nothing of it is cached between requests: freezing,
    # ending or starting a deployment and saving a policy take effect on the very next
    # request, in every process.
    from accounts.models import ServiceAccount
    from registry.models import ClinicalModel, Deployment, ModelVersion, Site

    scope = ServiceAccount.clinical_models.through._meta.db_table
    return f"""
        SELECT m.id, m.slug,
               EXISTS (SELECT 1 FROM {scope} sc
                       WHERE sc.serviceaccount_id = %s AND sc.clinicalmodel_id = m.id),
               s.id, s.code,
               d.id, d.mode, d.started_at, d.ended_at, d.frozen,
               v.id, v.version, v.decision_thresholds, v.created_at,
               p.id, p.number, p.min_confidence, p.threshold_margin,
               p.population_exclusions, p.safety_rules,
               d.score_mapping, d.thresholds
        FROM {ClinicalModel._meta.db_table} m
        LEFT JOIN {Site._meta.db_table} s ON s.code = %s
        LEFT JOIN {Deployment._meta.db_table} d ON d.model_id = m.id AND d.site_id = s.id
        LEFT JOIN {ModelVersion._meta.db_table} v ON v.id = d.version_id
        LEFT JOIN {DeferralPolicy._meta.db_table} p ON p.version_id = v.id
            AND p.number = COALESCE(d.deferral_policy_number, (
                SELECT MAX(p2.number) FROM {DeferralPolicy._meta.db_table} p2
                WHERE p2.version_id = v.id))
        WHERE m.slug = %s
        ORDER BY d.started_at DESC, d.id DESC
    """


def _deployment_of(row: Sequence[Any]) -> _Deployment:
    (did, mode, started, ended, frozen, vid, vname, thresholds, created) = row[5:14]
    (pid, number, min_confidence, margin, exclusions, safety) = row[14:20]
    mapping, pinned_thresholds = _json(row[20]) or {}, row[21]
    if pinned_thresholds is not None and _json(pinned_thresholds) is not None:
        thresholds = pinned_thresholds
    return _Deployment(
        id=did,
        mode=mode,
        started_at=_aware(started),
        ended_at=_aware(ended),
        frozen=bool(frozen),
        version_id=vid,
        version=vname,
        version_created_at=_aware(created),
        policy_id=pid,
        rules=_rules(
            thresholds if isinstance(thresholds, str | None) else json.dumps(thresholds),
            number,
            min_confidence,
            margin,
            exclusions,
            safety,
        ),
        mapping=(float(mapping["intercept"]), float(mapping["slope"])) if mapping else None,
    )


def _judged_score(item: PredictionIn, deployment: _Deployment) -> float:
    """The score the gate judges and stores: the model's, through the deployment's
    recalibration when a release deployed one (the model service needs no redeployment)."""
    if deployment.mapping is None:
        return item.score
    return apply_mapping(item.score, *deployment.mapping)


def _deployment_for(target: _Target, item: PredictionIn) -> _Deployment:
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
                        f"No live deployment of {target.model_slug} at {target.site_code} at "
                        f"{item.occurred_at.isoformat()}: the gate never acts without one."
                    ]
                },
            )
        return live
    for deployment in running:
        if deployment.version == item.version:
            return deployment
    live_text = f"the live version is {live.version}" if live else "no version is live"
    raise GateError(
        409,
        "version_mismatch",
        {
            "version": [
                f"Version {item.version} is not deployed at {target.site_code} at "
                f"{item.occurred_at.isoformat()}; {live_text}."
            ]
        },
    )


def _resolve(account: Any, item: PredictionIn, cache: dict[tuple[str, str], _Target]) -> _Target:
    key = (item.model, item.site)
    if key in cache:
        return cache[key]
    with connection.cursor() as cursor:
        cursor.execute(_resolve_sql(), [account.pk, item.site, item.model])
        rows = cursor.fetchall()
    if not rows:
        raise GateError(
            404, "unknown_model", {"model": [f"No model {item.model!r} is registered."]}
        )
    model_id, model_slug, in_scope, site_id, site_code = rows[0][:5]
    if not in_scope:
        raise GateError(
            403,
            "model_not_in_scope",
            {"model": [f"This token may not log predictions for {item.model}."]},
        )
    if site_id is None:
        raise GateError(404, "unknown_site", {"site": [f"No site {item.site!r}."]})
    cache[key] = _Target(
        model_id=model_id,
        model_slug=model_slug,
        site_id=site_id,
        site_code=site_code,
        deployments=tuple(_deployment_of(row) for row in rows if row[5] is not None),
    )
    return cache[key]


def _spec_features(features: Mapping[str, Any], deployment: _Deployment) -> dict[str, Any]:
    """The inputs the spec declares. An unexpected input is recorded by name as a problem but
    its value is not kept: it may be anything, a patient identifier included (minimum
    necessary)."""
    declared = _declared(deployment.version_id, deployment.version_created_at)
    return {name: value for name, value in features.items() if name in declared}


@lru_cache(maxsize=256)
def _declared(version_id: int, registered_at: datetime) -> frozenset[str]:
    return frozenset(rule.name for rule in _feature_rules(version_id, registered_at))


def _judge(
    item: PredictionIn, deployment: _Deployment, score: float
) -> tuple[deferral.Decision, list[Problem]]:
    rules = _feature_rules(deployment.version_id, deployment.version_created_at)
    problems = check_features(rules, item.features)
    decision = deferral.decide(
        shadow=deployment.mode == DeploymentMode.SHADOW,
        policy=deployment.rules,
        problems=problems,
        features=item.features,
        score=score,
        confidence=item.confidence,
        frozen=deployment.frozen,
    )
    return decision, problems


@dataclass
class _Event:
    """A new prediction event as judged, before it is stored: the columns of
    ``PredictionEvent`` by attribute name (a new column needs its attribute here: the inserts
    below write every column of the model), and what its answer names."""

    event_id: uuid.UUID
    model_id: int
    version_id: int
    site_id: int
    deployment_id: int
    mode: str
    occurred_at: datetime
    received_at: datetime
    case_key_hash: str
    features: dict[str, Any]
    score: float
    raw_score: float | None
    confidence: float | None
    top_factors: list[Any]
    cohort: dict[str, Any]
    action: str
    reasons: list[dict[str, str]]
    problems: list[dict[str, str]]
    policy_id: int | None
    policy_number: int
    body_hash: str
    submitted_by_id: int
    model_slug: str
    version: str
    site_code: str
    pk: int | None = None
    review_case_id: int | None = None

    def answer(self) -> Answer:
        return Answer(
            event_id=self.event_id,
            action=self.action,
            reasons=self.reasons,
            model=self.model_slug,
            version=self.version,
            site=self.site_code,
            deployment_mode=self.mode,
            policy_version=self.policy_number,
            review_case_id=self.review_case_id if self.action == deferral.DEFER else None,
            score=self.score,
        )


@dataclass(frozen=True)
class _Stored:
    """What a replay needs of a stored event: no wide joins (a model row has ~40 columns)."""

    body_hash: str
    answer: Answer


@lru_cache(maxsize=1)
def _replay_sql() -> str:
    from registry.models import ClinicalModel, ModelVersion, Site

    return f"""
        SELECT e.event_id, e.body_hash, e.action, e.reasons, e.mode, e.policy_number,
               m.slug, v.version, s.code, r.id, e.score
        FROM {PredictionEvent._meta.db_table} e
        JOIN {ClinicalModel._meta.db_table} m ON m.id = e.model_id
        JOIN {ModelVersion._meta.db_table} v ON v.id = e.version_id
        JOIN {Site._meta.db_table} s ON s.id = e.site_id
        LEFT JOIN {ReviewCase._meta.db_table} r ON r.event_id = e.id
        WHERE e.event_id IN ({{placeholders}})
    """


def _replays(items: Sequence[PredictionIn]) -> dict[uuid.UUID, _Stored]:
    id_field = PredictionEvent._meta.get_field("event_id")
    ids = [id_field.get_db_prep_value(item.event_id, connection) for item in items]
    found: dict[uuid.UUID, _Stored] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            sql = _replay_sql().format(placeholders=", ".join(["%s"] * len(chunk)))
            cursor.execute(sql, chunk)
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
                score,
            ) in cursor.fetchall():
                event_id = _uuid(event_id)
                found[event_id] = _Stored(
                    body_hash,
                    Answer(
                        event_id=event_id,
                        action=action,
                        reasons=_json(reasons),
                        model=model,
                        version=version,
                        site=site,
                        deployment_mode=mode,
                        policy_version=number,
                        review_case_id=review if action == deferral.DEFER else None,
                        score=score,
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
    if len(items) == 1:
        return [_gate_one(account, items[0], now)]
    stored = _replays(items)
    outcomes: list[Outcome | None] = [None] * len(items)
    fresh: list[tuple[int, _Event]] = []
    targets: dict[tuple[str, str], _Target] = {}
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
            event = _build_event(account, item, now, targets)
        except GateError as error:
            outcomes[index] = Outcome(error=error)
            continue
        fresh.append((index, event))
    for index, outcome in _store(fresh, items):
        outcomes[index] = outcome
    return [o for o in outcomes if o is not None]


def _gate_one(account: Any, item: PredictionIn, now: datetime) -> Outcome:
    """One prediction, with the same answers as a batch of one but fewer round trips: a new
    event (the common case) is judged and inserted without looking for a replay first; the
    replay lookup runs only when the insert finds the id taken or the item cannot be judged
    (a stored event is answered as stored, whatever the gate would say of it now)."""
    try:
        event = _build_event(account, item, now, {})
    except GateError as error:
        stored = _replays([item]).get(item.event_id)
        return _replay(item, stored) if stored is not None else Outcome(error=error)
    return _store_one(event, item)


def _build_event(
    account: Any, item: PredictionIn, now: datetime, targets: dict[tuple[str, str], _Target]
) -> _Event:
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
    score = _judged_score(item, deployment)
    decision, problems = _judge(item, deployment, score)
    return _Event(
        event_id=item.event_id,
        model_id=target.model_id,
        version_id=deployment.version_id,
        site_id=target.site_id,
        deployment_id=deployment.id,
        mode=deployment.mode,
        occurred_at=item.occurred_at,
        received_at=now,
        case_key_hash=pseudonymise(item.case_key),
        features=_spec_features(item.features, deployment),
        score=score,
        raw_score=item.score if deployment.mapping is not None else None,
        confidence=item.confidence,
        top_factors=list(item.top_factors),
        cohort=dict(item.cohort),
        action=decision.action,
        reasons=[r.as_dict() for r in decision.reasons],
        problems=[p.as_dict() for p in problems],
        policy_id=deployment.policy_id,
        policy_number=deployment.rules.number,
        body_hash=item.body_hash(),
        submitted_by_id=account.user_id,
        model_slug=target.model_slug,
        version=deployment.version,
        site_code=target.site_code,
    )


# --- Storing ---------------------------------------------------------------------------------

#: ``PredictionEvent``'s columns but the primary key, in the order the inserts below use.
_FIELDS = tuple(f for f in PredictionEvent._meta.concrete_fields if not f.primary_key)
_JSON_COLUMNS = frozenset(f.attname for f in _FIELDS if f.get_internal_type() == "JSONField")


def _dumps(value: Any) -> str:
    """A JSON column's text for ``COPY`` (most events have no reasons and no problems)."""
    if value == [] or value == {}:
        return "[]" if isinstance(value, list) else "{}"
    return json.dumps(value)


@lru_cache(maxsize=1)
def _insert_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in _FIELDS)
    values = ", ".join(["%s"] * len(_FIELDS))
    table = quote(PredictionEvent._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING {quote('id')}"


def _insert_one(event: _Event) -> None:
    """One row, its values prepared by the model's own fields (as ``save()`` would)."""
    values = [f.get_db_prep_save(getattr(event, f.attname), connection) for f in _FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(), values)
        event.pk = cursor.fetchone()[0]


def _insert_many(events: Sequence[_Event]) -> None:
    """Many rows: ``COPY`` on PostgreSQL (about twice as fast as the ORM's insert), then the
    ids of the deferred events, which open review cases; elsewhere ``bulk_create``."""
    if connection.vendor != "postgresql":
        rows = [
            PredictionEvent(**{f.attname: getattr(e, f.attname) for f in _FIELDS}) for e in events
        ]
        PredictionEvent.objects.bulk_create(rows, batch_size=1000)
        for event, row in zip(events, rows, strict=True):
            event.pk = row.pk
        return
    quote = connection.ops.quote_name
    table = quote(PredictionEvent._meta.db_table)
    columns = ", ".join(quote(f.column) for f in _FIELDS)
    names = [(f.attname, f.attname in _JSON_COLUMNS) for f in _FIELDS]
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for event in events:
                values = event.__dict__
                copy.write_row(
                    [_dumps(values[name]) if is_json else values[name] for name, is_json in names]
                )
        deferred = {e.event_id: e for e in events if e.action == deferral.DEFER}
        if deferred:
            cursor.execute(
                f"SELECT {quote('event_id')}, {quote('id')} FROM {table} "
                f"WHERE {quote('event_id')} = ANY(%s)",
                [list(deferred)],
            )
            for event_id, pk in cursor.fetchall():
                deferred[_uuid(event_id)].pk = pk


def _store(
    fresh: list[tuple[int, _Event]], items: Sequence[PredictionIn]
) -> list[tuple[int, Outcome]]:
    """Insert the new events and their review cases in one transaction; if a concurrent request
    logged one of these ids first, fall back to one by one so each gets its true answer."""
    if not fresh:
        return []
    events = [event for _, event in fresh]
    try:
        with transaction.atomic():
            _insert_many(events)
            _open_reviews(events)
    except IntegrityError:
        return [(index, _store_one(event, items[index])) for index, event in fresh]
    _mark_late(events)
    return [(index, Outcome(answer=event.answer())) for index, event in fresh]


def _store_one(event: _Event, item: PredictionIn) -> Outcome:
    """One new event: a single ``INSERT`` when it opens no review case (no transaction needed
    for one statement), else the event and its review case in one transaction. An id already
    taken answers as a replay (the same body) or a conflict (another body)."""
    try:
        if event.action == deferral.DEFER or connection.in_atomic_block:
            with transaction.atomic():
                _insert_one(event)
                _open_reviews([event])
        else:
            _insert_one(event)
    except IntegrityError:
        stored = _replays([item]).get(item.event_id)
        if stored is None:
            raise
        return _replay(item, stored)
    _mark_late([event])
    return Outcome(answer=event.answer())


def _mark_late(events: Sequence[_Event]) -> None:
    """A prediction for an earlier day (a late or batch sender) changes that day's profiles if
    they are built: mark the day for a rebuild. Today's profiles are rebuilt every run anyway,
    so the common case costs no query."""
    today = timezone.now().astimezone(UTC).date()
    late = [
        (e.version_id, e.occurred_at)
        for e in events
        if e.occurred_at.astimezone(UTC).date() < today
    ]
    if late:
        mark_stale(late, "late prediction")


def _open_reviews(events: Sequence[_Event]) -> None:
    """Every deferred live case opens a review case (shadow never reaches a clinician)."""
    deferred = [event for event in events if event.action == deferral.DEFER]
    if not deferred:
        return
    cases = [
        ReviewCase(
            event_id=event.pk,
            model_id=event.model_id,
            site_id=event.site_id,
            urgency=event.score,
            opened_at=event.received_at,
        )
        for event in deferred
    ]
    ReviewCase.objects.bulk_create_recorded(cases, user=None, reason="deferred by the gate")
    for event, case in zip(deferred, cases, strict=True):
        event.review_case_id = case.pk
