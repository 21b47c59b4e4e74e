"""Who resolves what, how bad it is, and what to do: the defaults the governance issue's
editable RACI matrix will replace. Pure Python."""

from __future__ import annotations

from datetime import timedelta

#: Responsible role per alert layer (the playbook's RACI default).
RESPONSIBLE = {
    "data_quality": "data_engineer",
    "prediction_quality": "ml_engineer",
    "workflow": "clinical_informaticist",
    "outcome": "quality_safety",
    "governance": "compliance_officer",
}
#: Accountable for every layer until the RACI matrix says otherwise; escalation goes here,
#: then onward.
ACCOUNTABLE = "medical_director"
ESCALATION = ("medical_director", "incident_commander", "compliance_officer")

SEVERITY = {
    ("red", True): "SEV1",
    ("red", False): "SEV2",
    ("orange", True): "SEV2",
    ("orange", False): "SEV3",
    ("yellow", True): "SEV4",
    ("yellow", False): "SEV4",
}
ACK_WITHIN = {
    "SEV1": timedelta(minutes=15),
    "SEV2": timedelta(hours=1),
    "SEV3": timedelta(days=1),
    "SEV4": timedelta(days=3),
}
HIGH_TIERS = frozenset({"high", "critical"})
BAND_RANK = {"red": 4, "orange": 3, "yellow": 2, "green": 1, "insufficient": 0}


def severity(band: str, tier: str) -> str:
    return SEVERITY[(band, tier in HIGH_TIERS)]


def responsible(layer: str) -> str:
    return RESPONSIBLE.get(layer, ACCOUNTABLE)


CLINICAL_IMPACT = {
    "data_quality": (
        "Inputs are missing, out of range or renamed: the model scores on incomplete data, "
        "defers more cases to clinicians and may under-estimate risk where a value is absent."
    ),
    "prediction_quality": (
        "The scores no longer mean what they meant at validation: alerts may fire for the wrong "
        "patients (or miss the right ones), and risk thresholds may act at the wrong level."
    ),
    "workflow": (
        "Clinicians are acting on the model differently (more overrides or deferrals, slower "
        "review): the model's benefit and the team's trust in it are at risk."
    ),
    "outcome": (
        "Patient outcomes have moved against the baseline in this group: check whether care "
        "driven by the model contributed before anything else."
    ),
}

RESPONSE = {
    "data_quality": "Check the feed at its source with the data engineer; confirm the spec still "
    "matches what is sent; if scores are affected, consider freezing until the feed is fixed.",
    "prediction_quality": "Validate the signal on recent labelled cases; if ranking holds but "
    "calibration drifted, recalibrate; if discrimination fell, plan a retrain; freeze or roll "
    "back when patients are at risk.",
    "workflow": "Review the overrides and deferrals with the clinical informaticist and the "
    "unit's clinicians; look for a workflow or guideline change.",
    "outcome": "Assess patient impact for the window with quality and safety; compare with the "
    "unit's other signals before changing the model.",
}
