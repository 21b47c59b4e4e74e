"""Forms of the incident pages. They only check shapes; the services decide."""

from __future__ import annotations

from typing import Any

from django import forms

from registry.models import Deployment


class SuppressForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text="Why this is noise (audited).")
    days = forms.IntegerField(min_value=1, max_value=90, initial=7)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)


class MergeForm(ReasonForm):
    into = forms.IntegerField(label="Into incident number", min_value=1)


class EvidenceForm(forms.Form):
    evidence = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=4000)


class ImpactForm(forms.Form):
    assessment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=4000,
        help_text="Who may have been affected, how, and what was checked.",
    )
    harm_found = forms.BooleanField(required=False, label="Harm found")


class ReviewForm(forms.Form):
    summary = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=4000)


class CorrectiveActionForm(forms.Form):
    action = forms.CharField(max_length=500)
    owner = forms.CharField(max_length=150)
    due = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))


CorrectiveActionFormSet = forms.formset_factory(CorrectiveActionForm, extra=3)


class _DeploymentForm(forms.Form):
    deployment = forms.ModelChoiceField(queryset=Deployment.objects.none())
    reason = forms.CharField(max_length=300)

    def __init__(self, *args: Any, deployments: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if deployments is not None:
            self.fields["deployment"].queryset = deployments  # type: ignore[attr-defined]


class FreezeForm(_DeploymentForm):
    pass


class UnfreezeForm(_DeploymentForm):
    password = forms.CharField(
        widget=forms.PasswordInput, help_text="Re-enter your password to put the model back."
    )
