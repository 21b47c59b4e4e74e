"""Who resolves what, how bad it is, and what to do. Who: the model's effective RACI matrix
(``governance.raci``): an alert of a layer routes to the Responsible parties of that layer's
incidents row, and an incident not acknowledged in time escalates first to the row's
Accountable, then onward along ``ESCALATION``.

A routed party is stored on ``Alert.routed_role`` / ``Incident.routed_role`` (40 characters) as
its role's name (``data_engineer``) or, for a person, ``user:<username>``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from governance import raci

#: Responsible role per alert layer when no matrix says otherwise (the built-in RACI default).
RESPONSIBLE = {
    layer: raci.BUILTIN[f"incidents.{layer}"]["R"][0].removeprefix(raci.ROLE_PREFIX)
    for layer in raci.LAYERS
}
#: Accountable for a layer without a RACI row (an unknown layer).
ACCOUNTABLE = "medical_director"
#: After the row's Accountable, escalation goes onward along this chain (skipping the
#: Accountable if it is one of these roles).
ESCALATION = ("medical_director", "incident_commander", "compliance_officer")
ROUTED_MAX = 40

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


def activity(layer: str) -> str:
    """The RACI row of a layer's incidents."""
    return f"incidents.{layer}"


def routed_name(party: str) -> str:
    """How a party is stored on ``routed_role``: ``role:ml_engineer`` → ``ml_engineer``;
    ``user:alice`` stays ``user:alice``."""
    return party.removeprefix(raci.ROLE_PREFIX)


def party_of(routed: str) -> str:
    """The party a stored ``routed_role`` names (the inverse of ``routed_name``)."""
    return routed if routed.startswith(raci.USER_PREFIX) else f"{raci.ROLE_PREFIX}{routed}"


def responsible_parties(layer: str, model: Any = None) -> list[str]:
    """Every Responsible party of the layer's incidents row for ``model`` (its effective RACI;
    ``None``: the health-system default). An unknown layer goes to the Accountable role."""
    if activity(layer) not in raci.ACTIVITIES:
        return [party_of(ACCOUNTABLE)]
    return raci.responsible(model, activity(layer))


def responsible(layer: str, model: Any = None) -> str:
    """What ``routed_role`` stores: the first Responsible party that fits the column."""
    names = [routed_name(p) for p in responsible_parties(layer, model)]
    return next((n for n in names if len(n) <= ROUTED_MAX), ACCOUNTABLE)


def escalation_chain(layer: str, model: Any = None) -> list[str]:
    """The parties an unacknowledged incident escalates to, level by level: the row's
    Accountable first, then ``ESCALATION`` onward."""
    first = (
        raci.accountable(model, activity(layer))
        if activity(layer) in raci.ACTIVITIES
        else party_of(ACCOUNTABLE)
    )
    onward = [party_of(role) for role in ESCALATION]
    return [first, *(p for p in onward if p != first)]


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
