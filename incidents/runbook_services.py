"""Editing runbooks: each save is a history record (who, when, why) and an audit event saying
what changed. Checks already made on incidents keep the step title they recorded, so editing a
runbook never rewrites what an incident's team did."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.permissions import require_perms
from governance.audit.services import record
from incidents.models import Runbook
from monitoring.models import Layer
from monitoring.thresholds import METRICS

MAX_STEPS = 20
TITLE_MAX = 200
STEP_TITLE_MAX = 300
EVIDENCE_MAX = 1000
REASON_MAX = 500


def clean_steps(steps: Any) -> list[dict[str, str]]:
    """The steps as stored, or a ``ValidationError`` on ``steps`` naming each bad step."""
    if not isinstance(steps, Sequence) or isinstance(steps, str) or not steps:
        raise ValidationError({"steps": "Give at least one step, each with a title and evidence."})
    if len(steps) > MAX_STEPS:
        raise ValidationError({"steps": f"At most {MAX_STEPS} steps (got {len(steps)})."})
    cleaned, errors = [], []
    for number, step in enumerate(steps, start=1):
        if not isinstance(step, Mapping):
            errors.append(f"Step {number}: give a title and the evidence it needs.")
            continue
        title = str(step.get("title") or "").strip()
        evidence = str(step.get("evidence") or "").strip()
        if not title:
            errors.append(f"Step {number}: the title is blank.")
        elif len(title) > STEP_TITLE_MAX:
            errors.append(f"Step {number}: the title is longer than {STEP_TITLE_MAX} characters.")
        if not evidence:
            errors.append(f"Step {number}: say what evidence the step needs.")
        elif len(evidence) > EVIDENCE_MAX:
            errors.append(f"Step {number}: the evidence is longer than {EVIDENCE_MAX} characters.")
        cleaned.append({"title": title, "evidence": evidence})
    if errors:
        raise ValidationError({"steps": errors})
    return cleaned


def _clean(title: str, steps: Any, reason: str) -> tuple[str, list[dict[str, str]], str]:
    errors: dict[str, Any] = {}
    title = (title or "").strip()
    if not title:
        errors["title"] = "Give the runbook a title."
    elif len(title) > TITLE_MAX:
        errors["title"] = f"At most {TITLE_MAX} characters."
    if not (reason or "").strip():
        errors["reason"] = "Say why the runbook changes (kept in its history)."
    elif len(reason.strip()) > REASON_MAX:
        errors["reason"] = f"At most {REASON_MAX} characters."
    try:
        cleaned = clean_steps(steps)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        cleaned = []
    if errors:
        raise ValidationError(errors)
    return title, cleaned, reason.strip()


def describe_changes(
    before_title: str, before: Sequence[Mapping[str, str]], title: str, after: Sequence[Mapping]
) -> dict[str, Any]:
    """What changed between two versions: the title, and steps added, removed or edited
    (1-based step numbers)."""
    changes: dict[str, Any] = {}
    if before_title != title:
        changes["title"] = {"before": before_title, "after": title}
    edited = [
        i + 1 for i in range(min(len(before), len(after))) if dict(before[i]) != dict(after[i])
    ]
    if edited:
        changes["steps_edited"] = edited
    if len(after) > len(before):
        changes["steps_added"] = list(range(len(before) + 1, len(after) + 1))
    elif len(after) < len(before):
        changes["steps_removed"] = list(range(len(after) + 1, len(before) + 1))
    return changes


def runbook_save(*, actor: Any, runbook: Runbook, title: str, steps: Any, reason: str) -> Runbook:
    """Replace a runbook's title and steps. Refused when nothing changes."""
    require_perms(actor, "incidents.change_runbook")
    title, cleaned, reason = _clean(title, steps, reason)
    with transaction.atomic():
        runbook = Runbook.objects.select_for_update().get(pk=runbook.pk)
        changes = describe_changes(runbook.title, runbook.steps, title, cleaned)
        if not changes:
            raise ValidationError({"steps": "Nothing changed: the runbook is as it was."})
        runbook.title, runbook.steps = title, cleaned
        runbook.updated_by, runbook.updated_at = actor, timezone.now()
        runbook._history_user = actor  # type: ignore[attr-defined]
        runbook._change_reason = reason[:100]  # type: ignore[attr-defined]
        runbook.save()
        record(
            actor=actor,
            action="runbook.changed",
            summary=f"Runbook {_name(runbook)} changed: {reason}"[:300],
            target=runbook,
            payload={"layer": runbook.layer, "metric": runbook.metric, "reason": reason,
                     "changes": changes, "steps": len(cleaned)},
        )  # fmt: skip
    return runbook


def runbook_create(
    *, actor: Any, layer: str, metric: str, title: str, steps: Any, reason: str
) -> Runbook:
    """A runbook for one metric of a layer (``psi``, ``missing_rate``…): incidents whose first
    alert is that metric follow it instead of the layer's default."""
    require_perms(actor, "incidents.change_runbook")
    errors: dict[str, Any] = {}
    metric = (metric or "").strip().partition(":")[0]
    if layer not in Layer.values:
        errors["layer"] = f"Unknown layer {layer!r}: one of {', '.join(Layer.values)}."
    if not metric:
        errors["metric"] = "Name the metric (the layer's default runbook exists already)."
    elif metric not in METRICS:
        errors["metric"] = f"Unknown metric {metric!r}."
    elif layer in Layer.values and METRICS[metric].layer != layer:
        errors["metric"] = f"{metric} belongs to the {METRICS[metric].layer} layer, not {layer}."
    try:
        title, cleaned, reason = _clean(title, steps, reason)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if not errors and Runbook.objects.filter(layer=layer, metric=metric).exists():
        errors["metric"] = f"A runbook for {layer} / {metric} exists already: edit it."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        runbook = Runbook(layer=layer, metric=metric, title=title, steps=cleaned,
                          updated_by=actor, updated_at=timezone.now())  # fmt: skip
        runbook._history_user = actor  # type: ignore[attr-defined]
        runbook._change_reason = reason[:100]  # type: ignore[attr-defined]
        runbook.save()
        record(
            actor=actor,
            action="runbook.created",
            summary=f"Runbook {_name(runbook)} created: {reason}"[:300],
            target=runbook,
            payload={"layer": layer, "metric": metric, "reason": reason, "steps": len(cleaned)},
        )
    return runbook


def _name(runbook: Runbook) -> str:
    return f"{runbook.layer}/{runbook.metric}" if runbook.metric else runbook.layer
