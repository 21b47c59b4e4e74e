"""The seeded runbooks, one per alert layer, from the clinical playbook: validate the signal,
assess patient risk, decide throttle / freeze / rollback, remediate, verify recovery — each step
with the evidence it needs. Editable afterwards (with history); this is only the first version.
"""

from __future__ import annotations

from typing import Any


def _steps(validate: str, assess: str, decide: str, remediate: str, verify: str) -> list[dict]:
    return [
        {"title": "Validate the signal", "evidence": validate},
        {"title": "Assess patient risk", "evidence": assess},
        {"title": "Decide: continue, throttle, freeze or roll back", "evidence": decide},
        {"title": "Remediate", "evidence": remediate},
        {"title": "Verify recovery", "evidence": verify},
    ]


DEFAULTS: tuple[dict[str, Any], ...] = (
    {
        "layer": "data_quality",
        "title": "Data quality: missing, invalid or renamed inputs, silent feeds",
        "steps": _steps(
            "The feed owner confirms at the source (interface logs, message counts) that values "
            "are missing or malformed, and since when.",
            "Predictions scored on incomplete inputs in the window and whether the affected "
            "input drives alerts for this population (impact assessment).",
            "The decision and who took it; a freeze if scores are unreliable until the feed is "
            "fixed.",
            "The fix (interface change, mapping, spec update as a new version) with its ticket.",
            "The metric back to green on the days after the fix (link to the metric page).",
        ),
    },
    {
        "layer": "prediction_quality",
        "title": "Prediction quality: drift, discrimination or calibration",
        "steps": _steps(
            "Recent labelled cases re-checked: the shift is real (not a label delay or a "
            "reference mismatch); which inputs moved.",
            "Patients whose decisions may have been wrong in the window (impact assessment), "
            "and for whom (site, cohort).",
            "Continue, raise the deferral margin, freeze or roll back — with the medical "
            "director's decision recorded.",
            "Recalibration if ranking holds, retraining if discrimination fell; as a signed "
            "release.",
            "Calibration and discrimination back within bands on new data.",
        ),
    },
    {
        "layer": "workflow",
        "title": "Workflow: overrides, deferrals, time to action",
        "steps": _steps(
            "Override and deferral reasons reviewed with the unit; a change in workflow, "
            "staffing or guidelines identified or ruled out.",
            "Deferred cases left waiting and overridden alerts that mattered (impact assessment).",
            "Keep, adjust deferral rules or thresholds, or freeze while the workflow is fixed.",
            "The workflow, training or rule change made, with its owner.",
            "Override and deferral rates back to their usual range.",
        ),
    },
    {
        "layer": "outcome",
        "title": "Outcome impact: outcomes worse than baseline in a group",
        "steps": _steps(
            "Outcome definitions and label delays checked; the change holds against other "
            "quality signals for the unit.",
            "Patients affected and whether model-driven care contributed (impact assessment "
            "with quality and safety).",
            "Continue, restrict to a population, freeze or roll back — the decision and who "
            "took it.",
            "Corrective actions agreed with quality and safety.",
            "Outcome rates back within bands over the next window.",
        ),
    },
)


def ensure_defaults(Runbook: Any) -> int:
    """Create the default runbooks that are missing (migration and tests); returns how many."""
    made = 0
    for spec in DEFAULTS:
        if not Runbook.objects.filter(layer=spec["layer"], metric="").exists():
            Runbook.objects.create(layer=spec["layer"], metric="", title=spec["title"],
                                   steps=spec["steps"])  # fmt: skip
            made += 1
    return made
