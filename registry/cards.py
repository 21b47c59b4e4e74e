"""The model card: rendered from registry records, never typed twice.

``build_card(model)`` reads a ``ClinicalModel``, one of its versions and their related rows and
returns a frozen ``ModelCard``: sections → fields, each field with its label, the CHAI Applied
Model Card element name where there is one (see ../shared/MODEL_CARD.md), its value (text, a
list or a table) and whether it is missing. It writes nothing. The page, the JSON, Markdown and
XML exports (``registry.card_exports``) all render this one structure, so they cannot disagree.

Completeness counts fields: a field is filled when its value is non-empty. Percentages are
rounded down so a card never claims more than it holds.

Some fields have no registry record behind them yet and are always missing, with the reason in
``note``: relevance of the development data to the deployed setting, the deferral policy, local
(monitored) validity and fairness, and the signed releases behind the deployed version.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from registry.models import (
    ClinicalModel,
    Deployment,
    DeploymentMode,
    FeatureSpec,
    ModelVersion,
    VersionStatus,
)

# --- The structure ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


Value = str | tuple[str, ...] | Table | None


@dataclass(frozen=True)
class CardField:
    """One line of the card. ``note`` says why a missing field is missing, or, for a filled
    result, how to read it (rendered as the CHAI ``Interpretation``)."""

    key: str
    label: str
    chai: str
    value: Value
    missing: bool
    note: str = ""

    @property
    def kind(self) -> str:
        if isinstance(self.value, Table):
            return "table"
        if isinstance(self.value, tuple):
            return "list"
        return "text"


@dataclass(frozen=True)
class Completeness:
    filled: int
    total: int

    @property
    def percent(self) -> int:
        return math.floor(100 * self.filled / self.total) if self.total else 0


@dataclass(frozen=True)
class CardSection:
    key: str
    title: str
    fields: tuple[CardField, ...]

    @property
    def completeness(self) -> Completeness:
        return Completeness(sum(not f.missing for f in self.fields), len(self.fields))


@dataclass(frozen=True)
class ModelCard:
    slug: str
    name: str
    risk_tier: str
    version: str  # "" when the model has no version yet
    version_status: str
    sections: tuple[CardSection, ...]

    @property
    def completeness(self) -> Completeness:
        parts = [s.completeness for s in self.sections]
        return Completeness(sum(p.filled for p in parts), sum(p.total for p in parts))

    @property
    def missing_fields(self) -> tuple[CardField, ...]:
        return tuple(f for s in self.sections for f in s.fields if f.missing)

    def field(self, key: str) -> CardField:
        for section in self.sections:
            for item in section.fields:
                if item.key == key:
                    return item
        raise KeyError(key)


def _is_empty(value: Value) -> bool:
    if value is None:
        return True
    if isinstance(value, Table):
        return not value.rows
    if isinstance(value, tuple):
        return not any(item.strip() for item in value)
    return not value.strip()


def make_field(
    key: str, label: str, value: Value, *, chai: str = "", note: str = "", missing_note: str = ""
) -> CardField:
    """A field whose ``missing`` follows from its value; ``missing_note`` replaces ``note``
    when the value is empty."""
    if isinstance(value, str):
        value = value.strip()
    missing = _is_empty(value)
    if missing:
        return CardField(key, label, chai, None, True, missing_note)
    return CardField(key, label, chai, value, False, note)


def _attr(model: ClinicalModel, attr: str, label: str, chai: str = "") -> CardField:
    """A field shown as the model's own text attribute of the same name."""
    return make_field(attr, label, getattr(model, attr), chai=chai)


# --- Formatting -------------------------------------------------------------------------------

METRIC_LABELS = {
    "auroc": "AUROC",
    "auc": "AUROC",
    "c_statistic": "C-statistic",
    "auprc": "AUPRC",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV",
    "npv": "NPV",
    "f1": "F1",
    "calibration_slope": "Calibration slope",
    "calibration_intercept": "Calibration intercept (calibration-in-the-large)",
    "oe_ratio": "Observed / expected (O:E)",
    "ece": "Expected calibration error",
    "brier": "Brier score",
    "scaled_brier": "Scaled Brier score",
}
#: Metrics reported under calibration / safety; every other metric counts as discrimination.
CALIBRATION_METRICS = frozenset(
    {"calibration_slope", "calibration_intercept", "oe_ratio", "ece", "brier", "scaled_brier"}
)
#: The metric a subgroup gap is judged on, first one present wins.
PRIMARY_METRICS = ("auroc", "auc", "c_statistic", "auprc")


def metric_label(key: str) -> str:
    """``auroc`` → "AUROC"; ``ppv_at_alert`` → "PPV at alert"; unknown keys made readable."""
    if key in METRIC_LABELS:
        return METRIC_LABELS[key]
    head, _, rest = key.partition("_")
    if head in METRIC_LABELS and rest:
        return f"{METRIC_LABELS[head]} {rest.replace('_', ' ')}"
    return key.replace("_", " ").capitalize()


def _number(value: Any) -> str:
    """Metrics to three decimals below 1 (0.800, not 0.8), fewer above; counts with commas."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value) if value not in (None, "") else "—"
    if isinstance(value, int):
        return f"{value:,}"
    size = abs(value)
    if 0 < size < 0.01:
        return f"{value:.2g}"
    return f"{value:.3f}" if size < 1 else f"{value:.2f}" if size < 10 else f"{value:,.1f}"


def _interval(result: Mapping[str, Any]) -> str:
    low, high = result.get("ci_low"), result.get("ci_high")
    if low is None or high is None:
        return "—"
    negative = any(isinstance(v, int | float) and v < 0 for v in (low, high))
    return f"{_number(low)}{' to ' if negative else '–'}{_number(high)}"


def _results(raw: Any) -> dict[str, Mapping[str, Any]]:
    """``{metric: {"value", "ci_low", "ci_high", "n"}}`` with malformed entries dropped."""
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, Mapping) and "value" in v}


def _metric_row(metric: str, result: Mapping[str, Any]) -> tuple[str, ...]:
    return (
        metric_label(metric),
        _number(result.get("value")),
        _interval(result),
        _number(result.get("n")),
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _person(user: Any) -> str:
    return (user.get_full_name() or user.get_username()).strip()


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip(" -•\t") for line in text.splitlines() if line.strip(" -•\t"))


# --- Which version ----------------------------------------------------------------------------


def live_deployments(model: ClinicalModel) -> list[Deployment]:
    return list(
        model.deployments.filter(ended_at__isnull=True, mode=DeploymentMode.LIVE).select_related(
            "version", "site"
        )
    )


def default_card_version(model: ClinicalModel) -> ModelVersion | None:
    """The version a card describes unless asked otherwise: the live one (newest if several
    sites run different versions), else the newest approved, else the newest."""
    versions = model.versions.order_by("-created_at", "-pk")
    live_ids = {d.version_id for d in live_deployments(model)}
    if live_ids:
        return versions.filter(pk__in=live_ids).first()
    return versions.filter(status=VersionStatus.APPROVED).first() or versions.first()


# --- Sections ---------------------------------------------------------------------------------

NO_VERSION = "No version of this model is registered yet."


def _identity(model: ClinicalModel, version: ModelVersion | None) -> CardSection:
    owners = (
        f"Clinical owner: {_person(model.clinical_owner)}",
        f"Technical owner: {_person(model.technical_owner)}",
    )
    stage = f"Model {model.get_status_display().lower()}"
    release_date, artifact = "", ()
    if version is not None:
        live_sites = sorted(
            d.site.code for d in live_deployments(model) if d.version_id == version.pk
        )
        stage = f"Version {version.get_status_display().lower()}"
        if live_sites:
            stage += f", live at {', '.join(live_sites)}"
        stage += f"; model {model.get_status_display().lower()}"
        first = version.deployments.filter(mode=DeploymentMode.LIVE).order_by("started_at").first()
        release_date = first.started_at.date().isoformat() if first else ""
        artifact = (
            version.artifact_uri,
            f"sha256 {version.artifact_sha256}",
            f"code {version.code_ref}" if version.code_ref else "",
        )
    return CardSection(
        "identity",
        "Identity",
        (
            make_field("model_name", "Name", model.name, chai="ModelName"),
            _attr(model, "developer", "Developer", "ModelDeveloper"),
            _attr(model, "contact", "Contact for problems", "DeveloperContact"),
            make_field("owners", "Owners", owners),
            _attr(model, "funding_source", "Funding source", "FundingSource"),
            make_field("release_stage", "Release stage", stage, chai="ReleaseStage"),
            make_field(
                "release_date",
                "Release date (first live deployment)",
                release_date,
                chai="ReleaseDate",
                missing_note=NO_VERSION if version is None else "This version has never been live.",
            ),
            make_field(
                "release_version",
                "Release version",
                version.version if version else "",
                chai="ReleaseVersion",
                missing_note=NO_VERSION,
            ),
            make_field(
                "artifact", "Artifact", tuple(a for a in artifact if a), missing_note=NO_VERSION
            ),
            _attr(model, "regulatory_status", "Regulatory status", "RegulatoryApproval"),
            _attr(model, "ehr_compatibility", "EHR compatibility"),
        ),
    )


def _summary(model: ClinicalModel) -> CardSection:
    output = ""
    if model.output_type:
        output = model.get_output_type_display()
        if model.output_description.strip():
            output += f": {model.output_description.strip()}"
    keywords = tuple(k.strip() for k in model.keywords.split(",") if k.strip())
    return CardSection(
        "summary",
        "Summary",
        (
            _attr(model, "summary", "Summary", "Summary"),
            make_field("keywords", "Keywords", keywords, chai="Keywords"),
            make_field("output", "Output and its type", output, chai="OutcomesAndOutputs"),
            _attr(model, "model_type", "Model type", "ModelType"),
            _attr(model, "foundation_models", "Foundation models used"),
        ),
    )


def _uses(model: ClinicalModel) -> CardSection:
    return CardSection(
        "uses",
        "Uses and directions",
        (
            _attr(model, "intended_use", "Intended use and workflow", "IntendedUseAndWorkflow"),
            _attr(model, "intended_users", "Intended users", "PrimaryIntendedUsers"),
            make_field(
                "decision_role",
                "Decision role",
                model.get_decision_role_display() if model.decision_role else "",
            ),
            _attr(model, "how_to_use", "How to use", "HowToUse"),
            _attr(model, "intended_population", "Target population", "TargetedPatientPopulation"),
            _attr(model, "intended_setting", "Care setting"),
        ),
    )


def _warnings(model: ClinicalModel) -> CardSection:
    return CardSection(
        "warnings",
        "Warnings",
        (
            _attr(
                model, "exclusions", "Out-of-scope settings and uses", "CautionedOutOfScopeSettings"
            ),
            _attr(
                model,
                "known_limitations",
                "Known risks and limitations",
                "KnownRisksAndLimitations",
            ),
            _attr(
                model,
                "known_biases",
                "Known biases and ethical considerations",
                "KnownBiasesOrEthicalConsiderations",
            ),
            make_field(
                "risk_tier",
                "Clinical risk level",
                model.get_risk_tier_display(),
                chai="ClinicalRiskLevel",
            ),
        ),
    )


def _feeds(features: list[FeatureSpec]) -> tuple[str, ...]:
    seen: dict[int, list[str]] = {}
    feeds = {}
    for feature in features:
        if feature.feed is not None:
            feeds[feature.feed.pk] = feature.feed
            seen.setdefault(feature.feed.pk, []).append(feature.name)
    return tuple(
        f"{feed.name} ({feed.get_source_system_display()}; expected every "
        f"{feed.expected_cadence_minutes} min; owner {_person(feed.owner)}): "
        f"{', '.join(sorted(seen[pk]))}"
        for pk, feed in sorted(feeds.items(), key=lambda item: item[1].name)
    )


def _data_types(model: ClinicalModel, features: list[FeatureSpec]) -> str:
    if not features:
        return ""
    counts = Counter(f.get_dtype_display().lower() for f in features)
    kinds = ", ".join(f"{n} {dtype}" for dtype, n in counts.most_common())
    text = f"Inputs: {len(features)} structured features ({kinds})"
    if model.output_type:
        text += f". Output: {model.get_output_type_display().lower()}"
    return text + "."


def _share(value: Any) -> str:
    if isinstance(value, float) and 0 <= value <= 1:
        return f"{100 * value:.1f}%"
    return _number(value)


def _demographics(summary: Any) -> Table:
    """``demographics_summary`` as rows; ``{"attribute": {"group": share or count}}`` reads
    best, any other JSON is shown as it is."""
    rows: list[tuple[str, ...]] = []
    if isinstance(summary, Mapping):
        for attribute, groups in summary.items():
            if isinstance(groups, Mapping):
                rows.extend((str(attribute), str(g), _share(v)) for g, v in groups.items())
            else:
                rows.append((str(attribute), "", _share(groups)))
    return Table(("Attribute", "Group", "Share or count"), tuple(rows))


def _development(
    model: ClinicalModel, version: ModelVersion | None, features: list[FeatureSpec]
) -> CardSection:
    v = version
    window = (
        f"{v.training_window_start.isoformat()} to {v.training_window_end.isoformat()}" if v else ""
    )
    note = NO_VERSION if v is None else ""
    return CardSection(
        "development",
        "Development data",
        (
            make_field(
                "training_data_source",
                "Input data sources",
                v.training_data_source if v else "",
                chai="InputDataSource",
                missing_note=note,
            ),
            make_field(
                "input_feeds",
                "Live input feeds",
                _feeds(features),
                missing_note=note or "No feature is linked to a data feed.",
            ),
            make_field(
                "data_types",
                "Input and output data types",
                _data_types(model, features),
                chai="OutputAndInputDataTypes",
                missing_note=note,
            ),
            make_field("training_window", "Time window", window, missing_note=note),
            make_field(
                "training_set_size",
                "Size",
                f"{v.training_set_size:,} records" if v and v.training_set_size else "",
                missing_note=note,
            ),
            make_field(
                "inclusion_criteria",
                "Inclusion criteria",
                v.inclusion_criteria if v else "",
                missing_note=note,
            ),
            make_field(
                "exclusion_criteria",
                "Exclusion criteria",
                v.exclusion_criteria if v else "",
                missing_note=note,
            ),
            make_field(
                "label_definition",
                "Outcome (label) definition",
                v.label_definition if v else "",
                missing_note=note,
            ),
            make_field(
                "demographics",
                "Demographic representativeness",
                _demographics(v.demographics_summary) if v else None,
                chai="DevelopmentDataCharacterization",
                missing_note=note,
            ),
            make_field(
                "sensitive_variables",
                "Sensitive variables used as inputs",
                v.sensitive_variables if v else "",
                missing_note=note,
            ),
            make_field(
                "setting_relevance",
                "Relevance to the deployed setting",
                "",
                missing_note="The registry has no field for this yet.",
            ),
        ),
    )


def _subgroup_table(validation: Mapping[str, Any]) -> Table:
    subgroups = validation.get("subgroups")
    rows: list[tuple[str, ...]] = []
    if isinstance(subgroups, Mapping):
        for name, metrics in subgroups.items():
            rows.extend((str(name), *_metric_row(m, r)) for m, r in _results(metrics).items())
    return Table(("Subgroup", "Metric", "Value", "95% CI", "n"), tuple(rows))


def _fairness_note(validation: Mapping[str, Any]) -> str:
    """Where the primary metric is lowest across subgroups, against the overall value."""
    overall = _results(validation.get("overall"))
    raw = validation.get("subgroups")
    subgroups = {str(k): _results(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    for metric in PRIMARY_METRICS:
        values = {
            name: results[metric]["value"]
            for name, results in subgroups.items()
            if metric in results and isinstance(results[metric]["value"], int | float)
        }
        if not values:
            continue
        worst = min(values, key=lambda name: values[name])
        note = f"Lowest subgroup {metric_label(metric)}: {_number(values[worst])} ({worst})"
        reference = overall.get(metric, {}).get("value")
        if isinstance(reference, int | float):
            note += f" against {_number(reference)} overall"
        return note + f"; highest {_number(max(values.values()))}."
    return ""


def _fairness(model: ClinicalModel, validation: Mapping[str, Any], note: str) -> CardSection:
    return CardSection(
        "fairness",
        "Fairness",
        (
            _attr(model, "fairness_approach", "Approach to fairness"),
            _attr(model, "bias_mitigation", "Bias mitigation", "BiasMitigationApproaches"),
            make_field(
                "subgroup_results",
                "Results per subgroup",
                _subgroup_table(validation),
                chai="FairnessEquity",
                note=_fairness_note(validation),
                missing_note=note or "No per-subgroup results in the validation results.",
            ),
        ),
    )


def _overall_table(validation: Mapping[str, Any], *, calibration: bool) -> Table:
    overall = _results(validation.get("overall"))
    rows = tuple(
        _metric_row(metric, result)
        for metric, result in overall.items()
        if (metric in CALIBRATION_METRICS) == calibration
    )
    return Table(("Metric", "Value", "95% CI", "n"), rows)


def _overall_note(validation: Mapping[str, Any], *, calibration: bool) -> str:
    overall = _results(validation.get("overall"))
    ideal = {"calibration_slope": "1", "calibration_intercept": "0", "oe_ratio": "1", "ece": "0"}
    parts = []
    for metric, result in overall.items():
        if (metric in CALIBRATION_METRICS) != calibration:
            continue
        if metric in ideal:
            parts.append(
                f"{metric_label(metric)} {_number(result['value'])} (ideal {ideal[metric]})"
            )
        elif metric in ("auroc", "auc", "c_statistic"):
            parts.append(f"{metric_label(metric)} {_number(result['value'])} (0.5 is chance)")
    return "; ".join(parts) + ("." if parts else "")


def _validation(validation: Mapping[str, Any], note: str) -> CardSection:
    missing = note or "Not in the version's validation results."
    return CardSection(
        "validation",
        "Validation",
        (
            make_field(
                "validation_process",
                "Validation process: who tested, how",
                _text(validation.get("process")),
                chai="ValidationProcessAndJustification",
                missing_note=missing,
            ),
            make_field(
                "validation_dataset",
                "Testing data",
                _text(validation.get("dataset")),
                chai="TestingDataDescription",
                missing_note=missing,
            ),
            make_field(
                "test_type",
                "Test type (internal / external / temporal)",
                _text(validation.get("test_type")),
                chai="TestType",
                missing_note=missing,
            ),
            make_field(
                "discrimination",
                "Discrimination (overall)",
                _overall_table(validation, calibration=False),
                chai="UsefulnessUsabilityEfficacy",
                note=_overall_note(validation, calibration=False),
                missing_note=missing,
            ),
            make_field(
                "calibration",
                "Calibration (overall)",
                _overall_table(validation, calibration=True),
                chai="SafetyReliability",
                note=_overall_note(validation, calibration=True),
                missing_note=missing,
            ),
        ),
    )


def _deployment_table(model: ClinicalModel) -> Table:
    rows = []
    for d in model.deployments.select_related("site", "version").order_by("started_at", "pk"):
        state = "ended" if d.ended_at else ("frozen" if d.frozen else "running")
        rows.append(
            (
                d.site.code,
                d.version.version,
                d.get_mode_display(),
                d.started_at.date().isoformat(),
                d.ended_at.date().isoformat() if d.ended_at else "",
                state,
            )
        )
    return Table(("Site", "Version", "Mode", "Started", "Ended", "State"), tuple(rows))


NOT_MONITORED = "Not yet monitored: local results appear once Vigil's monitoring has run."


def _local(model: ClinicalModel) -> CardSection:
    return CardSection(
        "local",
        "Local performance",
        (
            make_field(
                "deployments",
                "Deployment history",
                _deployment_table(model),
                missing_note="Never deployed.",
            ),
            make_field(
                "local_validity",
                "Validity in this hospital's data, per site",
                None,
                missing_note=NOT_MONITORED,
            ),
            make_field(
                "local_fairness",
                "Fairness in this hospital's data, per cohort",
                None,
                missing_note=NOT_MONITORED,
            ),
        ),
    )


def _maintenance(model: ClinicalModel) -> CardSection:
    return CardSection(
        "maintenance",
        "Maintenance",
        (
            _attr(
                model,
                "monitoring_process",
                "Monitoring process and frequency",
                "OngoingMaintenance",
            ),
            _attr(
                model, "update_process", "Update process, frequency and time to correct problems"
            ),
            _attr(model, "change_control_plan", "Change-control plan"),
        ),
    )


def _allowed(feature: FeatureSpec) -> str:
    if feature.categories:
        return ", ".join(str(c) for c in feature.categories)
    if feature.min_value is None and feature.max_value is None:
        return ""
    low = "" if feature.min_value is None else f"{feature.min_value:g}"
    high = "" if feature.max_value is None else f"{feature.max_value:g}"
    return f"{low}–{high}"


def _feature_table(features: list[FeatureSpec]) -> Table:
    rows = tuple(
        (
            f.name,
            f.get_dtype_display().lower(),
            f.unit,
            _allowed(f),
            "yes" if f.required else "no",
            "yes" if f.missing_allowed else "no",
            f.feed.name if f.feed else "",
            f.description,
        )
        for f in features
    )
    return Table(
        ("Input", "Type", "Unit", "Allowed", "Required", "Missing allowed", "Feed", "Description"),
        rows,
    )


def _thresholds(version: ModelVersion | None) -> Table:
    items = (version.decision_thresholds or {}) if version else {}
    rows = (
        tuple((str(k), _number(v)) for k, v in items.items()) if isinstance(items, Mapping) else ()
    )
    return Table(("Threshold", "Score"), rows)


def _oversight(
    model: ClinicalModel, version: ModelVersion | None, features: list[FeatureSpec]
) -> CardSection:
    note = NO_VERSION if version is None else ""
    required = [f.name for f in features if f.required]
    return CardSection(
        "oversight",
        "Human oversight",
        (
            make_field(
                "decision_thresholds",
                "Decision thresholds",
                _thresholds(version),
                missing_note=note or "No decision thresholds recorded.",
            ),
            make_field(
                "deferral_rules",
                "Deferral rules and human review path",
                _deferral_rules(version),
                missing_note=note or "No deferral policy is recorded for this version yet.",
            ),
            _attr(model, "required_expertise", "Required user expertise"),
            _attr(model, "missing_input_handling", "Handling of missing or poor inputs"),
            make_field(
                "feature_spec",
                "Inputs (feature spec)",
                _feature_table(features),
                note=f"Required inputs: {', '.join(required)}." if required else "",
                missing_note=note or "No inputs declared.",
            ),
        ),
    )


def _evidence(model: ClinicalModel) -> CardSection:
    return CardSection(
        "evidence",
        "Evidence",
        (
            make_field(
                "publications",
                "Publications and evaluation references",
                _lines(model.publications),
                chai="PeerReviewedPublications",
            ),
            _attr(model, "clinical_trials", "Clinical trials", "ClinicalTrial"),
            _attr(
                model,
                "patient_disclosure",
                "Patient consent or disclosure",
                "PatientConsentOrDisclosure",
            ),
            _attr(
                model, "stakeholders_consulted", "Stakeholders consulted", "StakeholdersConsulted"
            ),
        ),
    )


def _deferral_rules(version: ModelVersion | None) -> tuple[str, ...]:
    """The version's deferral policy in force, in words (read through the reverse relation:
    the registry imports no monitoring code)."""
    if version is None:
        return ()
    policy = version.deferral_policies.order_by("-number").first()
    if policy is None:
        return ()
    lines = [f"Policy v{policy.number}: every deferred case opens a review case for a clinician "
             "at its site; a frozen deployment defers every case."]  # fmt: skip
    if policy.min_confidence is not None:
        floor = _number(policy.min_confidence)
        lines.append(f"Defer when the model's confidence is below {floor}.")
    if policy.threshold_margin is not None:
        lines.append(
            f"Defer when the score is within {_number(policy.threshold_margin)} of a threshold."
        )
    for rule in [*(policy.population_exclusions or []), *(policy.safety_rules or [])]:
        lines.append(f"Defer: {rule.get('text', rule.get('code', ''))}")
    return tuple(lines)


def _release_table(version: ModelVersion | None) -> Table:
    """Every signature of the releases that deployed this version: printed name, meaning and
    time, as signed (a voided one says so)."""
    rows: list[tuple[str, ...]] = []
    if version is not None:
        for release in version.releases.filter(status__in=("approved", "deployed")).order_by(
            "created_at"
        ):
            for sig in release.signatures.order_by("signed_at"):
                when = sig.signed_at.strftime("%Y-%m-%d %H:%M UTC")
                state = f"void: {sig.void_reason}" if sig.voided_at else sig.get_meaning_display()
                rows.append((f"R-{release.pk} {release.title}", sig.printed_name, state, when))
    return Table(("Release", "Signed by", "Meaning", "Signed at"), tuple(rows))


def _approvals(version: ModelVersion | None) -> CardSection:
    table = _release_table(version)
    return CardSection(
        "approvals",
        "Approvals",
        (
            make_field(
                "releases",
                "Signed releases behind this version (signer, meaning, time)",
                table if table.rows else None,
                missing_note="No signed release has approved this version yet.",
            ),
        ),
    )


def build_card(model: ClinicalModel, *, version: ModelVersion | None = None) -> ModelCard:
    """The card of ``model`` describing ``version`` (default: ``default_card_version``)."""
    if version is None:
        version = default_card_version(model)
    elif version.model_id != model.pk:
        raise ValueError(f"{version} is not a version of {model.slug}")
    features = list(version.features.select_related("feed", "feed__owner")) if version else []
    raw = version.validation_results if version else {}
    validation: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    note = NO_VERSION if version is None else ""
    sections = (
        _identity(model, version),
        _summary(model),
        _uses(model),
        _warnings(model),
        _development(model, version, features),
        _fairness(model, validation, note),
        _validation(validation, note),
        _local(model),
        _maintenance(model),
        _oversight(model, version, features),
        _evidence(model),
        _approvals(version),
    )
    return ModelCard(
        slug=model.slug,
        name=model.name,
        risk_tier=model.risk_tier,
        version=version.version if version else "",
        version_status=version.status if version else "",
        sections=sections,
    )


# --- Plain data (the JSON export) -------------------------------------------------------------


def _value_to_data(value: Value) -> Any:
    if isinstance(value, Table):
        return {"columns": list(value.columns), "rows": [list(r) for r in value.rows]}
    if isinstance(value, tuple):
        return list(value)
    return value


def _value_from_data(data: Any) -> Value:
    if isinstance(data, Mapping):
        return Table(tuple(data["columns"]), tuple(tuple(r) for r in data["rows"]))
    if isinstance(data, list):
        return tuple(data)
    return data


def _completeness_data(c: Completeness) -> dict[str, int]:
    return {"filled": c.filled, "total": c.total, "percent": c.percent}


def card_to_data(card: ModelCard) -> dict[str, Any]:
    """The card as JSON-ready data, completeness included (it is derived, so
    ``card_from_data`` ignores it)."""
    return {
        "slug": card.slug,
        "name": card.name,
        "risk_tier": card.risk_tier,
        "version": card.version,
        "version_status": card.version_status,
        "completeness": _completeness_data(card.completeness),
        "sections": [
            {
                "key": s.key,
                "title": s.title,
                "completeness": _completeness_data(s.completeness),
                "fields": [
                    {
                        "key": f.key,
                        "label": f.label,
                        "chai": f.chai,
                        "kind": f.kind,
                        "value": _value_to_data(f.value),
                        "missing": f.missing,
                        "note": f.note,
                    }
                    for f in s.fields
                ],
            }
            for s in card.sections
        ],
    }


def card_from_data(data: Mapping[str, Any]) -> ModelCard:
    return ModelCard(
        slug=data["slug"],
        name=data["name"],
        risk_tier=data["risk_tier"],
        version=data["version"],
        version_status=data["version_status"],
        sections=tuple(
            CardSection(
                s["key"],
                s["title"],
                tuple(
                    CardField(
                        f["key"],
                        f["label"],
                        f["chai"],
                        _value_from_data(f["value"]),
                        bool(f["missing"]),
                        f["note"],
                    )
                    for f in s["fields"]
                ),
            )
            for s in data["sections"]
        ),
    )


def chai_elements(card: ModelCard) -> Iterable[str]:
    return (f.chai for s in card.sections for f in s.fields if f.chai)
