"""Forms of the review pages. They only check shapes; ``governance.reviews`` decides."""

from __future__ import annotations

from typing import Any

from django import forms

from governance.models import ActionItem
from governance.reviews import CADENCE_LIMITS

DATE = forms.DateInput(attrs={"type": "date"})


class ScheduleForm(forms.Form):
    cadence_days = forms.IntegerField(
        label="Every (days)", min_value=CADENCE_LIMITS[0], max_value=CADENCE_LIMITS[1]
    )
    next_due = forms.DateField(label="Next review due", widget=DATE)
    reason = forms.CharField(max_length=500, help_text="Why the schedule changes (audited).")


class PlanForm(forms.Form):
    scheduled_for = forms.DateField(label="Meeting date", widget=DATE)


class MinutesForm(forms.Form):
    held_on = forms.DateField(
        label="Held on", widget=DATE, required=False, help_text="Empty: today."
    )
    attendees = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="Who attended, with their roles.",
    )
    minutes = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), required=False)
    decisions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text="One decision per line, short.",
    )

    def decision_list(self) -> list[str]:
        text = self.cleaned_data.get("decisions") or ""
        return [line.strip() for line in text.splitlines() if line.strip()]


class ActionRowForm(forms.Form):
    """One action item; blank rows are ignored, partly filled ones refused by the service."""

    text = forms.CharField(max_length=500, required=False, label="Action")
    owner = forms.CharField(max_length=150, required=False, help_text="username")
    due = forms.DateField(required=False, widget=DATE)


ActionFormSet = forms.formset_factory(ActionRowForm, extra=4, max_num=20)
ACTIONS_PREFIX = "actions"


def action_rows(formset: Any) -> list[dict[str, Any]]:
    """Every row in formset order (blank ones too), so the service's error keys
    ``actions-<i>-<field>`` point back at the row the user typed."""
    return [
        {k: form.cleaned_data.get(k) for k in ("text", "owner", "due")} for form in formset.forms
    ]


class CloseActionForm(forms.Form):
    status = forms.ChoiceField(
        choices=[
            (ActionItem.Status.DONE, "Done"),
            (ActionItem.Status.CANCELLED, "Cancelled"),
        ]
    )
    note = forms.CharField(max_length=500, required=False, help_text="Needed when cancelling.")
