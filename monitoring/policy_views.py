"""Deferral policy pages: the policy in force in plain words with every earlier number, and the
edit form. Thin: every write goes through ``monitoring.policies.policy_create``, whose errors
come back inline (and, the service being atomic, nothing is half-saved)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.permissions import perms_required
from monitoring import policies, rules
from monitoring.gate import policy_in_force
from monitoring.models import DeferralPolicy
from registry.models import ModelVersion

EXAMPLE_EXCLUSIONS = [
    {
        "code": "paediatric",
        "text": "Under 18: the model was trained on adults only",
        "condition": {"feature": "age", "op": "lt", "value": 18},
    }
]
EXAMPLE_SAFETY_RULES = [
    {
        "code": "shock",
        "text": "Suspected shock: a clinician decides",
        "condition": {
            "any": [
                {"feature": "lactate", "op": "ge", "value": 4},
                {
                    "all": [
                        {"feature": "care_unit", "op": "in", "value": ["icu", "ed"]},
                        {"not": {"feature": "heart_rate", "op": "lt", "value": 130}},
                    ]
                },
            ]
        },
    }
]
_RULE_KEY = re.compile(r"(population_exclusions|safety_rules)(?:\[(\d+)\])?\.?(.*)")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


class RuleListField(forms.CharField):
    """A JSON list of rules typed into a textarea; the service checks each rule."""

    widget = forms.Textarea(attrs={"rows": 12, "class": "mono", "spellcheck": "false"})

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value).strip()
        if not text:
            return []
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from exc
        if not isinstance(parsed, list):
            raise ValidationError('A JSON list: [ {"code": …, "text": …, "condition": …} ].')
        return parsed


class PolicyForm(forms.Form):
    """Only the shapes are checked here (a number, JSON lists); the service checks the rest,
    so every rule error shows at once and reads the same as in the API."""

    min_confidence = forms.FloatField(
        label="Minimum confidence",
        required=False,
        widget=forms.NumberInput(attrs={"min": 0, "max": 1, "step": "any"}),
        help_text="Defer when the model's confidence is below this (0 to 1), or when the model "
        "sends none. Empty: no confidence rule.",
    )
    threshold_margin = forms.FloatField(
        label="Threshold margin",
        required=False,
        widget=forms.NumberInput(attrs={"min": 0, "max": 1, "step": "any"}),
        help_text="Defer when the score is within this distance of a decision threshold. "
        "Empty: no margin rule.",
    )
    population_exclusions = RuleListField(
        label="Outside the intended population",
        required=False,
        help_text="Cases the model was not built for. Empty: none.",
    )
    safety_rules = RuleListField(
        label="Safety rules",
        required=False,
        help_text="Conditions under which a clinician always decides. Empty: none.",
    )
    reason = forms.CharField(
        required=False,
        max_length=300,
        help_text="Required: why the rules change. Kept with this policy version and in the "
        "audit trail.",
    )
    based_on = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    def service_arguments(self) -> dict[str, Any]:
        return dict(self.cleaned_data)

    def add_service_errors(self, error: ValidationError) -> None:
        """Each error on the field it concerns; a rule's path says which rule and where."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error.messages)
            return
        for key, found in error.message_dict.items():
            match = _RULE_KEY.fullmatch(key)
            if match is None:
                self.add_error(key if key in self.fields else None, found)
                continue
            where = ", ".join(
                part for part in (f"rule {int(match[2]) + 1}" if match[2] else "", match[3]) if part
            )
            self.add_error(match[1], [f"{where}: {m}" if where else m for m in found])


def _initial(current: DeferralPolicy | None) -> dict[str, Any]:
    content = policies.content_of(current)
    return {
        "min_confidence": content["min_confidence"],
        "threshold_margin": content["threshold_margin"],
        "population_exclusions": _pretty(content["population_exclusions"]),
        "safety_rules": _pretty(content["safety_rules"]),
        "based_on": current.number if current else 0,
    }


def _get_version(slug: str, version: str) -> ModelVersion:
    return get_object_or_404(
        ModelVersion.objects.select_related("model"), model__slug=slug, version=version
    )


@dataclass(frozen=True)
class RuleInWords:
    code: str
    text: str
    words: str


@dataclass(frozen=True)
class Band:
    """Scores near one decision threshold that the margin defers."""

    name: str
    threshold: float
    low: float
    high: float


@dataclass(frozen=True)
class Entry:
    policy: DeferralPolicy
    changes: list[policies.Change]


def _in_words(rows: list[dict[str, Any]]) -> list[RuleInWords]:
    return [RuleInWords(r["code"], r["text"], rules.describe(r["condition"])) for r in rows]


def _bands(version: ModelVersion, margin: float | None) -> list[Band]:
    if margin is None:
        return []
    return [
        Band(str(name), value, round(max(value - margin, 0), 6), round(min(value + margin, 1), 6))
        for name, value in sorted((version.decision_thresholds or {}).items())
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]


def _entries(numbered: list[DeferralPolicy]) -> list[Entry]:
    """Newest first, each with what it changed in the number before it."""
    oldest_first = list(reversed(numbered))
    before = [None, *oldest_first][: len(oldest_first)]
    entries = [
        Entry(policy, policies.changes(policies.content_of(prev), policies.content_of(policy)))
        for prev, policy in zip(before, oldest_first, strict=True)
    ]
    return list(reversed(entries))


@perms_required("monitoring.view_deferralpolicy")
def detail(request: HttpRequest, slug: str, version: str) -> HttpResponse:
    found = _get_version(slug, version)
    numbered = list(
        DeferralPolicy.objects.filter(version=found)
        .select_related("created_by")
        .order_by("-number")
    )
    current = numbered[0] if numbered else None
    context = {
        "model": found.model,
        "version": found,
        "policy": current,
        "exclusions": _in_words(current.population_exclusions) if current else [],
        "safety_rules": _in_words(current.safety_rules) if current else [],
        "bands": _bands(found, current.threshold_margin if current else None),
        "entries": _entries(numbered),
    }
    return render(request, "monitoring/policy_detail.html", context)


@perms_required("monitoring.add_deferralpolicy")
def edit(request: HttpRequest, slug: str, version: str) -> HttpResponse:
    found = _get_version(slug, version)
    current = policy_in_force(found.pk)
    form = PolicyForm(request.POST if request.method == "POST" else None, initial=_initial(current))
    if form.is_bound and form.is_valid():
        try:
            policy = policies.policy_create(
                actor=request.user, version=found, **form.service_arguments()
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Deferral policy v{policy.number} is now in force.")
            return redirect("policies:detail", slug=slug, version=version)
    context = {
        "model": found.model,
        "version": found,
        "policy": current,
        "form": form,
        "features": found.features.order_by("name"),
        "example_exclusions": _pretty(EXAMPLE_EXCLUSIONS),
        "example_safety_rules": _pretty(EXAMPLE_SAFETY_RULES),
    }
    return render(request, "monitoring/policy_edit.html", context)
