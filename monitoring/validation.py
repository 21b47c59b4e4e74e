"""Checking a prediction's features against its version's feature spec. Pure Python.

Problems do not reject a prediction: it is stored with them and deferred, because a missing lab
or an impossible value is exactly the data-quality signal monitoring must see.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FeatureRule:
    name: str
    dtype: str  # numeric | categorical | boolean
    min_value: float | None = None
    max_value: float | None = None
    categories: frozenset[str] = frozenset()
    required: bool = True
    missing_allowed: bool = False


@dataclass(frozen=True)
class Problem:
    # missing_required | missing_value | wrong_type | out_of_range | unknown_category |
    # unexpected_feature
    code: str
    feature: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "feature": self.feature, "text": self.text}


def is_number(value: Any) -> bool:
    """A finite number, and not a boolean (which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_value(rule: FeatureRule, value: Any) -> Problem | None:
    name = rule.name
    if rule.dtype == "numeric":
        if not is_number(value):
            return Problem("wrong_type", name, f"{name} must be a finite number, got {value!r}")
        if rule.min_value is not None and value < rule.min_value:
            return Problem(
                "out_of_range",
                name,
                f"{name} = {value} is below the allowed minimum {rule.min_value}",
            )
        if rule.max_value is not None and value > rule.max_value:
            return Problem(
                "out_of_range",
                name,
                f"{name} = {value} is above the allowed maximum {rule.max_value}",
            )
        return None
    if rule.dtype == "categorical":
        if not isinstance(value, str):
            return Problem(
                "wrong_type", name, f"{name} must be one of its categories (text), got {value!r}"
            )
        if value not in rule.categories:
            return Problem("unknown_category", name, f"{name} = {value!r} is not a known category")
        return None
    if not isinstance(value, bool):
        return Problem("wrong_type", name, f"{name} must be true or false, got {value!r}")
    return None


def check_features(rules: Iterable[FeatureRule], features: Mapping[str, Any]) -> list[Problem]:
    """Every problem of ``features`` against ``rules``, in spec order then unexpected names."""
    problems: list[Problem] = []
    known = set()
    for rule in rules:
        known.add(rule.name)
        value = features.get(rule.name)
        if value is None:
            if rule.required:
                problems.append(
                    Problem("missing_required", rule.name, f"required input {rule.name} is missing")
                )
            elif rule.name in features and not rule.missing_allowed:
                problems.append(
                    Problem("missing_value", rule.name, f"{rule.name} was sent without a value")
                )
            continue
        problem = _check_value(rule, value)
        if problem is not None:
            problems.append(problem)
    for name in sorted(set(features) - known):
        problems.append(
            Problem("unexpected_feature", name, f"{name} is not in the version's feature spec")
        )
    return problems
