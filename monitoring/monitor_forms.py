"""Forms of the monitoring pages: a reference upload and a model's monitoring policy.

The policy form has one row per metric of the catalogue (yellow, orange, red, minimum n),
filled with the values in force; only values that differ from the documented defaults are
saved as overrides, so the policy's history shows what was actually decided.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from monitoring.models import MonitorPolicy
from monitoring.thresholds import BAND_NAMES, DEFAULT_WINDOWS, LAYERS, METRICS

#: Service errors name their metric first ("psi: need yellow ≤ orange ≤ red.").
_METRIC_PREFIX = re.compile(r"^(?P<metric>[a-z0-9_]+): ")


class ReferenceUploadForm(forms.Form):
    file = forms.FileField(
        label="Reference data file",
        help_text="CSV or Parquet: one column per feature of the spec, score (0–1), label "
        "(0, 1 or blank), one column per cohort column, optionally site.",
        error_messages={"required": "Choose the file to upload."},
    )
    note = forms.CharField(
        label="Note",
        max_length=300,
        required=False,
        help_text="Optional: where the data comes from (kept with the profile).",
    )


def field_name(metric: str, part: str) -> str:
    return f"{metric}__{part}"


class MonitorPolicyForm(forms.Form):
    windows = forms.CharField(
        label="Windows (days)",
        help_text="Window lengths in days, separated by commas, e.g. 7, 30.",
    )
    launch_days = forms.IntegerField(
        label="Launch period (days)",
        help_text="Thresholds are tightened for this many days after a deployment starts at a "
        "site (0–730).",
    )
    sustained_windows = forms.IntegerField(
        label="Sustained after (evaluations)",
        help_text="A result worse than green this many evaluations in a row raises an alert even "
        "when its interval still reaches green (1–30).",
    )
    reason = forms.CharField(
        label="Reason for the change",
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Say why the policy changes (kept in its history)."},
    )

    def __init__(self, *args: Any, policy: MonitorPolicy | None = None, **kwargs: Any) -> None:
        own = (policy.thresholds if policy else {}) or {}
        mins = (policy.min_samples if policy else {}) or {}
        initial = {
            "windows": ", ".join(str(w) for w in (policy.windows if policy else DEFAULT_WINDOWS)),
            "launch_days": policy.launch_days if policy else 90,
            "sustained_windows": policy.sustained_windows if policy else 3,
        }
        for spec in METRICS.values():
            for band in BAND_NAMES:
                value = own.get(spec.name, {}).get(band, getattr(spec, band))
                initial[field_name(spec.name, band)] = value
            initial[field_name(spec.name, "min_n")] = mins.get(spec.name, spec.min_n)
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        for spec in METRICS.values():
            for band in BAND_NAMES:
                self.fields[field_name(spec.name, band)] = forms.FloatField(
                    label=f"{spec.label}: {band}",
                    min_value=0,
                    widget=forms.NumberInput(
                        attrs={"step": "any", "aria-label": f"{spec.label}: {band}"}
                    ),
                    error_messages={"required": f"Give the {band} threshold."},
                )
            self.fields[field_name(spec.name, "min_n")] = forms.IntegerField(
                label=f"{spec.label}: minimum n",
                min_value=0,
                widget=forms.NumberInput(attrs={"aria-label": f"{spec.label}: minimum n"}),
                error_messages={"required": "Give the minimum sample."},
            )

    def clean_windows(self) -> list[int]:
        text = self.cleaned_data["windows"]
        parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
        if not parts or not all(p.isdigit() for p in parts):
            raise ValidationError("List whole numbers of days separated by commas, e.g. 7, 30.")
        return [int(p) for p in parts]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for spec in METRICS.values():
            names = [field_name(spec.name, b) for b in BAND_NAMES]
            values = [cleaned.get(n) for n in names]
            if None in values:
                continue
            if not values[0] <= values[1] <= values[2]:
                self.add_error(names[2], "Need yellow ≤ orange ≤ red.")
        return cleaned

    def rows(self) -> list[dict[str, Any]]:
        """One row per metric, grouped by layer in the template."""
        out = []
        for layer in LAYERS:
            for spec in METRICS.values():
                if spec.layer != layer:
                    continue
                out.append(
                    {
                        "spec": spec,
                        "bands": [self[field_name(spec.name, b)] for b in BAND_NAMES],
                        "min_n": self[field_name(spec.name, "min_n")],
                        "defaults": [getattr(spec, b) for b in BAND_NAMES],
                    }
                )
        return out

    def overrides(self) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
        """(thresholds, min_samples): only the values that differ from the defaults."""
        thresholds: dict[str, dict[str, float]] = {}
        min_samples: dict[str, int] = {}
        for spec in METRICS.values():
            for band in BAND_NAMES:
                value = self.cleaned_data[field_name(spec.name, band)]
                if value != getattr(spec, band):
                    thresholds.setdefault(spec.name, {})[band] = value
            n = self.cleaned_data[field_name(spec.name, "min_n")]
            if n != spec.min_n:
                min_samples[spec.name] = n
        return thresholds, min_samples

    def add_service_errors(self, error: ValidationError) -> None:
        """Put ``monitor_policy_save``'s errors on their fields, a metric's on its row."""
        for key, messages in error.message_dict.items():
            for message in messages:
                match = _METRIC_PREFIX.match(message)
                part = "min_n" if key == "min_samples" else "red"
                target = field_name(match["metric"], part) if match else key
                self.add_error(target if target in self.fields else None, message)
