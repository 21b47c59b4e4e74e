"""Outcomes and overrides: what happened after the gate answered, joined to its event.

Both arrive from model services, often days later, and both are rows that are only ever added.

- An outcome is the observed label of an event, named by its event id or by the case key and
  time of the prediction. Sending the label already on record is a harmless replay; a different
  label is a conflict (409) unless it is sent as a correction, which adds a row that ``corrects``
  the current one, so the earlier value stays on record (and the correction is audited).
- An override is a clinician disagreeing with a model that acted. A deferred case was already
  decided by a person (the review queue records that), and a shadow answer reached nobody, so
  neither can be overridden (409).

Scope: an event of a model outside the token's scope is answered exactly like an event that
does not exist (404), so a token cannot learn which events other models logged. A request that
names a model itself (the case-key lookup) gets the gate's answers: 404 for an unknown model,
403 for a model the token does not serve.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.audit.services import record
from monitoring.gate import MAX_BULK, MAX_CLOCK_SKEW, GateError, pseudonymise
from monitoring.models import Action, Outcome, Override, OverrideReason, PredictionEvent
from monitoring.profiles import mark_stale
from registry.models import ClinicalModel

#: Labels a binary model's outcome may take (other model kinds are not supported yet).
BINARY_LABELS = frozenset({0.0, 1.0})
CHUNK = 1000


@dataclass(frozen=True)
class OutcomeIn:
    """One outcome as a model service sends it: by ``event_id``, or by ``model`` + ``case_key``
    + ``occurred_at`` (optionally narrowed by ``site`` and ``version``)."""

    label: float
    observed_at: datetime
    event_id: uuid.UUID | None = None
    model: str | None = None
    case_key: str | None = None
    occurred_at: datetime | None = None
    site: str | None = None
    version: str | None = None
    correction: bool = False
    note: str = ""


@dataclass(frozen=True)
class Recorded:
    """Per item: the outcome now on record (``created`` is False for a replay) or an error."""

    outcome: Outcome | None = None
    created: bool = False
    error: GateError | None = None


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "?"


def _error(status: int, code: str, field: str, message: str) -> GateError:
    return GateError(status, code, {field: [message]})


def _scope(account: Any) -> set[int]:
    return set(account.clinical_models.values_list("pk", flat=True))


def _lock(event: PredictionEvent) -> None:
    """Queue concurrent writers of one event's outcomes or overrides (the event never changes)."""
    list(PredictionEvent.objects.select_for_update().filter(pk=event.pk).values_list("pk"))


def _not_found(event_id: uuid.UUID) -> GateError:
    # The same answer whether the event does not exist or belongs to another model's token.
    return _error(404, "unknown_event", "event_id", f"No event {event_id} of this token's models.")


def _check_time(field: str, moment: datetime, now: datetime) -> GateError | None:
    if moment > now + MAX_CLOCK_SKEW:
        return _error(
            400,
            "time_in_future",
            field,
            f"{moment.isoformat()} is in the future (server time {now.isoformat()}).",
        )
    return None


def _check_after_prediction(
    field: str, moment: datetime, event: PredictionEvent
) -> GateError | None:
    if moment < event.occurred_at:
        return _error(
            400,
            "before_prediction",
            field,
            f"{moment.isoformat()} is before the prediction it follows "
            f"({event.occurred_at.isoformat()}).",
        )
    return None


# --- Finding events -------------------------------------------------------------------------


def _events_by_id(ids: Iterable[uuid.UUID], scope: set[int]) -> dict[uuid.UUID, PredictionEvent]:
    wanted, found = sorted(set(ids)), {}
    for start in range(0, len(wanted), CHUNK):
        events = PredictionEvent.objects.filter(
            event_id__in=wanted[start : start + CHUNK], model_id__in=scope
        ).select_related("model")
        found.update({e.event_id: e for e in events})
    return found


class _CaseIndex:
    """Events found by (model, case key, time), looked up in bulk for a whole request."""

    def __init__(self, items: Sequence[OutcomeIn], scope: set[int]) -> None:
        keyed = [i for i in items if i.event_id is None]
        slugs = {i.model for i in keyed}
        self.models = {m.slug: m for m in ClinicalModel.objects.filter(slug__in=slugs)}
        self.scope = scope
        self.events: dict[tuple[int, str], list[PredictionEvent]] = {}
        for model in self.models.values():
            if model.pk in scope:
                self._load(model, [i for i in keyed if i.model == model.slug])

    def _load(self, model: ClinicalModel, items: list[OutcomeIn]) -> None:
        hashes = sorted({pseudonymise(i.case_key or "") for i in items})
        times = {i.occurred_at for i in items}
        for start in range(0, len(hashes), CHUNK):
            events = PredictionEvent.objects.filter(
                model=model, case_key_hash__in=hashes[start : start + CHUNK], occurred_at__in=times
            ).select_related("model", "site", "version")
            for event in events:
                self.events.setdefault((model.pk, event.case_key_hash), []).append(event)

    def find(self, item: OutcomeIn) -> PredictionEvent:
        model = self.models.get(item.model or "")
        if model is None:
            raise _error(404, "unknown_model", "model", f"No model {item.model!r} is registered.")
        if model.pk not in self.scope:
            raise _error(
                403,
                "model_not_in_scope",
                "model",
                f"This token may not send outcomes for {item.model}.",
            )
        matches = [
            e
            for e in self.events.get((model.pk, pseudonymise(item.case_key or "")), [])
            if e.occurred_at == item.occurred_at
            and item.site in (None, e.site.code)
            and item.version in (None, e.version.version)
        ]
        if not matches:
            raise _error(
                404,
                "unknown_event",
                "case_key",
                f"No prediction of {item.model} for this case key at {_iso(item.occurred_at)}.",
            )
        if len(matches) > 1:
            raise _ambiguous(item, matches)
        return matches[0]


def _ambiguous(item: OutcomeIn, matches: list[PredictionEvent]) -> GateError:
    where = ", ".join(sorted({f"{e.site.code} {e.version.version}" for e in matches}))
    return _error(
        409,
        "ambiguous_event",
        "case_key",
        f"{len(matches)} predictions of {item.model} match this case key at "
        f"{_iso(item.occurred_at)} ({where}); send the event id, or name the site and version.",
    )


# --- Outcomes -------------------------------------------------------------------------------


def _check_outcome(item: OutcomeIn, now: datetime) -> GateError | None:
    if item.event_id is None and None in (item.model, item.case_key, item.occurred_at):
        return _error(
            400, "invalid", "event_id", "Send event_id, or model, case_key and occurred_at."
        )
    if isinstance(item.label, bool) or item.label not in BINARY_LABELS:
        return _error(
            400,
            "invalid_label",
            "label",
            f"Outcome labels are 0 or 1 (binary models); got {item.label!r}.",
        )
    return _check_time("observed_at", item.observed_at, now)


def _latest(event_pks: Iterable[int]) -> dict[int, Outcome]:
    """The outcome in force per event: the one no later row corrects."""
    wanted, found = sorted(set(event_pks)), {}
    for start in range(0, len(wanted), CHUNK):
        rows = Outcome.objects.filter(
            event_id__in=wanted[start : start + CHUNK], corrected_by__isnull=True
        )
        found.update({row.event_id: row for row in rows})
    return found


def _conflict(event: PredictionEvent, latest: Outcome) -> GateError:
    return _error(
        409,
        "outcome_conflict",
        "label",
        f"Event {event.event_id} already has outcome {latest.label:g} (received "
        f'{latest.received_at.isoformat()}); to replace it send "correction": true — the '
        "earlier value is kept on record.",
    )


def _new_row(account: Any, item: OutcomeIn, event: PredictionEvent, now: datetime) -> Outcome:
    return Outcome(
        event=event,
        label=float(item.label),
        observed_at=item.observed_at,
        received_at=now,
        note=item.note,
        submitted_by=account.user,
    )


@transaction.atomic
def _record_locked(
    account: Any, item: OutcomeIn, event: PredictionEvent, now: datetime
) -> Recorded:
    _lock(event)
    latest = _latest([event.pk]).get(event.pk)
    if latest is None:
        row = _new_row(account, item, event, now)
        row.save(force_insert=True)
        return Recorded(outcome=row, created=True)
    latest.event = event
    if latest.label == item.label:
        return Recorded(outcome=latest, created=False)
    if not item.correction:
        return Recorded(error=_conflict(event, latest))
    row = _new_row(account, item, event, now)
    row.corrects = latest
    row.save(force_insert=True)
    _record_correction(account, row, latest)
    return Recorded(outcome=row, created=True)


def _record_one(account: Any, item: OutcomeIn, event: PredictionEvent, now: datetime) -> Recorded:
    """Judge one outcome against the one in force, under the event's row lock."""
    try:
        return _record_locked(account, item, event, now)
    except IntegrityError:  # a concurrent request recorded this event's outcome first
        return _record_locked(account, item, event, now)


def _record_correction(account: Any, row: Outcome, previous: Outcome) -> None:
    event = row.event
    record(
        actor=account.user,
        action="outcome.correct",
        target=row,
        summary=f"Outcome of event {event.event_id} ({event.model.slug}) corrected: "
        f"{previous.label:g} → {row.label:g}",
        payload={
            "event_id": str(event.event_id),
            "model": event.model.slug,
            "previous_outcome": previous.pk,
            "previous_label": previous.label,
            "label": row.label,
            "note": row.note,
        },
    )


def _store_originals(
    account: Any, fresh: list[tuple[int, OutcomeIn, PredictionEvent]], now: datetime
) -> list[tuple[int, Recorded]]:
    """First outcomes of events that had none, in one insert; if a concurrent request got
    there first, fall back to judging each on its own."""
    if not fresh:
        return []
    rows = [_new_row(account, item, event, now) for _, item, event in fresh]
    try:
        with transaction.atomic():
            Outcome.objects.bulk_create(rows, batch_size=CHUNK)
    except IntegrityError:
        return [(i, _record_one(account, item, event, now)) for i, item, event in fresh]
    return [
        (i, Recorded(outcome=row, created=True)) for (i, _, _), row in zip(fresh, rows, strict=True)
    ]


def outcomes_record(*, account: Any, items: Sequence[OutcomeIn]) -> list[Recorded]:
    """Record outcomes for a service ``account``: one result per item, in order. Each item
    stands alone (valid ones are stored even when others fail); retrying is safe."""
    if len(items) > MAX_BULK:
        raise _error(400, "too_many", "items", f"At most {MAX_BULK} outcomes per request.")
    now = timezone.now()
    results: list[Recorded | None] = [None] * len(items)
    resolved = []
    for index, found in enumerate(_resolve_all(account, items, now)):
        if isinstance(found, GateError):
            results[index] = Recorded(error=found)
        else:
            resolved.append((index, items[index], found))
    current = _latest(event.pk for _, _, event in resolved)
    fresh, later = _split(resolved, current)
    for (index, _, event), (_, result) in zip(
        fresh, _store_originals(account, fresh, now), strict=True
    ):
        results[index] = result
        if result.outcome is not None:
            current[event.pk] = result.outcome
    for index, item, event in later:  # in request order, after the first outcomes
        results[index] = _record_later(account, item, event, current, now)
    done = [r for r in results if r is not None]
    # A late label changes the profile of its event's day: mark that day for a rebuild.
    mark_stale(
        (
            (r.outcome.event.version_id, r.outcome.event.occurred_at)
            for r in done
            if r.created and r.outcome is not None
        ),
        "outcome received",
    )
    return done


Resolved = tuple[int, OutcomeIn, PredictionEvent]


def _split(
    resolved: list[Resolved], current: dict[int, Outcome]
) -> tuple[list[Resolved], list[Resolved]]:
    """The first outcome of each event without one (stored in bulk), and the rest."""
    claimed: set[int] = set()
    fresh, later = [], []
    for entry in resolved:
        event = entry[2]
        if event.pk in current or event.pk in claimed:
            later.append(entry)
        else:
            claimed.add(event.pk)
            fresh.append(entry)
    return fresh, later


def _record_later(
    account: Any,
    item: OutcomeIn,
    event: PredictionEvent,
    current: dict[int, Outcome],
    now: datetime,
) -> Recorded:
    on_record = current.get(event.pk)
    if on_record is not None and on_record.label == item.label:
        on_record.event = event
        return Recorded(outcome=on_record, created=False)  # a replay writes nothing: no lock
    result = _record_one(account, item, event, now)
    if result.outcome is not None:
        current[event.pk] = result.outcome
    return result


def _resolve_all(
    account: Any, items: Sequence[OutcomeIn], now: datetime
) -> list[PredictionEvent | GateError]:
    scope = _scope(account)
    by_id = _events_by_id([i.event_id for i in items if i.event_id is not None], scope)
    cases = _CaseIndex(items, scope)
    found: list[PredictionEvent | GateError] = []
    for item in items:
        try:
            found.append(_resolve(item, by_id, cases, now))
        except GateError as error:
            found.append(error)
    return found


def _resolve(
    item: OutcomeIn, by_id: dict[uuid.UUID, PredictionEvent], cases: _CaseIndex, now: datetime
) -> PredictionEvent:
    error = _check_outcome(item, now)
    if error is not None:
        raise error
    if item.event_id is not None:
        event = by_id.get(item.event_id)
        if event is None:
            raise _not_found(item.event_id)
    else:
        event = cases.find(item)
    error = _check_after_prediction("observed_at", item.observed_at, event)
    if error is not None:
        raise error
    return event


def outcome_record(
    *,
    account: Any,
    event_id: uuid.UUID | None = None,
    label: float,
    observed_at: datetime,
    correction: bool = False,
    note: str = "",
    model: str | None = None,
    case_key: str | None = None,
    occurred_at: datetime | None = None,
    site: str | None = None,
    version: str | None = None,
) -> Recorded:
    """One outcome; raises ``GateError`` (with its HTTP status) when it cannot be recorded."""
    item = OutcomeIn(
        label=label,
        observed_at=observed_at,
        event_id=event_id,
        model=model,
        case_key=case_key,
        occurred_at=occurred_at,
        site=site,
        version=version,
        correction=correction,
        note=note,
    )
    (result,) = outcomes_record(account=account, items=[item])
    if result.error is not None:
        raise result.error
    return result


# --- Overrides ------------------------------------------------------------------------------

NOT_ACTED = {
    Action.DEFER: "was deferred to a human, not acted on: its review case records the "
    "clinician's decision.",
    Action.SHADOW: "was logged in shadow: its answer reached no clinician, so there is nothing "
    "to override.",
}


def _check_override_fields(
    *, clinician_role: str, reason_code: str, final_action: str, note: str
) -> None:
    if reason_code not in OverrideReason.values:
        raise _error(
            400,
            "invalid",
            "reason_code",
            f"{reason_code!r} is not a reason code; use one of {', '.join(OverrideReason.values)}.",
        )
    if reason_code == OverrideReason.OTHER and not note.strip():
        raise _error(400, "invalid", "note", "Reason code other needs a note saying why.")
    if not clinician_role.strip():
        raise _error(400, "invalid", "clinician_role", "Say the clinician's role (e.g. nurse).")
    if not final_action.strip():
        raise _error(400, "invalid", "final_action", "Say what was done instead.")


def _acted_event(account: Any, event_id: uuid.UUID) -> PredictionEvent:
    event = _events_by_id([event_id], _scope(account)).get(event_id)
    if event is None:
        raise _not_found(event_id)
    if event.action != Action.ACT:
        raise _error(
            409,
            "not_acted",
            "event_id",
            f"Event {event_id} {NOT_ACTED.get(event.action, 'was not acted on.')}",
        )
    return event


@transaction.atomic
def override_record(
    *,
    account: Any,
    event_id: uuid.UUID,
    clinician_role: str,
    clinician_ref: str,
    reason_code: str,
    final_action: str,
    note: str,
    occurred_at: datetime,
) -> tuple[Override, bool]:
    """Record that a clinician overrode an ``act`` answer. Returns the override and whether it
    is new: the very same report sent again returns the first one (retries are safe).
    Raises ``GateError`` with its HTTP status when it cannot be recorded."""
    _check_override_fields(
        clinician_role=clinician_role, reason_code=reason_code, final_action=final_action, note=note
    )
    now = timezone.now()
    event = _acted_event(account, event_id)
    for error in (
        _check_time("occurred_at", occurred_at, now),
        _check_after_prediction("occurred_at", occurred_at, event),
    ):
        if error is not None:
            raise error
    # The event's row lock queues concurrent reports of one event, so a replay finds the first.
    _lock(event)
    fields = {
        "clinician_role": clinician_role.strip(),
        "clinician_ref": clinician_ref.strip(),
        "reason_code": reason_code,
        "final_action": final_action.strip(),
        "note": note.strip(),
        "occurred_at": occurred_at,
    }
    existing = Override.objects.filter(event=event, **fields).first()
    if existing is not None:
        return existing, False
    override = Override(event=event, received_at=now, submitted_by=account.user, **fields)
    override.save(force_insert=True)
    mark_stale([(event.version_id, event.occurred_at)], "override received")
    return override, True
