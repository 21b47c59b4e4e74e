"""The RACI matrix: who is Responsible, Accountable, Consulted and Informed for each governed
activity, per model, inheriting row by row from the health system's default and, where the
default stores no row, from the built-in default below.

A party is ``"role:<role>"`` (every active member of that role) or ``"user:<username>"`` (one
active person). ``matrix_errors`` is the one validator: the grid page, the API and
``raci_save`` all refuse a matrix with its messages. Routing and escalation
(``incidents.routing``) read ``responsible`` and ``accountable``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.permissions import require_perms
from accounts.roles import HUMAN_ROLES, Role
from governance.audit.services import record
from governance.models import RaciMatrix, ReleaseKind

if TYPE_CHECKING:
    from registry.models import ClinicalModel

ROLE_PREFIX = "role:"
USER_PREFIX = "user:"
LETTERS = ("A", "R", "C", "I")
LETTER_NAMES = {"A": "Accountable", "R": "Responsible", "C": "Consulted", "I": "Informed"}
REASON_MAX = 500

#: The alert layers whose incidents each have a row (monitoring's four, plus governance).
LAYERS = {
    "data_quality": "Data-quality incidents",
    "prediction_quality": "Prediction-quality incidents",
    "workflow": "Workflow incidents",
    "outcome": "Outcome-impact incidents",
    "governance": "Governance incidents",
}

#: Every row of the matrix, in the order the grid shows them, with its label.
ACTIVITIES: dict[str, str] = {
    **{f"incidents.{layer}": label for layer, label in LAYERS.items()},
    **{f"release.{kind.value}": f"Release: {kind.label.lower()}" for kind in ReleaseKind},
    "model_card": "Model-card upkeep",
    "periodic_review": "Periodic review",
}


class Row(TypedDict):
    """One stored row: exactly one Accountable, at least one Responsible."""

    A: str
    R: list[str]
    C: list[str]
    I: list[str]  # noqa: E741 - the matrix's own letter


class EffectiveRow(Row):
    """A row as it applies to a model: ``source`` is ``model``, ``default`` or ``builtin``;
    ``inherited`` is true unless the matrix asked about stores the row itself."""

    inherited: bool
    source: str


def _role(name: str) -> str:
    return f"{ROLE_PREFIX}{name}"


DIRECTOR = _role(Role.MEDICAL_DIRECTOR)
COMPLIANCE = _role(Role.COMPLIANCE_OFFICER)
#: Who resolves each layer's incidents when nobody has said otherwise (the playbook's default).
LAYER_RESPONSIBLE = {
    "data_quality": Role.DATA_ENGINEER,
    "prediction_quality": Role.ML_ENGINEER,
    "workflow": Role.CLINICAL_INFORMATICIST,
    "outcome": Role.QUALITY_SAFETY,
    "governance": Role.COMPLIANCE_OFFICER,
}


def _builtin() -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for layer, role in LAYER_RESPONSIBLE.items():
        rows[f"incidents.{layer}"] = Row(A=DIRECTOR, R=[_role(role)], C=[], I=[])
    for kind in ReleaseKind:
        owner = Role.ML_ENGINEER
        if kind == ReleaseKind.DEFERRAL_POLICY:
            owner = Role.CLINICAL_INFORMATICIST
        rows[f"release.{kind.value}"] = Row(A=DIRECTOR, R=[_role(owner)], C=[], I=[COMPLIANCE])
    rows["model_card"] = Row(A=DIRECTOR, R=[_role(Role.ML_ENGINEER)], C=[], I=[COMPLIANCE])
    rows["periodic_review"] = Row(A=DIRECTOR, R=[_role(Role.QUALITY_SAFETY)], C=[], I=[COMPLIANCE])
    return rows


#: The built-in default: what applies where neither the model nor the health system says.
BUILTIN: dict[str, Row] = _builtin()


# --- parties --------------------------------------------------------------------------------


def user_party(user: Any) -> str:
    return f"{USER_PREFIX}{user.get_username()}"


def parties_of(user: Any) -> list[str]:
    """Every party ``user`` answers to: themselves and each of their roles."""
    roles = sorted(user.groups.values_list("name", flat=True))
    return [user_party(user), *(_role(name) for name in roles)]


ROLE_LABELS: dict[str, str] = {
    Role.MEDICAL_DIRECTOR: "Medical director",
    Role.COMPLIANCE_OFFICER: "Compliance officer",
    Role.INCIDENT_COMMANDER: "Incident commander",
    Role.ML_ENGINEER: "ML engineer",
    Role.DATA_ENGINEER: "Data engineer",
    Role.CLINICAL_INFORMATICIST: "Clinical informaticist",
    Role.QUALITY_SAFETY: "Quality & safety",
    Role.REVIEWER: "Reviewer",
    Role.VIEWER: "Viewer",
}


def party_label(party: str) -> str:
    """``role:medical_director`` → "Medical director"; ``user:alice`` → "alice"."""
    kind, _, name = party.partition(":")
    if kind == "role":
        return ROLE_LABELS.get(name, name)
    return name


def people() -> QuerySet[Any]:
    """Active people, the ones a matrix may name: model services' accounts are never a party."""
    return get_user_model().objects.filter(is_active=True, service_account__isnull=True)


def users_of(party: str) -> QuerySet[Any]:
    """The active people a party names (none for an unknown party)."""
    kind, _, name = party.partition(":")
    found = people()
    if kind == "role" and name in HUMAN_ROLES:
        return found.filter(groups__name=name).distinct().order_by("username")
    if kind == "user" and name:
        return found.filter(username=name)
    return found.none()


# --- validation -----------------------------------------------------------------------------


def parties_in(row: Mapping[str, Any]) -> Iterable[str]:
    """Every party a row names, in any cell (non-strings skipped)."""
    for letter in LETTERS:
        value = row.get(letter)
        values = value if isinstance(value, list) else [value]
        yield from (v for v in values if isinstance(v, str))


def _known_usernames(entries: Mapping[str, Any]) -> set[str]:
    named = {
        party[len(USER_PREFIX) :]
        for row in entries.values()
        if isinstance(row, Mapping)
        for party in parties_in(row)
        if party.startswith(USER_PREFIX)
    }
    if not named:
        return set()
    return set(people().filter(username__in=named).values_list("username", flat=True))


def _party_error(party: Any, active: set[str]) -> str | None:
    if not isinstance(party, str):
        return f"{party!r} is not a party: write role:<role> or user:<username>."
    kind, _, name = party.partition(":")
    if kind == "role":
        if name not in HUMAN_ROLES:
            return f"Unknown role {name!r}."
        return None
    if kind == "user":
        if name not in active:
            return f"No active person named {name!r}."
        return None
    return f"{party!r} is not a party: write role:<role> or user:<username>."


def _letter_errors(row: Mapping[str, Any], active: set[str]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    accountable = row.get("A")
    if isinstance(accountable, list) and len(accountable) == 1:
        accountable = accountable[0]
    if accountable in (None, "", []):
        errors["A"] = ["Name exactly one Accountable."]
    elif isinstance(accountable, list):
        errors["A"] = [f"Name exactly one Accountable, not {len(accountable)}."]
    elif problem := _party_error(accountable, active):
        errors["A"] = [problem]
    for letter in ("R", "C", "I"):
        value = row.get(letter, [])
        if not isinstance(value, list):
            errors[letter] = [f"{LETTER_NAMES[letter]} must be a list of parties."]
            continue
        problems = [p for party in value if (p := _party_error(party, active))]
        if len(set(map(str, value))) < len(value):
            problems.append("A party is listed twice.")
        if problems:
            errors[letter] = problems
    if "R" not in errors and not row.get("R"):
        errors["R"] = ["Name at least one Responsible."]
    return errors


def _overlap_errors(row: Mapping[str, Any]) -> dict[str, list[str]]:
    """A party Consulted or Informed is not also Accountable or Responsible, nor both C and I."""
    errors: dict[str, list[str]] = {}
    doing = {row.get("A"), *row.get("R", [])}
    consulted = set(row.get("C", []))
    for letter in ("C", "I"):
        for party in row.get(letter, []):
            if party in doing:
                errors.setdefault(letter, []).append(
                    f"{party} is Accountable or Responsible already."
                )
            elif letter == "I" and party in consulted:
                errors.setdefault(letter, []).append(f"{party} is Consulted already.")
    return errors


def cell_errors(entries: Any) -> dict[str, dict[str, list[str]]]:
    """Per activity, per cell (``A``, ``R``, ``C``, ``I``, or ``row`` for the row's shape), what
    is wrong. ``{"entries": {"row": [...]}}`` when the matrix itself has the wrong shape."""
    if not isinstance(entries, Mapping):
        return {"entries": {"row": ["The matrix maps each activity to its A, R, C and I."]}}
    active = _known_usernames(entries)
    errors: dict[str, dict[str, list[str]]] = {}
    for activity, row in entries.items():
        if activity not in ACTIVITIES:
            errors[str(activity)] = {"row": [f"Unknown activity: one of {', '.join(ACTIVITIES)}."]}
        elif not isinstance(row, Mapping):
            errors[activity] = {"row": ["A row maps A to one party and R, C, I to lists."]}
        elif unknown := sorted(set(map(str, row)) - set(LETTERS)):
            errors[activity] = {"row": [f"Unknown column {', '.join(unknown)}: only A, R, C, I."]}
        else:
            found = _letter_errors(row, active)
            errors_of_row = found or _overlap_errors(normal_row(row))
            if errors_of_row:
                errors[activity] = errors_of_row
    return errors


def matrix_errors(entries: Any) -> dict[str, str]:
    """The one validator: per activity, one message naming the row and its bad cells. Empty
    when the matrix may be saved. Rows absent from ``entries`` are inherited, not errors."""
    flat: dict[str, str] = {}
    for activity, cells in cell_errors(entries).items():
        name = ACTIVITIES.get(activity, activity)
        parts = [
            (f"{LETTER_NAMES[letter]}: " if letter in LETTER_NAMES else "") + " ".join(messages)
            for letter, messages in cells.items()
        ]
        flat[activity] = f"{name} ({activity}): " + " ".join(parts)
    return flat


def normal_row(row: Mapping[str, Any]) -> Row:
    """A valid row as stored: A a string, R, C and I lists (C and I may be absent on input)."""
    accountable = row.get("A")
    if isinstance(accountable, list):
        accountable = accountable[0]
    return Row(
        A=str(accountable),
        R=list(row.get("R", [])),
        C=list(row.get("C", [])),
        I=list(row.get("I", [])),
    )


def normal_entries(entries: Mapping[str, Any]) -> dict[str, Row]:
    """Valid entries as stored, in the grid's order."""
    return {a: normal_row(entries[a]) for a in ACTIVITIES if a in entries}


# --- reading --------------------------------------------------------------------------------


def matrix_of(model: ClinicalModel | None) -> RaciMatrix | None:
    """The stored matrix of ``model`` (``None``: the health-system default), if any."""
    if model is None:
        return RaciMatrix.objects.filter(model__isnull=True).first()
    return RaciMatrix.objects.filter(model=model).first()


def _stored(matrix: RaciMatrix | None) -> dict[str, Any]:
    entries = matrix.entries if matrix is not None else {}
    return entries if isinstance(entries, dict) else {}


def effective(model: ClinicalModel | None) -> dict[str, EffectiveRow]:
    """Every activity's row as it applies to ``model`` (``None``: the default itself), with
    where it comes from. ``inherited`` is relative to the matrix asked about."""
    default = _stored(matrix_of(None))
    own = _stored(matrix_of(model)) if model is not None else default
    rows: dict[str, EffectiveRow] = {}
    for activity in ACTIVITIES:
        if activity in own:
            row, source = normal_row(own[activity]), "model" if model is not None else "default"
        elif activity in default:
            row, source = normal_row(default[activity]), "default"
        else:
            row, source = BUILTIN[activity], "builtin"
        rows[activity] = EffectiveRow(
            A=row["A"], R=list(row["R"]), C=list(row["C"]), I=list(row["I"]),
            inherited=activity not in own, source=source,
        )  # fmt: skip
    return rows


def row_for(model: ClinicalModel | None, activity: str) -> Row:
    """One activity's effective row (a built-in row for an activity nobody stored)."""
    if activity not in ACTIVITIES:
        raise KeyError(f"unknown RACI activity {activity!r}")
    own = _stored(matrix_of(model)) if model is not None else {}
    for entries in (own, _stored(matrix_of(None))):
        if activity in entries:
            return normal_row(entries[activity])
    return BUILTIN[activity]


def accountable(model: ClinicalModel | None, activity: str) -> str:
    """The one Accountable party of ``activity`` for ``model``."""
    return row_for(model, activity)["A"]


def responsible(model: ClinicalModel | None, activity: str) -> list[str]:
    """The Responsible parties of ``activity`` for ``model``, first one first."""
    return list(row_for(model, activity)["R"])


# --- writing --------------------------------------------------------------------------------


def changed_cells(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each cell that differs between two stored matrices; a row absent is ``None`` (inherited)."""
    changes = []
    for activity in ACTIVITIES:
        old, new = before.get(activity), after.get(activity)
        if old == new:
            continue
        for letter in LETTERS:
            was = old.get(letter) if isinstance(old, Mapping) else None
            now = new.get(letter) if isinstance(new, Mapping) else None
            if was != now:
                changes.append({"activity": activity, "cell": letter, "before": was, "after": now})
    return changes


def _clean(entries: Any, reason: str) -> tuple[dict[str, Row], str]:
    errors: dict[str, Any] = dict(matrix_errors(entries))
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = "Say why the matrix changes (kept in its history)."
    elif len(reason) > REASON_MAX:
        errors["reason"] = f"At most {REASON_MAX} characters."
    if errors:
        raise ValidationError(errors)
    return normal_entries(entries), reason


def raci_save(*, actor: Any, model: ClinicalModel | None, entries: Any, reason: str) -> RaciMatrix:
    """Replace the rows ``model`` stores (``None``: the health-system default); rows left out
    inherit. Refused with per-row messages when invalid, and when nothing changes."""
    require_perms(actor, "governance.change_racimatrix")
    cleaned, reason = _clean(entries, reason)
    user = actor if actor is not None and actor.is_authenticated else None
    with transaction.atomic():
        locked = RaciMatrix.objects.select_for_update()
        scoped = locked.filter(model__isnull=True) if model is None else locked.filter(model=model)
        matrix = scoped.first()
        before = _stored(matrix)
        changes = changed_cells(before, cleaned)
        if not changes:
            raise ValidationError({"entries": "Nothing changed: the matrix is as it was."})
        matrix = matrix or RaciMatrix(model=model)
        matrix.entries, matrix.updated_at, matrix.updated_by = cleaned, timezone.now(), user
        matrix._history_user = user  # type: ignore[attr-defined]
        matrix._change_reason = reason  # type: ignore[attr-defined]
        try:
            with transaction.atomic():
                matrix.save()
        except IntegrityError as exc:  # another editor created this matrix a moment ago
            raise ValidationError(
                {"entries": "The matrix was saved by someone else just now: reload and retry."}
            ) from exc
        scope = model.slug if model is not None else "the health-system default"
        record(
            actor=actor,
            action="raci.save",
            summary=f"RACI for {scope}: {len(changes)} cell(s) changed: {reason}"[:300],
            target=matrix,
            payload={"model": model.slug if model is not None else None, "reason": reason,
                     "changes": changes},
        )  # fmt: skip
    return matrix


def _shown(value: Any) -> str | None:
    """A cell's value in words for the history; ``None`` for a row not stored (inherited)."""
    if value is None:
        return None
    parties = [value] if isinstance(value, str) else list(value)
    return ", ".join(party_label(p) for p in parties) or "nobody"


def raci_history(model: ClinicalModel | None) -> list[dict[str, Any]]:
    """Who changed which cells of the matrix, when and why: newest first."""
    matrix = matrix_of(model)
    if matrix is None:
        return []
    versions = list(matrix.history.select_related("history_user").order_by("history_date"))
    out, before = [], {}
    for version in versions:
        after = version.entries if isinstance(version.entries, dict) else {}
        out.append(
            {
                "at": version.history_date,
                "by": version.history_user.get_username() if version.history_user else "system",
                "reason": version.history_change_reason or "",
                "changes": [
                    c
                    | {
                        "label": ACTIVITIES.get(c["activity"], c["activity"]),
                        "before": _shown(c["before"]),
                        "after": _shown(c["after"]),
                    }
                    for c in changed_cells(before, after)
                ],
            }
        )
        before = after
    return out[::-1]
