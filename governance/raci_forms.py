"""The RACI grid as one server-rendered form: per activity an "inherit" box and four cells
(A a select, R, C and I multi-selects of roles and people), and the reason for the change.
The form only collects; ``governance.raci.raci_save`` validates and refuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.roles import HUMAN_ROLES
from governance import raci

Choices = list[tuple[str, Any]]


def field_key(activity: str) -> str:
    """A form-safe name: ``incidents.data_quality`` → ``incidents__data_quality``."""
    return activity.replace(".", "__")


def party_choices(extra: set[str] | frozenset[str] = frozenset()) -> Choices:
    """Roles, then active people; ``extra`` keeps parties a stored matrix names that are no
    longer selectable (an inactive person), so the validator, not the widget, refuses them."""
    roles = [(party, raci.party_label(party)) for party in (f"role:{r}" for r in HUMAN_ROLES)]
    people = [
        (raci.user_party(user), _person_label(user)) for user in raci.people().order_by("username")
    ]
    known = {value for value, _ in roles + people}
    stale = [(party, f"{party} (not selectable)") for party in sorted(extra - known)]
    return [("Roles", roles), ("People", people + stale)]


def _person_label(user: Any) -> str:
    full = user.get_full_name().strip()
    return f"{user.get_username()} ({full})" if full else user.get_username()


class PartyField(forms.ChoiceField):
    """A select of parties that leaves judging the value to ``governance.raci``'s validator,
    so an unknown role or a departed person gets the matrix's own message, on its cell."""

    def valid_value(self, value: Any) -> bool:
        return True


class PartiesField(forms.MultipleChoiceField):
    def valid_value(self, value: Any) -> bool:
        return True


@dataclass
class GridRow:
    """What the template draws for one activity."""

    activity: str
    key: str
    label: str
    inherit: forms.BoundField | None
    cells: list[forms.BoundField]
    effective: Mapping[str, Any]
    errors: list[str]

    @property
    def values(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Per cell, its parties with their labels (the read-only grid)."""
        out = []
        for letter in raci.LETTERS:
            value = self.effective[letter]
            parties = [value] if isinstance(value, str) else list(value)
            out.append((letter, [(p, raci.party_label(p)) for p in parties]))
        return out


class RaciGridForm(forms.Form):
    reason = forms.CharField(
        max_length=raci.REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why the matrix changes: kept in its history and the audit trail.",
    )

    def __init__(
        self,
        *args: Any,
        effective: Mapping[str, Mapping[str, Any]],
        is_default: bool,
        **kwargs: Any,
    ) -> None:
        self.effective = effective
        self.is_default = is_default
        self.row_errors: dict[str, list[str]] = {}
        named = {p for row in effective.values() for p in raci.parties_in(row)}
        choices = party_choices(named)
        initial = kwargs.setdefault("initial", {})
        super().__init__(*args, **kwargs)
        for activity, row in effective.items():
            key = field_key(activity)
            self.fields[f"{key}-inherit"] = forms.BooleanField(
                required=False,
                label="Built-in" if is_default else "Inherit",
            )
            self.fields[f"{key}-A"] = PartyField(
                required=False, choices=[("", "—"), *choices], label="Accountable"
            )
            for letter in ("R", "C", "I"):
                self.fields[f"{key}-{letter}"] = PartiesField(
                    required=False,
                    choices=choices,
                    label=raci.LETTER_NAMES[letter],
                    widget=forms.SelectMultiple(attrs={"size": 4}),
                )
            initial.setdefault(f"{key}-inherit", row["inherited"])
            for letter in raci.LETTERS:
                initial.setdefault(f"{key}-{letter}", row[letter])
        self.initial = initial

    def entries(self) -> dict[str, dict[str, Any]]:
        """The rows this matrix stores: every row not marked inherited, as entered."""
        out = {}
        for activity in self.effective:
            key = field_key(activity)
            if self.cleaned_data.get(f"{key}-inherit"):
                continue
            cell = {letter: self.cleaned_data.get(f"{key}-{letter}") for letter in raci.LETTERS}
            out[activity] = {"A": cell["A"] or "", **{x: list(cell[x] or []) for x in "RCI"}}
        return out

    def add_service_errors(self, exc: ValidationError) -> None:
        """Put ``raci_save``'s refusal on the cells and rows it names."""
        for name, messages in exc.message_dict.items():
            if name == "reason":
                self.add_error("reason", messages)
            elif name in self.effective:
                self.row_errors[name] = list(messages)
            else:
                self.add_error(None, messages)

    def mark_cells(self, cells: Mapping[str, Mapping[str, list[str]]]) -> None:
        """Errors per cell (``governance.raci.cell_errors``), shown under each select."""
        for activity, letters in cells.items():
            if activity not in self.effective:
                continue
            for letter, messages in letters.items():
                name = f"{field_key(activity)}-{letter}"
                if name in self.fields:
                    self.add_error(name, messages)
                else:
                    self.row_errors.setdefault(activity, []).extend(messages)

    def grid(self) -> list[GridRow]:
        rows = []
        for activity, row in self.effective.items():
            key = field_key(activity)
            rows.append(
                GridRow(
                    activity=activity,
                    key=key,
                    label=raci.ACTIVITIES[activity],
                    inherit=self[f"{key}-inherit"],
                    cells=[self[f"{key}-{letter}"] for letter in raci.LETTERS],
                    effective=row,
                    errors=self.row_errors.get(activity, []),
                )
            )
        return rows
