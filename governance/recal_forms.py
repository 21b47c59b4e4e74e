"""Forms of the update-policy and recommendation pages. They only check shapes; the services in
``governance.recalibration`` decide."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from governance.recalibration import TRIGGERS, window_default
from registry.models import Site


def release_proposers() -> QuerySet[Any]:
    """Active people whose role may propose a release (so may own retraining)."""
    by_group = Q(groups__permissions__codename="add_release") & Q(
        groups__permissions__content_type__app_label="governance"
    )
    by_user = Q(user_permissions__codename="add_release") & Q(
        user_permissions__content_type__app_label="governance"
    )
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(by_group | by_user)
        .distinct()
        .order_by("username")
    )


class UpdatePolicyForm(forms.Form):
    triggers = forms.MultipleChoiceField(
        choices=list(TRIGGERS.items()),
        widget=forms.CheckboxSelectMultiple,
        help_text="The events that call for a review of the model; say what sets each off.",
    )
    retraining_owner = forms.ModelChoiceField(queryset=None)  # type: ignore[arg-type]
    validation_requirements = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    approval_gates = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    permitted_data = forms.CharField(
        label="Data that may be used", widget=forms.Textarea(attrs={"rows": 3})
    )
    leakage_controls = forms.CharField(
        label="How leakage is avoided", widget=forms.Textarea(attrs={"rows": 3})
    )
    min_window_events = forms.IntegerField(
        label="Minimum labelled cases in a window",
        initial=100,
        help_text="Below this a recommendation answers “too few labelled cases”.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["retraining_owner"].queryset = release_proposers()
        for key, label in TRIGGERS.items():
            self.fields[f"note_{key}"] = forms.CharField(
                label=f"What sets off: {label.split(' (')[0].lower()}",
                required=False,
                max_length=1000,
            )

    @classmethod
    def initial_from(cls, policy: Any) -> dict[str, Any]:
        if policy is None:
            return {}
        initial: dict[str, Any] = {
            "triggers": list(policy.triggers),
            "retraining_owner": policy.retraining_owner_id,
            "validation_requirements": policy.validation_requirements,
            "approval_gates": policy.approval_gates,
            "permitted_data": policy.permitted_data,
            "leakage_controls": policy.leakage_controls,
            "min_window_events": policy.min_window_events,
        }
        initial.update({f"note_{k}": note for k, note in policy.triggers.items()})
        return initial

    def policy_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        out = {k: v for k, v in data.items() if not k.startswith("note_")}
        out["triggers"] = {k: data.get(f"note_{k}", "") for k in data["triggers"]}
        return out


class WindowForm(forms.Form):
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    site = forms.ModelChoiceField(
        queryset=Site.objects.filter(is_active=True),
        required=False,
        empty_label="All sites running the version",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        start, end = window_default()
        self.fields["start"].initial = start
        self.fields["end"].initial = end


class ProposeForm(forms.Form):
    incident = forms.IntegerField(
        label="Incident number", required=False, min_value=1, help_text="If an incident led here."
    )


class ThresholdForm(WindowForm):
    rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=4000)
    incident = forms.IntegerField(label="Incident number", required=False, min_value=1)

    def __init__(self, *args: Any, thresholds: dict[str, float], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, value in thresholds.items():
            self.fields[f"threshold_{name}"] = forms.FloatField(
                label=f"Threshold “{name}” (now {value:g})",
                min_value=0,
                max_value=1,
                initial=value,
            )

    def thresholds(self) -> dict[str, float]:
        return {
            k.removeprefix("threshold_"): v
            for k, v in self.cleaned_data.items()
            if k.startswith("threshold_")
        }
