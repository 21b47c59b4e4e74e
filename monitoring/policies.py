"""Deferral policies: every edit is a new numbered row (the highest number is in force), so the
rules any past prediction was judged by stay on record unchanged.

``policy_create`` is the one write. It validates the whole policy before saving anything:
thresholds in [0, 1], rules with unique codes, plain-words text and conditions that pass
``monitoring.rules.check`` against the version's feature spec. Errors are keyed by where they
are, e.g. ``safety_rules[1].condition.all[0].op``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.permissions import require_perms
from governance.audit.services import record
from monitoring import rules
from monitoring.models import DeferralPolicy
from registry.models import ModelVersion, VersionStatus

#: The two rule lists of a policy, with the words people read for one of their rules.
RULE_LISTS = {"population_exclusions": "Population exclusion", "safety_rules": "Safety rule"}
FRACTIONS = {"min_confidence": "Minimum confidence", "threshold_margin": "Threshold margin"}
RULE_KEYS = frozenset({"code", "text", "condition"})
CODE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,59}")
MAX_RULES = 100
MAX_TEXT = 300

Errors = dict[str, list[str]]


@dataclass(frozen=True)
class Change:
    """One difference between consecutive policies, in words (``field`` names the part)."""

    field: str
    text: str


def content_of(policy: DeferralPolicy | None) -> dict[str, Any]:
    """What a policy decides, without who/when/why. ``None`` (no policy yet) is empty."""
    if policy is None:
        return {"min_confidence": None, "threshold_margin": None, **{k: [] for k in RULE_LISTS}}
    return {
        "min_confidence": policy.min_confidence,
        "threshold_margin": policy.threshold_margin,
        "population_exclusions": list(policy.population_exclusions),
        "safety_rules": list(policy.safety_rules),
    }


# --- Validation -----------------------------------------------------------------------------


def _is_fraction(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= 1
    )


def _check_fraction(errors: Errors, name: str, value: Any) -> None:
    if value is not None and not _is_fraction(value):
        errors[name] = ["A number from 0 to 1, or empty for no such rule."]


def _check_code(errors: Errors, prefix: str, code: Any, seen: dict[str, str]) -> None:
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
        errors[f"{prefix}.code"] = [
            "A short code of lower-case letters, digits, - or _ (e.g. paediatric), "
            "at most 60 characters."
        ]
    elif code in seen:
        errors[f"{prefix}.code"] = [
            f"Code {code!r} is already used by {seen[code]}; each rule needs its own code."
        ]
    else:
        seen[code] = prefix


def _check_text(errors: Errors, prefix: str, text: Any) -> None:
    if not isinstance(text, str) or not text.strip():
        errors[f"{prefix}.text"] = ["Say in words what the rule means; clinicians read this."]
    elif len(text) > MAX_TEXT:
        errors[f"{prefix}.text"] = [f"At most {MAX_TEXT} characters."]


def _check_condition(errors: Errors, prefix: str, rule: Mapping[str, Any], names: set[str]) -> None:
    if "condition" not in rule:
        errors[f"{prefix}.condition"] = ["A condition is required."]
        return
    try:
        rules.check(rule["condition"], features=names, path=f"{prefix}.condition")
    except rules.RuleError as exc:
        # RuleError says "<path>: <message>"; the path is our key, like the other errors.
        key, _, message = str(exc).partition(": ")
        errors.setdefault(key, []).append(message)


def _check_rule(
    errors: Errors, prefix: str, rule: Any, names: set[str], seen: dict[str, str]
) -> dict[str, Any] | None:
    if not isinstance(rule, Mapping):
        errors[prefix] = ['A rule is an object with "code", "text" and "condition".']
        return None
    for key in sorted(set(rule) - RULE_KEYS, key=str):
        errors[f"{prefix}.{key}"] = ['Unknown field: a rule has "code", "text" and "condition".']
    _check_code(errors, prefix, rule.get("code"), seen)
    _check_text(errors, prefix, rule.get("text"))
    _check_condition(errors, prefix, rule, names)
    text = rule.get("text")
    return {
        "code": rule.get("code"),
        "text": text.strip() if isinstance(text, str) else text,
        "condition": rule.get("condition"),
    }


def _check_rules(
    errors: Errors, name: str, value: Any, names: set[str], seen: dict[str, str]
) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        errors[name] = ['A list of rules, each {"code": ..., "text": ..., "condition": ...}.']
        return []
    if len(value) > MAX_RULES:
        errors[name] = [f"At most {MAX_RULES} rules."]
        return []
    checked = [
        _check_rule(errors, f"{name}[{i}]", rule, names, seen) for i, rule in enumerate(value)
    ]
    return [rule for rule in checked if rule is not None]


def _validated(
    version: ModelVersion, fields: Mapping[str, Any], reason: Any
) -> tuple[dict[str, Any], Errors]:
    errors: Errors = {}
    for name in FRACTIONS:
        _check_fraction(errors, name, fields[name])
    if fields["threshold_margin"] is not None and not version.decision_thresholds:
        errors.setdefault("threshold_margin", []).append(
            f"{version} declares no decision threshold, so a margin would never apply."
        )
    names = set(version.features.values_list("name", flat=True))
    seen: dict[str, str] = {}
    cleaned = {name: fields[name] for name in FRACTIONS}
    for name in RULE_LISTS:
        cleaned[name] = _check_rules(errors, name, fields[name], names, seen)
    if not isinstance(reason, str) or not reason.strip():
        errors["reason"] = ["Say why the rules change; it is kept with this policy version."]
    elif len(reason) > MAX_TEXT:
        errors["reason"] = [f"At most {MAX_TEXT} characters."]
    return cleaned, errors


# --- Changes between versions ---------------------------------------------------------------


def _shown(value: Any) -> str:
    return "none" if value is None else f"{value:g}"


def _rule_changes(name: str, before: Sequence[Any], after: Sequence[Any]) -> list[Change]:
    label = RULE_LISTS[name]
    old = {r["code"]: r for r in before}
    new = {r["code"]: r for r in after}
    found = []
    for code, rule in new.items():
        if code not in old:
            words = rules.describe(rule["condition"])
            found.append(Change(name, f"{label} {code} added: {words} ({rule['text']})"))
            continue
        if old[code]["condition"] != rule["condition"]:
            found.append(
                Change(
                    name,
                    f"{label} {code}: condition {rules.describe(old[code]['condition'])} "
                    f"→ {rules.describe(rule['condition'])}",
                )
            )
        if old[code]["text"] != rule["text"]:
            found.append(
                Change(name, f"{label} {code}: text “{old[code]['text']}” → “{rule['text']}”")
            )
    found.extend(Change(name, f"{label} {code} removed") for code in old if code not in new)
    return found


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """What ``after`` changes in ``before`` (both as ``content_of`` gives them), in words."""
    found = [
        Change(name, f"{label}: {_shown(before[name])} → {_shown(after[name])}")
        for name, label in FRACTIONS.items()
        if before[name] != after[name]
    ]
    for name in RULE_LISTS:
        found.extend(_rule_changes(name, before[name], after[name]))
    return found


# --- The write ------------------------------------------------------------------------------


def _refuse_stale(current: DeferralPolicy | None, based_on: int | None) -> None:
    number = current.number if current else 0
    if based_on is not None and based_on != number:
        who = current.created_by if current and current.created_by else "someone"
        raise ValidationError(
            f"Policy v{number} was saved by {who} after you opened v{based_on}; "
            "review it and make your change again."
        )


@transaction.atomic
def policy_create(
    *,
    actor: Any,
    version: ModelVersion,
    min_confidence: float | None,
    threshold_margin: float | None,
    population_exclusions: list[Any],
    safety_rules: list[Any],
    reason: str,
    based_on: int | None = None,
) -> DeferralPolicy:
    """Put a new policy in force for ``version``: the next number, validated whole.

    ``based_on`` is the number the editor started from (``0``: none); if another edit was saved
    since, nothing is saved, so no one overwrites a change they never saw.
    """
    require_perms(actor, "monitoring.add_deferralpolicy")
    # Locking the version serialises edits: each one sees the true number in force.
    version = ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
    if version.status == VersionStatus.RETIRED:
        raise ValidationError(f"{version} is retired: it makes no predictions to defer.")
    current = DeferralPolicy.objects.filter(version=version).order_by("-number").first()
    _refuse_stale(current, based_on)
    fields = {
        "min_confidence": min_confidence,
        "threshold_margin": threshold_margin,
        "population_exclusions": population_exclusions,
        "safety_rules": safety_rules,
    }
    cleaned, errors = _validated(version, fields, reason)
    if errors:
        raise ValidationError(errors)
    found = changes(content_of(current), cleaned)
    if not found:
        raise ValidationError("Nothing changed: these are the rules already in force.")
    policy = _save(actor, version, current, cleaned, reason.strip())
    _record(actor, policy, found)
    return policy


def _save(
    actor: Any,
    version: ModelVersion,
    current: DeferralPolicy | None,
    cleaned: Mapping[str, Any],
    reason: str,
) -> DeferralPolicy:
    user = actor if actor is not None and actor.is_authenticated else None
    policy = DeferralPolicy(
        version=version,
        number=(current.number if current else 0) + 1,
        reason=reason,
        created_by=user,
        **cleaned,
    )
    policy._history_user = user  # type: ignore[attr-defined]
    policy._change_reason = reason  # type: ignore[attr-defined]
    try:
        with transaction.atomic():
            policy.save(force_insert=True)
    except IntegrityError as exc:  # a concurrent edit on a database without row locks
        raise ValidationError(
            "Another edit of this policy was saved a moment ago; reload and try again."
        ) from exc
    return policy


def _record(actor: Any, policy: DeferralPolicy, found: list[Change]) -> None:
    parts = sorted({FRACTIONS.get(c.field) or RULE_LISTS[c.field] for c in found})
    record(
        actor=actor,
        action="policy.create",
        target=policy,
        summary=f"Deferral policy v{policy.number} for {policy.version}: "
        + ", ".join(p.lower() for p in parts),
        payload={
            "model": policy.version.model.slug,
            "version": policy.version.version,
            "number": policy.number,
            "reason": policy.reason,
            "changes": [c.text for c in found],
        },
    )
