"""Declarative conditions over a prediction's features: the deferral rules' language.

Pure Python, no Django. A rule is data, never code: nothing here evaluates user text. Grammar::

    condition := {"feature": NAME, "op": OP, "value": VALUE}      (value omitted for is_missing)
               | {"all": [condition, ...]} | {"any": [condition, ...]} | {"not": condition}
    OP        := lt | le | gt | ge | eq | ne | in | not_in | is_missing

A comparison on a missing feature is false (so "age < 18" does not fire when age is absent;
write ``is_missing`` to catch absence explicitly). Comparing a number with text is false.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitoring.validation import is_number

ORDERED_OPS = {"lt", "le", "gt", "ge"}
OPS = ORDERED_OPS | {"eq", "ne", "in", "not_in", "is_missing"}
MAX_DEPTH = 8


class RuleError(ValueError):
    """A rule that is not a well-formed condition; the message says where."""


def check(
    condition: Any, *, features: set[str] | None = None, path: str = "condition", depth: int = 0
) -> None:
    """Raise ``RuleError`` unless ``condition`` is well formed (and names known ``features``)."""
    if depth > MAX_DEPTH:
        raise RuleError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if not isinstance(condition, Mapping):
        raise RuleError(f"{path}: a condition is an object")
    keys = set(condition)
    if keys in ({"all"}, {"any"}):
        (key,) = keys
        parts = condition[key]
        if not isinstance(parts, list) or not parts:
            raise RuleError(f"{path}.{key}: a non-empty list of conditions")
        for index, part in enumerate(parts):
            check(part, features=features, path=f"{path}.{key}[{index}]", depth=depth + 1)
        return
    if keys == {"not"}:
        check(condition["not"], features=features, path=f"{path}.not", depth=depth + 1)
        return
    _check_comparison(condition, features=features, path=path)


def _check_comparison(
    condition: Mapping[str, Any], *, features: set[str] | None, path: str
) -> None:
    op = condition.get("op")
    allowed = {"feature", "op"} if op == "is_missing" else {"feature", "op", "value"}
    if set(condition) != allowed:
        raise RuleError(f"{path}: expected keys {sorted(allowed)}, got {sorted(condition)}")
    name = condition["feature"]
    if not isinstance(name, str) or not name:
        raise RuleError(f"{path}.feature: a feature name")
    if features is not None and name not in features:
        raise RuleError(f"{path}.feature: {name!r} is not in the version's feature spec")
    if not isinstance(op, str) or op not in OPS:
        raise RuleError(f"{path}.op: one of {', '.join(sorted(OPS))}")
    value = condition.get("value")
    if op in ORDERED_OPS and not is_number(value):
        raise RuleError(f"{path}.value: {op} compares with a number")
    if op in {"in", "not_in"} and (not isinstance(value, list) or not value):
        raise RuleError(f"{path}.value: {op} takes a non-empty list")
    if op in {"eq", "ne"} and not isinstance(value, str | int | float | bool):
        raise RuleError(f"{path}.value: {op} compares with text, a number or true/false")


def holds(condition: Mapping[str, Any], features: Mapping[str, Any]) -> bool:
    """Evaluate a checked condition against a prediction's features."""
    if "all" in condition:
        return all(holds(part, features) for part in condition["all"])
    if "any" in condition:
        return any(holds(part, features) for part in condition["any"])
    if "not" in condition:
        return not holds(condition["not"], features)
    op, name = condition["op"], condition["feature"]
    present = name in features and features[name] is not None
    if op == "is_missing":
        return not present
    if not present:
        return False
    actual, expected = features[name], condition.get("value")
    if op in ORDERED_OPS:
        if not is_number(actual):
            return False
        return {
            "lt": actual < expected,
            "le": actual <= expected,
            "gt": actual > expected,
            "ge": actual >= expected,
        }[op]
    if op == "eq":
        return _same(actual, expected)
    if op == "ne":
        return not _same(actual, expected)
    if op == "in":
        return any(_same(actual, item) for item in expected)
    return not any(_same(actual, item) for item in expected)  # not_in


def _both_numbers_equal(a: Any, b: Any) -> bool:
    return is_number(a) and is_number(b) and a == b


def _same(a: Any, b: Any) -> bool:
    return (a == b and type(a) is type(b)) or _both_numbers_equal(a, b)


def describe(condition: Mapping[str, Any]) -> str:
    """Plain words for a condition: ``age < 18 and service_line in (...)``."""
    if "all" in condition:
        return " and ".join(
            f"({describe(p)})" if _compound(p) else describe(p) for p in condition["all"]
        )
    if "any" in condition:
        return " or ".join(
            f"({describe(p)})" if _compound(p) else describe(p) for p in condition["any"]
        )
    if "not" in condition:
        return f"not ({describe(condition['not'])})"
    symbols = {
        "lt": "<",
        "le": "≤",
        "gt": ">",
        "ge": "≥",
        "eq": "=",
        "ne": "≠",
        "in": "in",
        "not_in": "not in",
    }
    if condition["op"] == "is_missing":
        return f"{condition['feature']} is missing"
    value = condition["value"]
    shown = "(" + ", ".join(map(str, value)) + ")" if isinstance(value, list) else value
    return f"{condition['feature']} {symbols[condition['op']]} {shown}"


def _compound(condition: Mapping[str, Any]) -> bool:
    return bool({"all", "any"} & set(condition))
