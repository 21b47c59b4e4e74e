"""Release page forms: shape checks only; the services decide what is allowed."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from governance.models import EvidenceFile, ReleaseKind
from registry.models import ClinicalModel, Site

KINDS = [(k, label) for k, label in ReleaseKind.choices if k != ReleaseKind.ROLLBACK]


class ReleaseForm(forms.Form):
    model = forms.ModelChoiceField(queryset=ClinicalModel.objects.all(), to_field_name="slug")
    kind = forms.ChoiceField(choices=KINDS)
    title = forms.CharField(max_length=200)
    rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}))
    version = forms.CharField(
        required=False, max_length=40, help_text="Leave empty to keep the live version."
    )
    sites = forms.ModelMultipleChoiceField(
        queryset=Site.objects.filter(is_active=True), to_field_name="code",
        widget=forms.CheckboxSelectMultiple, required=False,
    )  # fmt: skip
    mapping_method = forms.ChoiceField(
        choices=[("", "none"), ("intercept", "intercept only"), ("logistic", "logistic")],
        required=False, label="Recalibration",
    )  # fmt: skip
    intercept = forms.FloatField(required=False)
    slope = forms.FloatField(required=False)
    thresholds = forms.CharField(
        required=False, label="Thresholds (JSON)", help_text='e.g. {"alert": 0.65}'
    )
    deferral_policy_number = forms.IntegerField(required=False, min_value=1)

    def clean_thresholds(self) -> dict[str, Any] | None:
        text = self.cleaned_data["thresholds"].strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}.") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError('Give an object, e.g. {"alert": 0.65}.')
        return value

    def content(self) -> dict[str, Any]:
        data = self.cleaned_data
        mapping = None
        if data.get("mapping_method"):
            mapping = {"method": data["mapping_method"], "intercept": data.get("intercept"),
                       "slope": data.get("slope")}  # fmt: skip
        return {
            "score_mapping": mapping,
            "thresholds": data.get("thresholds"),
            "deferral_policy_number": data.get("deferral_policy_number"),
        }


class CredentialsForm(forms.Form):
    username = forms.CharField(required=False, max_length=150)
    password = forms.CharField(widget=forms.PasswordInput, strip=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500)


class EvidenceForm(forms.Form):
    kind = forms.ChoiceField(choices=EvidenceFile.Kind.choices)
    file = forms.FileField()


class RollbackForm(forms.Form):
    sites = forms.ModelMultipleChoiceField(
        queryset=Site.objects.all(), to_field_name="code", widget=forms.CheckboxSelectMultiple
    )
    rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    incident = forms.IntegerField(required=False, min_value=1)
