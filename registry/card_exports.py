"""Model card exports: JSON (the card structure), Markdown, and CHAI-style XML.

Each renders a ``registry.cards.ModelCard`` and nothing else, so the exports and the page
always agree. The XML uses the CHAI Applied Model Card element names for the fields that have
one, grouped as the CHAI card groups them; the schema itself is not copied (CC BY-ND). Fields
without a CHAI element, and the completeness figures, go under ``VigilExtensions``. A missing
field is an empty element with ``missing="true"`` and the reason, never left out.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from registry.cards import CardField, Completeness, ModelCard, Table, Value, card_to_data

# --- Text -------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def table_markdown(table: Table) -> str:
    lines = [
        "| " + " | ".join(_cell(c) for c in table.columns) + " |",
        "|" + "|".join(" --- " for _ in table.columns) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def value_text(value: Value) -> str:
    """A value as Markdown text (CHAI text elements accept Markdown)."""
    if value is None:
        return ""
    if isinstance(value, Table):
        return table_markdown(value)
    if isinstance(value, tuple):
        return "\n".join(f"- {item}" for item in value)
    return value


# --- JSON -------------------------------------------------------------------------------------


def card_json(card: ModelCard) -> str:
    return json.dumps(card_to_data(card), indent=2, ensure_ascii=False) + "\n"


# --- Markdown ---------------------------------------------------------------------------------


def _completeness_text(c: Completeness) -> str:
    return f"{c.filled} of {c.total} fields ({c.percent}%)"


def _field_markdown(field: CardField) -> str:
    head = f"**{field.label}**" + (f" · CHAI `{field.chai}`" if field.chai else "")
    if field.missing:
        return f"{head}\n\n**MISSING** — {field.note or 'no data recorded.'}"
    body = f"{head}\n\n{value_text(field.value)}"
    if field.note:
        body += f"\n\n_{field.note}_"
    return body


def card_markdown(card: ModelCard) -> str:
    version = (
        f"version **{card.version}** ({card.version_status})" if card.version else "no version"
    )
    parts = [
        f"# Model card: {card.name}",
        f"`{card.slug}` · {version} · clinical risk tier: {card.risk_tier} · "
        f"completeness {_completeness_text(card.completeness)}",
        "> Rendered by Vigil from the registry's records. Fields marked **MISSING** have no data.",
    ]
    for section in card.sections:
        parts.append(f"## {section.title}")
        parts.append(f"_Completeness: {_completeness_text(section.completeness)}_")
        parts.extend(_field_markdown(f) for f in section.fields)
    return "\n\n".join(parts) + "\n"


# --- XML --------------------------------------------------------------------------------------

#: Where each CHAI element sits, as the CHAI applied model card groups them.
CHAI_GROUPS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("BasicInfo",), ("ModelName", "ModelDeveloper", "DeveloperContact")),
    (("ReleaseInfo",), ("ReleaseStage", "ReleaseDate", "ReleaseVersion", "RegulatoryApproval")),
    (("ModelSummary",), ("Summary", "Keywords")),
    (
        ("UsesAndDirections",),
        (
            "IntendedUseAndWorkflow",
            "PrimaryIntendedUsers",
            "HowToUse",
            "TargetedPatientPopulation",
            "CautionedOutOfScopeSettings",
        ),
    ),
    (
        ("Warnings",),
        ("KnownRisksAndLimitations", "KnownBiasesOrEthicalConsiderations", "ClinicalRiskLevel"),
    ),
    (
        ("TrustIngredients", "AISystemFacts"),
        (
            "OutcomesAndOutputs",
            "ModelType",
            "InputDataSource",
            "OutputAndInputDataTypes",
            "DevelopmentDataCharacterization",
            "BiasMitigationApproaches",
            "OngoingMaintenance",
        ),
    ),
    (("TrustIngredients", "TransparencyInformation"), ("FundingSource", "StakeholdersConsulted")),
    (("Resources",), ("PeerReviewedPublications", "ClinicalTrial", "PatientConsentOrDisclosure")),
)

#: KeyMetrics: each CHAI metric family, and the card field holding its results.
KEY_METRICS: tuple[tuple[str, str, str], ...] = (
    (
        "UsefulnessUsabilityEfficacy",
        "discrimination",
        "Discrimination: does the score rank patients who have the outcome above those who do not?",
    ),
    (
        "FairnessEquity",
        "subgroup_results",
        "Equity: does discrimination hold in every subgroup the version is monitored by?",
    ),
    (
        "SafetyReliability",
        "calibration",
        "Calibration: do predicted risks match observed rates, so thresholds act as intended?",
    ),
)
#: The KeyMetrics children shared by every family, and the card field each comes from.
KEY_METRIC_SHARED = (
    ("TestType", "test_type"),
    ("TestingDataDescription", "validation_dataset"),
    ("ValidationProcessAndJustification", "validation_process"),
)

# Characters XML 1.0 cannot carry at all, even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", text)


def _element(parent: ET.Element, tag: str, field: CardField, *, text: str | None = None) -> None:
    node = ET.SubElement(parent, tag)
    if field.missing:
        node.set("missing", "true")
        if field.note:
            node.set("reason", _xml_text(field.note))
        return
    node.text = _xml_text(value_text(field.value) if text is None else text)


def _path(root: ET.Element, tags: tuple[str, ...]) -> ET.Element:
    node = root
    for tag in tags:
        found = node.find(tag)
        node = found if found is not None else ET.SubElement(node, tag)
    return node


def _key_metrics(root: ET.Element, fields: dict[str, CardField]) -> None:
    metrics = ET.SubElement(root, "KeyMetrics")
    for tag, key, goal in KEY_METRICS:
        family = ET.SubElement(metrics, tag)
        ET.SubElement(family, "MetricGoal").text = goal
        result = fields[key]
        _element(family, "Result", result)
        interpretation = ET.SubElement(family, "Interpretation")
        if result.missing or not result.note:
            interpretation.set("missing", "true")
        else:
            interpretation.text = _xml_text(result.note)
        for child, shared in KEY_METRIC_SHARED:
            _element(family, child, fields[shared])


def _completeness(parent: ET.Element, c: Completeness, **attrs: str) -> None:
    ET.SubElement(
        parent,
        "Completeness",
        {**attrs, "filled": str(c.filled), "total": str(c.total), "percent": str(c.percent)},
    )


def _extensions(root: ET.Element, card: ModelCard) -> None:
    extensions = ET.SubElement(root, "VigilExtensions")
    _completeness(extensions, card.completeness)
    for section in card.sections:
        node = ET.SubElement(extensions, "Section", {"key": section.key, "title": section.title})
        _completeness(node, section.completeness)
        for field in section.fields:
            if field.chai:
                continue
            item = ET.SubElement(node, "Field", {"key": field.key, "label": field.label})
            if field.missing:
                item.set("missing", "true")
                item.set("reason", _xml_text(field.note))
            else:
                item.text = _xml_text(value_text(field.value))
                if field.note:
                    item.set("note", _xml_text(field.note))


def card_xml(card: ModelCard) -> bytes:
    fields = {f.key: f for s in card.sections for f in s.fields}
    by_chai = {f.chai: f for f in fields.values() if f.chai}
    root = ET.Element(
        "AppliedModelCard",
        {
            "generator": "Vigil",
            "slug": card.slug,
            "version": card.version,
        },
    )
    for group, names in CHAI_GROUPS:
        parent = _path(root, group)
        for name in names:
            _element(parent, name, by_chai[name])
    _key_metrics(root, fields)
    _extensions(root, card)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# --- Formats ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportFormat:
    content_type: str
    render: Callable[[ModelCard], str | bytes]


EXPORT_FORMATS: dict[str, ExportFormat] = {
    "json": ExportFormat("application/json", card_json),
    "md": ExportFormat("text/markdown; charset=utf-8", card_markdown),
    "xml": ExportFormat("application/xml; charset=utf-8", card_xml),
}
