"""Forms of the incident pages. They only check shapes; the services decide."""

from __future__ import annotations

from typing import Any

from django import forms

from incidents.services import INCIDENT_ROLES as ROLE_LABELS
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


# --- runbooks --------------------------------------------------------------------------------


def steps_as_text(steps: Any) -> str:
    """Runbook steps in the edit format: one step per line, ``title | evidence``."""
    return "\n".join(f"{s.get('title', '')} | {s.get('evidence', '')}" for s in steps or [])


class RunbookForm(forms.Form):
    title = forms.CharField(max_length=200)
    steps = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "cols": 100}),
        help_text="One step per line: title | evidence the step needs. At most 20 steps.",
    )
    reason = forms.CharField(max_length=500, help_text="Why it changes (kept in its history).")

    def clean_steps(self) -> list[dict[str, str]]:
        steps, errors = [], []
        lines = [line for line in self.cleaned_data["steps"].splitlines() if line.strip()]
        for number, line in enumerate(lines, start=1):
            title, bar, evidence = line.partition("|")
            if not bar:
                errors.append(f"Line {number}: write the step as “title | evidence”.")
            elif not title.strip() or not evidence.strip():
                part = "title" if not title.strip() else "evidence"
                errors.append(f"Line {number}: the {part} is blank.")
            steps.append({"title": title.strip(), "evidence": evidence.strip()})
        if not steps:
            errors.append("Give at least one step.")
        if errors:
            raise forms.ValidationError(errors)
        return steps


class RunbookCreateForm(RunbookForm):
    layer = forms.ChoiceField(choices=[])
    metric = forms.CharField(max_length=60, help_text="A metric of that layer: psi, auc, …")
    field_order = ["layer", "metric", "title", "steps", "reason"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from monitoring.models import Layer

        super().__init__(*args, **kwargs)
        self.fields["layer"].choices = Layer.choices  # type: ignore[attr-defined]


# --- roles and drills ------------------------------------------------------------------------

INCIDENT_ROLES = tuple(ROLE_LABELS.items())


class AssignForm(forms.Form):
    role = forms.ChoiceField(choices=INCIDENT_ROLES)
    username = forms.CharField(max_length=150)


class DrillForm(forms.Form):
    version = forms.ModelChoiceField(queryset=None, label="Model version")  # type: ignore[arg-type]
    slice_key = forms.CharField(
        max_length=200, initial="all", label="Slice", help_text="all, site=CODE or column=value"
    )
    metric = forms.CharField(max_length=160, help_text="e.g. missing_rate:lactate, auc, psi:age")
    band = forms.ChoiceField(choices=[("red", "Red"), ("orange", "Orange")])
    scenario = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=300,
        help_text="What the team rehearses.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from registry.models import ModelVersion

        super().__init__(*args, **kwargs)
        self.fields["version"].queryset = (  # type: ignore[attr-defined]
            ModelVersion.objects.select_related("model").order_by("model__slug", "version")
        )
