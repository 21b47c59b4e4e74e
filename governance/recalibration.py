"""Recalibration and retraining: each model's written update policy, the update ladder's
recommendation from a labelled window, and the releases it leads to.

The statistics are in ``monitoring.stats.recalibration`` (pure numpy/scipy); this module loads
the window, checks who may act, stores the result and drafts releases. A recommendation is
computed on the scores the live configuration judges: each event's score as the model sent it
(``raw_score``, or ``score`` when no mapping applied) put through the mapping now deployed. A
mapping fitted on those is composed with the deployed one, so the release's mapping maps the
model's raw scores, as the gate needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.permissions import has_perms, is_service_account, require_perms
from governance import releases
from governance.audit.services import record
from governance.models import Recommendation, Release, ReleaseKind, UpdatePolicy
from monitoring.models import Outcome, PredictionEvent
from monitoring.stats import recalibration as recal
from registry.models import ClinicalModel, Deployment, DeploymentMode, ModelVersion, Site

#: The events that may call for an update, per the policy record.
TRIGGERS: dict[str, str] = {
    "sustained_drift": "Sustained drift (features, scores or calibration over k windows)",
    "outcome_degradation": "Outcome degradation (discrimination or outcome rates worsen)",
    "workflow_change": "Workflow change (how or when the model is used changes)",
    "guideline_change": "Clinical guideline change (the label or care pathway changes)",
    "new_data_source": "New data source (a feed, device or site is added or replaced)",
}
TEXT_FIELDS = ("validation_requirements", "approval_gates", "permitted_data", "leakage_controls")
POLICY_FIELDS = frozenset({"triggers", "retraining_owner", "min_window_events", *TEXT_FIELDS})
TEXT_MAX = 10_000
NOTE_MAX = 1_000
#: Below this no window can hold the ten cases of each outcome the ladder needs.
MIN_WINDOW_FLOOR = 20
MIN_WINDOW_CEILING = 1_000_000
DEFAULT_MIN_WINDOW = 100

Mapping2 = tuple[float, float]


# --- the written policy ---------------------------------------------------------------------


def _trigger_errors(value: Any) -> str | None:
    if not isinstance(value, Mapping) or not value:
        return "Choose at least one trigger, each with a note on what sets it off."
    unknown = sorted(str(k) for k in value if k not in TRIGGERS)
    if unknown:
        return f"Unknown trigger {', '.join(unknown)}; use {', '.join(TRIGGERS)}."
    blank = [k for k, note in value.items() if not isinstance(note, str) or not note.strip()]
    if blank:
        return f"Say what sets off each trigger (missing for {', '.join(sorted(blank))})."
    long = [k for k, note in value.items() if len(note) > NOTE_MAX]
    if long:
        return f"Trigger notes are at most {NOTE_MAX} characters ({', '.join(sorted(long))})."
    return None


def _owner(value: Any) -> tuple[Any, str | None]:
    """The retraining owner from a user or a username."""
    user_model = get_user_model()
    if isinstance(value, str):
        value = user_model.objects.filter(username=value.strip()).first()
    if not isinstance(value, user_model):
        return None, "Name the person who owns retraining."
    if not value.is_active or is_service_account(value):
        return None, f"{value.get_username()} is not an active person's account."
    if not has_perms(value, ["governance.add_release"]):
        return None, f"{value.get_username()}'s role cannot propose a release, so cannot retrain."
    return value, None


def _min_window_error(value: Any) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return "Give the minimum window as a whole number of labelled cases."
    if not MIN_WINDOW_FLOOR <= value <= MIN_WINDOW_CEILING:
        return f"The minimum window is between {MIN_WINDOW_FLOOR} and {MIN_WINDOW_CEILING:,}."
    return None


def policy_errors(
    fields: Mapping[str, Any], *, creating: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """(clean values, errors by field). Creating needs every field but the minimum window."""
    errors: dict[str, str] = {k: "Unknown field." for k in sorted(set(fields) - POLICY_FIELDS)}
    clean: dict[str, Any] = {}
    needed = POLICY_FIELDS - {"min_window_events"} if creating else frozenset()
    for name in sorted(needed - set(fields)):
        errors[name] = "This field is required."
    if "triggers" in fields:
        problem = _trigger_errors(fields["triggers"])
        if problem:
            errors["triggers"] = problem
        else:
            clean["triggers"] = {k: v.strip() for k, v in fields["triggers"].items()}
    if "retraining_owner" in fields:
        owner, problem = _owner(fields["retraining_owner"])
        if problem:
            errors["retraining_owner"] = problem
        clean["retraining_owner"] = owner
    for name in TEXT_FIELDS:
        if name not in fields:
            continue
        value = fields[name]
        if not isinstance(value, str) or not value.strip():
            errors[name] = f"Write the {name.replace('_', ' ')}; it cannot be empty."
        elif len(value) > TEXT_MAX:
            errors[name] = f"At most {TEXT_MAX:,} characters."
        else:
            clean[name] = value.strip()
    if "min_window_events" in fields:
        problem = _min_window_error(fields["min_window_events"])
        if problem:
            errors["min_window_events"] = problem
        clean["min_window_events"] = fields["min_window_events"]
    return clean, errors


@transaction.atomic
def update_policy_save(
    *, actor: Any, model: ClinicalModel, fields: Mapping[str, Any]
) -> UpdatePolicy:
    """Create or change ``model``'s update policy. Every bad field is named in one
    ValidationError; the change is kept in the policy's history and audited."""
    require_perms(actor, "governance.change_updatepolicy")
    policy = UpdatePolicy.objects.select_for_update().filter(model=model).first()
    clean, errors = policy_errors(fields, creating=policy is None)
    if errors:
        raise ValidationError(errors)
    creating = policy is None
    if policy is None:
        policy = UpdatePolicy(model=model)
    changed = sorted(k for k, v in clean.items() if creating or getattr(policy, k) != v)
    for name, value in clean.items():
        setattr(policy, name, value)
    policy.updated_at = timezone.now()
    policy.updated_by = actor if actor is not None and actor.is_authenticated else None
    policy._history_user = policy.updated_by  # type: ignore[attr-defined]
    policy._change_reason = "created" if creating else f"changed {', '.join(changed) or 'nothing'}"  # type: ignore[attr-defined]
    policy.save()
    record(
        actor=actor,
        action="update_policy.create" if creating else "update_policy.change",
        target=policy,
        summary=f"{'wrote' if creating else 'changed'} the update policy of {model.slug}",
        payload={
            "model": model.slug,
            "changed": changed,
            "triggers": sorted(policy.triggers),
            "min_window_events": policy.min_window_events,
            "retraining_owner": policy.retraining_owner.get_username(),
        },
    )
    return policy


# --- the labelled window --------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What a recommendation is about: the version live in scope, its deployments, and the
    configuration they apply (one mapping and one set of thresholds, else it is refused)."""

    model: ClinicalModel
    version: ModelVersion
    site: Site | None
    deployments: tuple[Deployment, ...]
    mapping: Mapping2 | None
    thresholds: dict[str, float]
    pinned_thresholds: dict[str, float] | None


@dataclass(frozen=True)
class Window:
    """The labelled live events of one version in [start, end] (dates, UTC, inclusive), in time
    order: the score each was sent with, its standing label and features; plus the raw scores
    of every live event in the window (labelled or not) for action rates."""

    start: date
    end: date
    raw: np.ndarray
    y: np.ndarray
    features: list[dict[str, Any]]
    all_raw: np.ndarray

    @property
    def n(self) -> int:
        return int(self.y.size)

    @property
    def events(self) -> int:
        return int((self.y > 0.5).sum())


def _mapping_of(deployment: Deployment) -> Mapping2 | None:
    m = deployment.score_mapping or {}
    return (float(m["intercept"]), float(m["slope"])) if m else None


def scope_of(model: ClinicalModel, site: Site | None = None) -> Scope:
    """The live configuration a recommendation judges. Refused when nothing is live, or when
    the sites in scope run different versions, mappings or thresholds (recommend per site)."""
    live = Deployment.objects.filter(
        model=model, mode=DeploymentMode.LIVE, ended_at__isnull=True
    ).select_related("version", "site")
    if site is not None:
        live = live.filter(site=site)
    deployments = tuple(live.order_by("site__code"))
    where = f"at {site.code}" if site else "anywhere"
    if not deployments:
        raise ValidationError({"site": f"{model.slug} is not live {where}."})
    if len({d.version_id for d in deployments}) > 1:
        raise ValidationError({"site": "The sites run different versions; choose one site."})
    mappings = {_mapping_of(d) for d in deployments}
    pinned = {repr(d.thresholds) for d in deployments}
    if len(mappings) > 1 or len(pinned) > 1:
        raise ValidationError(
            {"site": "The sites run different score mappings or thresholds; choose one site."}
        )
    version = deployments[0].version
    own = deployments[0].thresholds
    thresholds = own if own is not None else (version.decision_thresholds or {})
    return Scope(
        model=model,
        version=version,
        site=site,
        deployments=deployments,
        mapping=mappings.pop(),
        thresholds={str(k): float(v) for k, v in thresholds.items()},
        pinned_thresholds=dict(own) if own is not None else None,
    )


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    if start > end:
        raise ValidationError({"window_end": "The window ends before it starts."})
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


def labelled_window(
    model: ClinicalModel, version: ModelVersion, site: Site | None, start: date, end: date
) -> Window:
    """Live events of ``version`` (at ``site``, or every site) that occurred in the window and
    have a standing outcome (the row no later correction replaces). Shadow events are left
    out: they never reached patients."""
    lo, hi = _bounds(start, end)
    events = PredictionEvent.objects.filter(
        model=model, version=version, mode=DeploymentMode.LIVE, occurred_at__gte=lo,
        occurred_at__lt=hi,
    )  # fmt: skip
    if site is not None:
        events = events.filter(site=site)
    outcomes = (
        Outcome.objects.filter(event__in=events, corrected_by__isnull=True)
        .order_by("event__occurred_at", "event_id")
        .values_list("event__raw_score", "event__score", "event__features", "label")
    )
    rows = list(outcomes)
    raw = np.array([r[0] if r[0] is not None else r[1] for r in rows], dtype=float)
    all_raw = np.array(
        [r if r is not None else s for r, s in events.values_list("raw_score", "score")],
        dtype=float,
    )
    return Window(
        start=start,
        end=end,
        raw=raw,
        y=np.array([1.0 if r[3] > 0.5 else 0.0 for r in rows]),
        features=[r[2] if isinstance(r[2], dict) else {} for r in rows],
        all_raw=all_raw,
    )


def _specs(version: ModelVersion) -> list[dict[str, Any]]:
    return [
        {"name": f.name, "dtype": f.dtype, "categories": list(f.categories or [])}
        for f in version.features.order_by("name")
    ]


# --- the recommendation ---------------------------------------------------------------------


def _policy_minimum(model: ClinicalModel) -> tuple[int, bool]:
    policy = UpdatePolicy.objects.filter(model=model).first()
    return (policy.min_window_events, True) if policy else (DEFAULT_MIN_WINDOW, False)


def _mapping_json(mapping: Mapping2 | None) -> dict[str, Any] | None:
    return recal.mapping_dict(*mapping) if mapping else None


def ladder_statistics(scope: Scope, window: Window, minimum: int) -> dict[str, Any]:
    """Everything a recommendation shows: the closed test, and for a recalibration the mapping
    and its before / after evidence (in-sample, and split by time when the window allows)."""
    judged = recal.map_scores(window.raw, scope.mapping)
    ladder = recal.closed_test(
        judged, window.y, _specs(scope.version), window.features, min_cases=minimum
    )
    out: dict[str, Any] = {
        "ladder": ladder.as_dict(),
        "min_window_events": minimum,
        "deployed_mapping": _mapping_json(scope.mapping),
        "thresholds": scope.thresholds,
        "window_live_events": int(window.all_raw.size),
    }
    level = recal.Level(ladder.level)
    fit_level = recal.Level.LOGISTIC if level == recal.Level.REFIT else level
    if fit_level not in (recal.Level.INTERCEPT, recal.Level.LOGISTIC):
        return out
    fit = ladder.fits["M2" if fit_level == recal.Level.LOGISTIC else "M1"]
    on_window = recal.mapping_of(fit, fit_level)
    evidence = recal.before_after(judged, window.y, on_window, scope.thresholds)
    evidence["action_rate_all_events"] = {
        "before": recal.action_rates(
            recal.map_scores(window.all_raw, scope.mapping), scope.thresholds
        ),
        "after": recal.action_rates(
            recal.map_scores(window.all_raw, recal.compose(on_window, scope.mapping)),
            scope.thresholds,
        ),
    }
    if window.n >= 2 * minimum:
        evidence["split_sample"] = recal.split_sample(judged, window.y, fit_level, scope.thresholds)
    key = "interim_logistic" if level == recal.Level.REFIT else "recalibration"
    out[key] = {
        "level": str(fit_level),
        "fitted_on_window": {"intercept": on_window[0], "slope": on_window[1]},
        "score_mapping": recal.mapping_dict(*recal.compose(on_window, scope.mapping)),
        "evidence": evidence,
        "in_sample": True,
    }
    return out


@transaction.atomic
def recommend(
    *, actor: Any, model: ClinicalModel, start: date, end: date, site: Site | None = None
) -> Recommendation:
    """Run the update ladder on the labelled live window [start, end] and store the answer
    with its statistics. Too few labelled cases (the policy's minimum, or ten of each
    outcome) or a fit that does not converge gives ``insufficient`` with the reason."""
    require_perms(actor, "governance.add_recommendation")
    scope = scope_of(model, site)
    _bounds(start, end)
    window = labelled_window(model, scope.version, site, start, end)
    minimum, from_policy = _policy_minimum(model)
    statistics = ladder_statistics(scope, window, minimum)
    statistics["minimum_from_policy"] = from_policy
    rec = Recommendation.objects.create(
        model=model,
        version=scope.version,
        site=site,
        window_start=start,
        window_end=end,
        n=window.n,
        events=window.events,
        level=statistics["ladder"]["level"],
        statistics=statistics,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    tests = statistics["ladder"]["tests"]
    record(
        actor=actor,
        action="recommendation.create",
        target=rec,
        summary=f"{model.slug}: {rec.get_level_display()} on {start}–{end} (n={rec.n})",
        payload={
            "model": model.slug,
            "version": scope.version.version,
            "site": site.code if site else None,
            "window": [start.isoformat(), end.isoformat()],
            "n": rec.n,
            "events": rec.events,
            "level": rec.level,
            "p_values": {t["against"]: t["p_value"] for t in tests},
        },
    )
    return rec


# --- releases from a recommendation ---------------------------------------------------------


def _origin(recommendation: Recommendation | None, incident: Any) -> dict[str, Any]:
    """``{"incident": number, "recommendation": id}``: an incident is named by its number (an
    ``Incident`` or the number itself), as incidents' own audit events name it."""
    origin: dict[str, Any] = {}
    if incident is not None:
        origin["incident"] = int(getattr(incident, "number", incident))
    if recommendation is not None:
        origin["recommendation"] = recommendation.pk
    return origin


def _locked_recommendation(recommendation: Recommendation) -> Recommendation:
    rec = Recommendation.objects.select_for_update().select_related("model", "version", "site")
    found = rec.get(pk=recommendation.pk)
    if found.release_id is not None:
        raise ValidationError(
            {"release": f"This recommendation already led to R-{found.release_id}."}
        )
    return found


def _target_sites(rec: Recommendation, sites: Iterable[Site] | None) -> list[Site]:
    """The sites a release from ``rec`` targets; each must still run the configuration the
    recommendation judged (same version and mapping), or its composed mapping would be wrong."""
    chosen = list(sites) if sites else ([rec.site] if rec.site else None)
    if chosen is None:
        chosen = [d.site for d in scope_of(rec.model, None).deployments]
    deployed = rec.statistics.get("deployed_mapping")
    errors = []
    for site in chosen:
        live = releases.live_configuration(rec.model, site)
        if live is None or live.version_id != rec.version_id:
            errors.append(f"{site.code} does not run {rec.version.version} live")
        elif _mapping_json(_mapping_of(live)) != deployed:
            errors.append(f"{site.code}'s score mapping changed since the recommendation")
    if errors:
        raise ValidationError({"sites": "; ".join(errors) + ". Run a new recommendation."})
    return chosen


def _link(rec: Recommendation, release: Release, *, actor: Any) -> None:
    rec.release = release
    rec.save(update_fields=["release"])
    record(
        actor=actor,
        action="recommendation.release",
        target=rec,
        summary=f"{rec.model.slug}: recommendation {rec.pk} → {release.number}",
        payload={"recommendation": rec.pk, "release": release.pk, "kind": release.kind},
    )


def _summary(rec: Recommendation) -> dict[str, Any]:
    ladder = rec.statistics.get("ladder", {})
    return {
        "recommendation": rec.pk,
        "level": rec.level,
        "window": [rec.window_start.isoformat(), rec.window_end.isoformat()],
        "site": rec.site.code if rec.site else None,
        "n": rec.n,
        "events": rec.events,
        "tests": ladder.get("tests", []),
        "fits": ladder.get("fits", {}),
    }


@transaction.atomic
def propose_recalibration(
    *,
    actor: Any,
    recommendation: Recommendation,
    sites: Iterable[Site] | None = None,
    incident: Any = None,
) -> Release:
    """A draft recalibration release carrying the recommendation's composed mapping and its
    before / after evidence. The thresholds pinned at the sites, if any, are kept."""
    require_perms(actor, "governance.add_release")
    rec = _locked_recommendation(recommendation)
    if rec.level not in (Recommendation.Level.INTERCEPT, Recommendation.Level.LOGISTIC):
        raise ValidationError(
            {"level": f"A {rec.get_level_display().lower()} recommendation is not a recalibration."}
        )
    chosen = _target_sites(rec, sites)
    proposal = rec.statistics["recalibration"]
    pinned = {repr(releases.live_configuration(rec.model, s).thresholds) for s in chosen}  # type: ignore[union-attr]
    if len(pinned) > 1:
        raise ValidationError({"sites": "The sites pin different thresholds; propose per site."})
    live = releases.live_configuration(rec.model, chosen[0])
    mapping = proposal["score_mapping"]
    release = releases.release_create(
        actor=actor,
        model=rec.model,
        kind=ReleaseKind.RECALIBRATION,
        title=f"{rec.get_level_display()} of {rec.model.slug} {rec.version.version}",
        rationale=(
            f"The update ladder on {rec.window_start}–{rec.window_end} (n={rec.n}, "
            f"{rec.events} outcomes) chose {rec.get_level_display().lower()}. Mapping on raw "
            f"scores: intercept {mapping['intercept']:.4f}, slope {mapping['slope']:.4f}."
        ),
        version=rec.version,
        sites=chosen,
        score_mapping=mapping,
        thresholds=live.thresholds if live is not None else None,
        evidence={**_summary(rec), "recalibration": proposal},
        origin=_origin(rec, incident),
    )
    _link(rec, release, actor=actor)
    return release


@transaction.atomic
def open_retrain_draft(*, actor: Any, recommendation: Recommendation) -> Release:
    """A draft retrain release for the ML team to fill (new version, validation evidence);
    it carries the recommendation's statistics as the reason for retraining."""
    require_perms(actor, "governance.add_release")
    rec = _locked_recommendation(recommendation)
    if rec.level != Recommendation.Level.REFIT:
        level = rec.get_level_display().lower()
        raise ValidationError({"level": f"A {level} recommendation does not call for a refit."})
    sites = [rec.site] if rec.site else [d.site for d in _live(rec.model, rec.version)]
    release = releases.release_create(
        actor=actor,
        model=rec.model,
        kind=ReleaseKind.RETRAIN,
        title=f"Retrain {rec.model.slug} (from {rec.version.version})",
        rationale=(
            f"The update ladder on {rec.window_start}–{rec.window_end} (n={rec.n}, "
            f"{rec.events} outcomes) found the associations changed: recalibration is not "
            "enough. Register the retrained version and attach its validation evidence."
        ),
        version=None,
        sites=[s for s in sites if s.is_active],
        evidence=_summary(rec),
        origin=_origin(rec, None),
    )
    _link(rec, release, actor=actor)
    return release


def _live(model: ClinicalModel, version: ModelVersion) -> list[Deployment]:
    return list(
        Deployment.objects.filter(
            model=model, version=version, mode=DeploymentMode.LIVE, ended_at__isnull=True
        ).select_related("site")
    )


# --- threshold change -----------------------------------------------------------------------


def threshold_errors(current: Mapping[str, float], proposed: Any) -> str | None:
    if not isinstance(proposed, Mapping) or not proposed:
        return "Give at least one threshold."
    bad = [
        str(k) for k, v in proposed.items()
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v <= 1
    ]  # fmt: skip
    if bad:
        return f"Thresholds are numbers in [0, 1]: {', '.join(bad)}."
    if current and set(proposed) != set(current):
        return f"Change the values of the thresholds in force: {', '.join(sorted(current))}."
    if dict(proposed) == dict(current):
        return "These are the thresholds in force already."
    return None


def threshold_evidence(
    scope: Scope, window: Window, proposed: Mapping[str, float]
) -> dict[str, Any]:
    """Action rate per threshold, before and after, on every live event of the window; and on
    the labelled ones, the share of outcomes flagged (sensitivity) and the share of flagged
    cases with the outcome (PPV)."""
    everyone = recal.map_scores(window.all_raw, scope.mapping)
    labelled = recal.map_scores(window.raw, scope.mapping)
    return {
        "window": [window.start.isoformat(), window.end.isoformat()],
        "live_events": int(everyone.size),
        "labelled": window.n,
        "outcomes": window.events,
        "before": scope.thresholds,
        "after": {str(k): float(v) for k, v in proposed.items()},
        "action_rate": {
            "before": recal.action_rates(everyone, scope.thresholds),
            "after": recal.action_rates(everyone, proposed),
        },
        "labelled_cases": {
            "before": recal.flag_performance(labelled, window.y, scope.thresholds),
            "after": recal.flag_performance(labelled, window.y, proposed),
        },
    }


@transaction.atomic
def propose_threshold_change(
    *,
    actor: Any,
    model: ClinicalModel,
    thresholds: Mapping[str, float],
    start: date,
    end: date,
    site: Site | None = None,
    rationale: str = "",
    incident: Any = None,
) -> Release:
    """A draft threshold-change release with its effect on the action rate over the window.
    The deployed score mapping is kept."""
    require_perms(actor, "governance.add_release")
    scope = scope_of(model, site)
    problem = threshold_errors(scope.thresholds, thresholds)
    if problem:
        raise ValidationError({"thresholds": problem})
    window = labelled_window(model, scope.version, site, start, end)
    evidence = threshold_evidence(scope, window, thresholds)
    change = ", ".join(
        f"{k} {scope.thresholds.get(k, 'none')} → {float(v):g}"
        for k, v in sorted(thresholds.items())
    )
    return releases.release_create(
        actor=actor,
        model=model,
        kind=ReleaseKind.THRESHOLD,
        title=f"Threshold change for {model.slug} {scope.version.version}: {change}"[:200],
        rationale=rationale.strip() or f"Threshold change {change}; see the action-rate evidence.",
        version=scope.version,
        sites=[d.site for d in scope.deployments],
        score_mapping=_mapping_json(scope.mapping),
        thresholds={str(k): float(v) for k, v in thresholds.items()},
        evidence={"threshold_change": evidence},
        origin=_origin(None, incident),
    )


def window_default(days: int = 90) -> tuple[date, date]:
    """The last ``days`` whole days, ending yesterday (UTC)."""
    end = timezone.now().astimezone(UTC).date() - timedelta(days=1)
    return end - timedelta(days=days - 1), end


def recommendations_of(model: ClinicalModel) -> Sequence[Recommendation]:
    return list(
        Recommendation.objects.filter(model=model).select_related(
            "version", "site", "release", "created_by"
        )
    )
