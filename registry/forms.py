"""Page forms of the registry. They validate for inline errors; they never save: every write
goes through ``registry.services``, whose ``ValidationError`` is mapped back onto the form."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.formsets import BaseFormSet, formset_factory
from django.forms.utils import pretty_name
from django.utils import timezone

from registry import selectors
from registry.models import (
    RESERVED_SLUGS,
    VERSION_TRANSITIONS,
    ClinicalModel,
    DataFeed,
    Deployment,
    FeatureType,
    ModelStatus,
    ModelVersion,
    RiskTier,
    Site,
    VersionStatus,
    feature_spec_errors,
)


def add_service_errors(form: forms.BaseForm, error: ValidationError) -> None:
    """Show a service's ``ValidationError`` on the form: on the field it names, else on top."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for key, messages in error.message_dict.items():
        form.add_error(key if key in form.fields else None, messages)


class Fieldsets:
    """Mixin: ``FIELDSETS = [(legend, [field names])]`` for templates to render in groups."""

    FIELDSETS: list[tuple[str, list[str]]] = []

    def fieldsets(self) -> Iterator[tuple[str, list[forms.BoundField]]]:
        for legend, names in self.FIELDSETS:
            bound = [self[name] for name in names if name in self.fields]  # type: ignore[index, attr-defined]
            if bound:
                yield legend, bound


# --- Inventory ------------------------------------------------------------------------------

class InventoryFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False)
    risk_tier = forms.ChoiceField(choices=[("", "Any tier"), *RiskTier.choices], required=False)
    status = forms.ChoiceField(choices=[("", "Any status"), *ModelStatus.choices], required=False)
    owner = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="Any owner",
        help_text="Clinical or technical owner.",
    )
    site = forms.ModelChoiceField(
        queryset=Site.objects.order_by("code"), required=False, empty_label="Any site",
        help_text="Live there now.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = selectors.model_owners()  # type: ignore[attr-defined]

    def filters(self) -> dict[str, Any]:
        """The valid filters (an invalid one is reported on the form and ignored)."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        return {
            "search": cleaned.get("q") or "",
            "risk_tier": cleaned.get("risk_tier") or "",
            "status": cleaned.get("status") or "",
            "owner": cleaned.get("owner"),
            "site": cleaned.get("site"),
        }


# --- Clinical models ------------------------------------------------------------------------

MODEL_FIELDSETS: list[tuple[str, list[str]]] = [
    ("Identity", [
        "name", "slug", "risk_tier", "status", "summary", "keywords", "developer", "contact",
        "funding_source", "regulatory_status", "ehr_compatibility", "model_type",
        "foundation_models", "output_type", "output_description",
    ]),
    ("Uses and directions", [
        "intended_use", "intended_users", "decision_role", "how_to_use", "intended_population",
        "intended_setting",
    ]),
    ("Warnings", ["exclusions", "known_limitations", "known_biases"]),
    ("Fairness", ["fairness_approach", "bias_mitigation"]),
    ("Maintenance", ["monitoring_process", "update_process", "change_control_plan"]),
    ("Human oversight", [
        "clinical_owner", "technical_owner", "required_expertise", "missing_input_handling",
    ]),
    ("Evidence", [
        "publications", "clinical_trials", "patient_disclosure", "stakeholders_consulted",
    ]),
]


class ClinicalModelForm(Fieldsets, forms.ModelForm):  # type: ignore[type-arg]
    """The model's scope, as ``services.model_register`` takes it."""

    FIELDSETS = MODEL_FIELDSETS

    class Meta:
        model = ClinicalModel
        fields = [name for _, names in MODEL_FIELDSETS for name in names]
        widgets = {
            name: forms.Textarea(attrs={"rows": 3})
            for name in (
                "summary", "intended_use", "intended_users", "how_to_use", "intended_population",
                "intended_setting",
                "exclusions", "known_limitations", "known_biases", "output_description",
                "fairness_approach", "bias_mitigation", "monitoring_process", "update_process",
                "change_control_plan", "required_expertise", "missing_input_handling",
                "publications", "clinical_trials", "patient_disclosure", "stakeholders_consulted",
            )
        }
        help_texts = {"slug": "Permanent identifier in URLs and the API, e.g. sepsis-ews."}
        labels = {
            "ehr_compatibility": "EHR compatibility",
            "exclusions": "Exclusions and out-of-scope uses",
            "patient_disclosure": "Patient consent or disclosure",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = [self.instance.clinical_owner_id, self.instance.technical_owner_id]
        for owner in ("clinical_owner", "technical_owner"):
            self.fields[owner].queryset = selectors.human_users(  # type: ignore[attr-defined]
                including=current
            )
            self.fields[owner].label_from_instance = _person  # type: ignore[attr-defined]

    def clean_slug(self) -> str:
        slug: str = self.cleaned_data["slug"]
        if slug in RESERVED_SLUGS:
            raise ValidationError(f"{slug!r} is a page of the registry; choose another slug.")
        return slug


class ClinicalModelEditForm(ClinicalModelForm):
    """Every scope field except the permanent slug, and why it changes."""

    reason = forms.CharField(
        label="Reason for change", max_length=300,
        help_text="Recorded in the model's history and the audit trail.",
    )

    class Meta(ClinicalModelForm.Meta):
        fields = [n for n in ClinicalModelForm.Meta.fields if n != "slug"]

    def changed_fields(self) -> dict[str, Any]:
        return {n: self.cleaned_data[n] for n in self.changed_data if n != "reason"}


def _person(user: Any) -> str:
    full = user.get_full_name()
    return f"{full} ({user.username})" if full else user.username


# --- Versions -------------------------------------------------------------------------------

class JSONObjectField(forms.CharField):
    """A JSON object typed into a textarea; empty means ``{}``."""

    widget = forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false"})

    def __init__(self, *, example: str, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(strip=True, **kwargs)
        self.widget.attrs["placeholder"] = example
        self.example = example

    def to_python(self, value: Any) -> dict[str, Any]:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return {}
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"This is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
            ) from exc
        if not isinstance(parsed, dict):
            raise ValidationError(f"Enter a JSON object in braces, e.g. {self.example}")
        return parsed

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return json.dumps(value, indent=2) if value else ""
        return value


class ModelVersionForm(Fieldsets, forms.ModelForm):  # type: ignore[type-arg]
    cohort_lines: list[tuple[int, dict[str, Any]]]

    """A version's lineage and evidence. ``cohorts`` is one column per line:
    ``name: value1, value2`` (no values = any value)."""

    FIELDSETS = [
        ("Artifact", ["version", "artifact_uri", "artifact_sha256", "code_ref"]),
        ("Training data", [
            "training_data_source", "training_window_start", "training_window_end",
            "training_set_size", "inclusion_criteria", "exclusion_criteria",
            "demographics_summary", "sensitive_variables", "label_definition",
        ]),
        ("Behaviour and evidence", ["parameters", "decision_thresholds", "validation_results"]),
    ]  # ``cohorts`` is rendered after the feature spec

    demographics_summary = JSONObjectField(example='{"female": 0.52, "age_median": 61}')
    parameters = JSONObjectField(example='{"n_estimators": 400, "max_depth": 6}')
    decision_thresholds = JSONObjectField(
        example='{"alert": 0.7}', help_text="Threshold name → a number between 0 and 1.",
    )
    validation_results = JSONObjectField(
        example='{"overall": {"auroc": {"value": 0.81, "ci_low": 0.78, "ci_high": 0.84, '
                '"n": 5000}}}',
        help_text='{"overall": {metric: {value, ci_low, ci_high, n}}, '
                  '"subgroups": {"sex=F": {metric: {...}}}, "process": "...", "dataset": "..."}',
    )
    cohorts = forms.CharField(
        label="One column per line", required=False,
        widget=forms.Textarea(attrs={
            "rows": 4, "class": "mono",
            "placeholder": "age_band: 18-39, 40-64, 65+\nsex: F, M\npayer",
        }),
        help_text="One per line: name: value1, value2 (leave out the values to accept any).",
    )

    class Meta:
        model = ModelVersion
        fields = [
            "version", "artifact_uri", "artifact_sha256", "code_ref", "training_data_source",
            "training_window_start", "training_window_end", "training_set_size",
            "inclusion_criteria", "exclusion_criteria", "demographics_summary",
            "sensitive_variables", "label_definition", "parameters", "decision_thresholds",
            "validation_results",
        ]
        widgets = {
            "training_window_start": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "training_window_end": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "training_data_source": forms.Textarea(attrs={"rows": 2}),
            "inclusion_criteria": forms.Textarea(attrs={"rows": 2}),
            "exclusion_criteria": forms.Textarea(attrs={"rows": 2}),
            "label_definition": forms.Textarea(attrs={"rows": 2}),
            "sensitive_variables": forms.Textarea(attrs={"rows": 2}),
        }

    def clean_version(self) -> str:
        version: str = self.cleaned_data["version"]
        if version == "new":
            raise ValidationError("'new' names the registration page; choose another version.")
        return version

    def clean_cohorts(self) -> list[tuple[int, dict[str, Any]]]:
        """``[(line number, {"name", "values"})]``; the line numbers place service errors."""
        parsed = []
        for number, line in enumerate(self.cleaned_data["cohorts"].splitlines(), start=1):
            if not line.strip():
                continue
            name, _, values = line.partition(":")
            if not name.strip():
                raise ValidationError(f"Line {number}: start with the column name, e.g. sex: F, M")
            parsed.append((number, {
                "name": name.strip(),
                "values": [v.strip() for v in values.split(",") if v.strip()],
            }))
        self.cohort_lines = parsed
        return parsed

    def version_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}

    def cohort_specs(self) -> list[dict[str, Any]]:
        return [spec for _, spec in self.cohort_lines]

    def add_cohort_error(self, index: int, field: str, messages: list[str]) -> None:
        number, spec = self.cohort_lines[index]
        for message in messages:
            self.add_error("cohorts", f"Line {number} ({spec['name']}, {field}): {message}")


#: Fields that make a feature row "filled in"; the two checkboxes alone do not.
FEATURE_CONTENT_FIELDS = ("name", "dtype", "unit", "min_value", "max_value", "categories",
                          "description", "feed")


class FeatureSpecForm(forms.Form):
    """One row of the feature spec. ``categories`` is comma-separated text."""

    name = forms.CharField(max_length=100)
    dtype = forms.ChoiceField(label="Type", choices=[("", "—"), *FeatureType.choices])
    unit = forms.CharField(max_length=40, required=False)
    min_value = forms.FloatField(label="Min", required=False)
    max_value = forms.FloatField(label="Max", required=False)
    categories = forms.CharField(required=False, help_text="Comma-separated, categorical only.")
    required = forms.BooleanField(required=False, initial=True)
    missing_allowed = forms.BooleanField(label="Missing allowed", required=False)
    description = forms.CharField(max_length=300, required=False)
    feed = forms.ModelChoiceField(queryset=DataFeed.objects.order_by("name"), required=False,
                                  empty_label="—")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():  # the column header is the visible label
            field.widget.attrs["aria-label"] = str(field.label or pretty_name(name))

    def has_changed(self) -> bool:
        # A blank extra row (checkboxes at their defaults or not) is skipped, not validated.
        return any(name in self.changed_data for name in FEATURE_CONTENT_FIELDS)

    def clean_categories(self) -> list[str]:
        return [c.strip() for c in self.cleaned_data["categories"].split(",") if c.strip()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        errors = feature_spec_errors(
            dtype=cleaned["dtype"], min_value=cleaned.get("min_value"),
            max_value=cleaned.get("max_value"), categories=cleaned.get("categories", []),
            required=cleaned.get("required", False),
            missing_allowed=cleaned.get("missing_allowed", False),
        )
        for field, message in errors.items():
            self.add_error(field if field in self.fields else None, message)
        return cleaned


class BaseFeatureSpecFormSet(BaseFormSet):  # type: ignore[type-arg]
    def filled_forms(self) -> list[FeatureSpecForm]:
        """The rows that were filled in, in order: ``features[i]`` of the service is row i."""
        return [form for form in self.forms if form.has_changed()]

    def clean(self) -> None:
        if not any(self.errors) and not self.filled_forms():
            raise ValidationError("Declare at least one input feature.")

    def feature_specs(self) -> list[dict[str, Any]]:
        return [dict(form.cleaned_data) for form in self.filled_forms()]

    def add_non_form_error(self, messages: list[str]) -> None:
        self.non_form_errors().extend(messages)


_ROW_KEY = re.compile(r"^(features|cohorts)\[(\d+)\]\.(\w+)$")


class VersionRegistration:
    """The version form, its feature rows and cohort lines, validated and mapped together."""

    def __init__(self, model: ClinicalModel, data: Any = None, extra_rows: int = 8) -> None:
        self.model = model
        self.form = ModelVersionForm(data, instance=ModelVersion(model=model))
        formset_class = formset_factory(
            FeatureSpecForm, formset=BaseFeatureSpecFormSet, extra=extra_rows
        )
        self.features = formset_class(data, prefix="features")

    @property
    def is_bound(self) -> bool:
        return self.form.is_bound

    def is_valid(self) -> bool:
        form_ok = self.form.is_valid()
        return self.features.is_valid() and form_ok

    def service_arguments(self) -> dict[str, Any]:
        """``fields``, ``features`` and ``cohorts`` for ``services.version_register``."""
        return {
            "fields": self.form.version_fields(),
            "features": self.features.feature_specs(),
            "cohorts": self.form.cohort_specs(),
        }

    def add_service_errors(self, error: ValidationError) -> None:
        """Put each ``features[i].field`` / ``cohorts[i].field`` error on its row or line."""
        if not hasattr(error, "error_dict"):
            add_service_errors(self.form, error)
            return
        rows = self.features.filled_forms()
        for key, messages in error.message_dict.items():
            match = _ROW_KEY.match(key)
            if key == "features":
                self.features.add_non_form_error(messages)
            elif match and match[1] == "features" and int(match[2]) < len(rows):
                row = rows[int(match[2])]
                row.add_error(match[3] if match[3] in row.fields else None, messages)
            elif match and match[1] == "cohorts":
                self.form.add_cohort_error(int(match[2]), match[3], messages)
            else:
                add_service_errors(self.form, ValidationError({key: messages}))


class VersionTransitionForm(forms.Form):
    to_status = forms.ChoiceField(label="New status")
    reason = forms.CharField(max_length=300, help_text="Recorded in the history and audit trail.")

    def __init__(self, *args: Any, version: ModelVersion, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        allowed = VERSION_TRANSITIONS[version.status] - {VersionStatus.DEPLOYED}
        # Only the moves this user may make: approval is the medical director's.
        if not user.has_perm("registry.approve_modelversion"):
            allowed -= {VersionStatus.APPROVED}
        if not user.has_perm("registry.change_modelversion"):
            allowed &= {VersionStatus.APPROVED}
        self.fields["to_status"].choices = [
            (value, label) for value, label in VersionStatus.choices if value in allowed
        ]


# --- Deployments ----------------------------------------------------------------------------

class DeploymentFreezeForm(forms.Form):
    """Freeze (every case deferred to a human) or unfreeze one running deployment."""

    frozen = forms.TypedChoiceField(
        choices=[("1", "Freeze"), ("0", "Unfreeze")], coerce=lambda v: v == "1",
        widget=forms.HiddenInput,
    )
    reason = forms.CharField(max_length=300)

    def __init__(self, *args: Any, deployment: Deployment, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"frozen": "0" if deployment.frozen else "1"})
        super().__init__(*args, prefix=f"deployment-{deployment.pk}", **kwargs)
        self.deployment = deployment


class UTCDateTimeField(forms.DateTimeField):
    """A moment typed without a zone is read as UTC, whatever the active time zone."""

    def to_python(self, value: Any) -> datetime | None:
        with timezone.override(UTC):
            return super().to_python(value)

    def prepare_value(self, value: Any) -> Any:
        with timezone.override(UTC):
            return super().prepare_value(value)


class LiveQueryForm(forms.Form):
    """Which version was live for a model at a site at a moment."""

    model = forms.ModelChoiceField(
        queryset=ClinicalModel.objects.order_by("name"), to_field_name="slug"
    )
    site = forms.ModelChoiceField(queryset=Site.objects.order_by("code"), to_field_name="code")
    at = UTCDateTimeField(
        label="Moment (UTC)",
        widget=forms.DateTimeInput(
            attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S"
        ),
    )


# --- Sites and feeds ------------------------------------------------------------------------

class SiteForm(forms.Form):
    code = forms.CharField(
        max_length=40, help_text="Short code model services send, e.g. NORTH."
    )
    name = forms.CharField(max_length=200)


class DataFeedForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = DataFeed
        fields = [
            "slug", "name", "source_system", "expected_cadence_minutes", "owner", "description",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = selectors.human_users()  # type: ignore[attr-defined]
        self.fields["owner"].label_from_instance = _person  # type: ignore[attr-defined]
