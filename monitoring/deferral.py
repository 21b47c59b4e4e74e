"""The gate's decision: act, defer (with every reason) or shadow. Pure Python."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitoring import rules
from monitoring.validation import Problem


@dataclass(frozen=True)
class NamedRule:
    """A population criterion or safety rule: when ``condition`` holds, the case is deferred."""

    code: str
    text: str
    condition: Mapping[str, Any]


@dataclass(frozen=True)
class Policy:
    number: int
    min_confidence: float | None = None
    threshold_margin: float | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)
    population_exclusions: Sequence[NamedRule] = ()
    safety_rules: Sequence[NamedRule] = ()


@dataclass(frozen=True)
class Reason:
    code: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "text": self.text}


@dataclass(frozen=True)
class Decision:
    action: str  # act | defer | shadow
    reasons: tuple[Reason, ...]


ACT, DEFER, SHADOW = "act", "defer", "shadow"
#: Scores and thresholds are decimals sent as binary floats: 0.65 - 0.6 is 0.05000000000000004.
#: A margin of 0.05 must include 0.65, so comparisons allow this much rounding.
TOLERANCE = 1e-9


def reasons_for(
    *,
    policy: Policy,
    problems: Sequence[Problem],
    features: Mapping[str, Any],
    score: float,
    confidence: float | None,
    frozen: bool,
) -> list[Reason]:
    """Every reason to defer this case, in a fixed order (kill switch first)."""
    found: list[Reason] = []
    if frozen:
        found.append(
            Reason("frozen_deployment", "The deployment is frozen: every case goes to a human.")
        )
    missing = [p.feature for p in problems if p.code == "missing_required"]
    if missing:
        found.append(
            Reason("missing_required_input", f"Required input missing: {', '.join(missing)}.")
        )
    invalid = [p for p in problems if p.code != "missing_required"]
    if invalid:
        found.append(
            Reason("invalid_input", "Input problems: " + "; ".join(p.text for p in invalid) + ".")
        )
    for rule in policy.population_exclusions:
        if rules.holds(rule.condition, features):
            found.append(
                Reason("outside_population", f"Outside the intended population: {rule.text}")
            )
    for rule in policy.safety_rules:
        if rules.holds(rule.condition, features):
            found.append(Reason("safety_rule", f"Safety rule {rule.code}: {rule.text}"))
    if policy.min_confidence is not None:
        if confidence is None:
            found.append(
                Reason(
                    "confidence_missing",
                    "The policy needs the model's confidence and none was sent.",
                )
            )
        elif confidence < policy.min_confidence:
            found.append(
                Reason(
                    "low_confidence",
                    f"Model confidence {confidence:.3g} is below {policy.min_confidence:.3g}.",
                )
            )
    if policy.threshold_margin is not None:
        for name, threshold in sorted(policy.thresholds.items()):
            if abs(score - threshold) <= policy.threshold_margin + TOLERANCE:
                found.append(
                    Reason(
                        "near_threshold",
                        f"Score {score:.3g} is within {policy.threshold_margin:.3g} of the "
                        f"{name} threshold {threshold:.3g}.",
                    )
                )
    return found


def decide(*, shadow: bool, **inputs: Any) -> Decision:
    """``act`` only when no reason to defer exists; a shadow deployment never acts."""
    found = tuple(reasons_for(**inputs))
    if shadow:
        return Decision(SHADOW, found)
    return Decision(DEFER if found else ACT, found)
