"""Every write to the registry: permission check, validation, save with history, audit event."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from accounts.permissions import require_perms
from governance.audit.services import record
from registry.models import (
    RESERVED_SLUGS,
    VERSION_TRANSITIONS,
    ClinicalModel,
    CohortColumn,
    DataFeed,
    Deployment,
    DeploymentMode,
    FeatureSpec,
    ModelVersion,
    Site,
    VersionStatus,
)

# Fields a caller may set on each record (everything else is derived or system-set).
MODEL_FIELDS = frozenset(
    f.name
    for f in ClinicalModel._meta.get_fields()
    if f.concrete and f.name not in {"id", "created_at"}
)
VERSION_FIELDS = frozenset(
    f.name
    for f in ModelVersion._meta.get_fields()
    if f.concrete and f.name not in {"id", "model", "status", "created_by", "created_at"}
)
FEATURE_FIELDS = frozenset(
    {
        "name",
        "dtype",
        "unit",
        "min_value",
        "max_value",
        "categories",
        "required",
        "missing_allowed",
        "description",
        "feed",
    }
)
COHORT_FIELDS = frozenset({"name", "values", "description"})


def _user(actor: Any) -> Any:
    return actor if actor is not None and actor.is_authenticated else None


def _check_fields(given: Iterable[str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ValidationError({name: "Unknown field." for name in unknown})


def _save(instance: models.Model, *, actor: Any, reason: str, **kwargs: Any) -> None:
    instance._history_user = _user(actor)  # type: ignore[attr-defined]
    instance._change_reason = reason  # type: ignore[attr-defined]
    instance.save(**kwargs)


def _full_clean(
    instance: models.Model, *, prefix: str = "", exclude: list[str] | None = None
) -> dict[str, list[str]]:
    try:
        instance.full_clean(exclude=exclude, validate_unique=False)
    except ValidationError as exc:
        return {f"{prefix}{k}": v for k, v in exc.message_dict.items()}
    return {}


def _jsonable(value: Any) -> Any:
    if isinstance(value, models.Model):
        return str(value.pk)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# --- Clinical models ------------------------------------------------------------------------


@transaction.atomic
def model_register(*, actor: Any, fields: Mapping[str, Any]) -> ClinicalModel:
    require_perms(actor, "registry.add_clinicalmodel")
    _check_fields(fields, MODEL_FIELDS)
    model = ClinicalModel(**fields)
    errors = _full_clean(model)
    if ClinicalModel.objects.filter(slug=fields.get("slug")).exists():
        errors.setdefault("slug", []).append("A model with this slug is already registered.")
    if fields.get("slug") in RESERVED_SLUGS:
        errors.setdefault("slug", []).append(
            f"{fields['slug']!r} is reserved; choose another slug."
        )
    if errors:
        raise ValidationError(errors)
    _save(model, actor=actor, reason="registered")
    record(
        actor=actor,
        action="model.register",
        target=model,
        summary=f"Registered model {model.slug} ({model.get_risk_tier_display()} risk)",
        payload={"slug": model.slug, "risk_tier": model.risk_tier},
    )
    return model


@transaction.atomic
def model_update(
    *, actor: Any, model: ClinicalModel, fields: Mapping[str, Any], reason: str
) -> ClinicalModel:
    require_perms(actor, "registry.change_clinicalmodel")
    _check_fields(fields, MODEL_FIELDS - {"slug"})
    if not reason.strip():
        raise ValidationError({"reason": "Say why the model's record changes."})
    model = ClinicalModel.objects.select_for_update().get(pk=model.pk)
    changed = {}
    for name, value in fields.items():
        old = getattr(model, name)
        if old != value:
            changed[name] = [_jsonable(old), _jsonable(value)]
            setattr(model, name, value)
    if not changed:
        return model
    errors = _full_clean(model)
    if errors:
        raise ValidationError(errors)
    _save(model, actor=actor, reason=reason)
    record(
        actor=actor,
        action="model.update",
        target=model,
        summary=f"Updated {model.slug}: {', '.join(sorted(changed))}",
        payload={"changed_fields": sorted(changed), "reason": reason},
    )
    return model


# --- Versions, features, cohorts ------------------------------------------------------------


def _build_features(
    version: ModelVersion, features: list[Mapping[str, Any]]
) -> tuple[list[FeatureSpec], dict[str, list[str]]]:
    built, errors, seen = [], {}, set()
    if not features:
        errors["features"] = ["Declare at least one input feature."]
    for index, spec in enumerate(features):
        prefix = f"features[{index}]."
        unknown = sorted(set(spec) - FEATURE_FIELDS)
        for name in unknown:
            errors[f"{prefix}{name}"] = ["Unknown field."]
        feature = FeatureSpec(
            version=version, **{k: v for k, v in spec.items() if k in FEATURE_FIELDS}
        )
        errors.update(_full_clean(feature, prefix=prefix, exclude=["version"]))
        if feature.name in seen:
            errors[f"{prefix}name"] = [f"Feature {feature.name!r} is declared twice."]
        seen.add(feature.name)
        built.append(feature)
    return built, errors


def _build_cohorts(
    version: ModelVersion, cohorts: list[Mapping[str, Any]], feature_names: set[str]
) -> tuple[list[CohortColumn], dict[str, list[str]]]:
    built, errors, seen = [], {}, set()
    for index, spec in enumerate(cohorts):
        prefix = f"cohorts[{index}]."
        for name in sorted(set(spec) - COHORT_FIELDS):
            errors[f"{prefix}{name}"] = ["Unknown field."]
        cohort = CohortColumn(
            version=version, **{k: v for k, v in spec.items() if k in COHORT_FIELDS}
        )
        errors.update(_full_clean(cohort, prefix=prefix, exclude=["version"]))
        if not isinstance(cohort.values, list) or not all(
            isinstance(v, str) and v for v in cohort.values
        ):
            errors[f"{prefix}values"] = ["Cohort values must be a list of non-empty text."]
        if cohort.name in seen:
            errors[f"{prefix}name"] = [f"Cohort column {cohort.name!r} is declared twice."]
        seen.add(cohort.name)
        built.append(cohort)
    return built, errors


@transaction.atomic
def version_register(
    *,
    actor: Any,
    model: ClinicalModel,
    fields: Mapping[str, Any],
    features: list[Mapping[str, Any]],
    cohorts: list[Mapping[str, Any]] | None = None,
) -> ModelVersion:
    """Register a version with its feature spec and cohort columns, all or nothing."""
    require_perms(actor, "registry.add_modelversion")
    _check_fields(fields, VERSION_FIELDS)
    version = ModelVersion(model=model, created_by=_user(actor) or model.technical_owner, **fields)
    errors = _full_clean(version, exclude=["model", "created_by"])
    if ModelVersion.objects.filter(model=model, version=fields.get("version")).exists():
        errors.setdefault("version", []).append(
            f"{model.slug} already has a version {fields.get('version')!r}; "
            "versions are immutable, register a new one."
        )
    feature_rows, feature_errors = _build_features(version, list(features))
    cohort_rows, cohort_errors = _build_cohorts(
        version, list(cohorts or []), {f.name for f in feature_rows}
    )
    errors.update(feature_errors)
    errors.update(cohort_errors)
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            _save(version, actor=actor, reason="registered")
    except IntegrityError as exc:  # a concurrent registration of the same version string
        raise ValidationError({"version": "This version was registered a moment ago."}) from exc
    for row in [*feature_rows, *cohort_rows]:
        row.version = version
        _save(row, actor=actor, reason=f"declared with version {version.version}")
    record(
        actor=actor,
        action="version.register",
        target=version,
        summary=f"Registered {model.slug} version {version.version}",
        payload={
            "model": model.slug,
            "version": version.version,
            "artifact_sha256": version.artifact_sha256,
            "features": sorted(f.name for f in feature_rows),
            "cohorts": sorted(c.name for c in cohort_rows),
        },
    )
    return version


@transaction.atomic
def version_transition(
    *, actor: Any, version: ModelVersion, to_status: str, reason: str
) -> ModelVersion:
    """Move a version along its lifecycle. Approval is the medical director's (it makes the
    version deployable); the other moves are the ML engineer's."""
    require_perms(
        actor,
        "registry.approve_modelversion"
        if to_status == VersionStatus.APPROVED
        else "registry.change_modelversion",
    )
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if to_status not in VersionStatus.values:
        raise ValidationError({"status": f"Unknown status {to_status!r}."})
    if to_status == VersionStatus.DEPLOYED:
        raise ValidationError({"status": "A version becomes deployed only by deploying it."})
    if to_status not in VERSION_TRANSITIONS[version.status]:
        raise ValidationError({"status": f"A {version.status} version cannot become {to_status}."})
    if not reason.strip():
        raise ValidationError({"reason": "Say why the status changes."})
    if (
        to_status == VersionStatus.RETIRED
        and version.deployments.filter(ended_at__isnull=True).exists()
    ):
        raise ValidationError(
            {"status": f"{version} is still deployed; end its deployments first."}
        )
    old = version.status
    version.status = to_status
    _save(version, actor=actor, reason=reason, update_fields=["status"])
    record(
        actor=actor,
        action="version.transition",
        target=version,
        summary=f"{version} {old} → {to_status}",
        payload={"from": old, "to": to_status, "reason": reason},
    )
    return version


# --- Feeds and sites ------------------------------------------------------------------------


@transaction.atomic
def datafeed_create(*, actor: Any, fields: Mapping[str, Any]) -> DataFeed:
    require_perms(actor, "registry.add_datafeed")
    _check_fields(
        fields,
        {"slug", "name", "source_system", "expected_cadence_minutes", "owner", "description"},
    )
    feed = DataFeed(**fields)
    errors = _full_clean(feed)
    if DataFeed.objects.filter(slug=fields.get("slug")).exists():
        errors.setdefault("slug", []).append("A feed with this slug exists.")
    if errors:
        raise ValidationError(errors)
    _save(feed, actor=actor, reason="registered")
    record(
        actor=actor,
        action="datafeed.create",
        target=feed,
        summary=f"Registered data feed {feed.slug}",
        payload={"slug": feed.slug, "source_system": feed.source_system},
    )
    return feed


@transaction.atomic
def site_create(*, actor: Any, code: str, name: str) -> Site:
    require_perms(actor, "registry.add_site")
    site = Site(code=code, name=name)
    errors = _full_clean(site)
    if Site.objects.filter(code=code).exists():
        errors.setdefault("code", []).append("A site with this code exists.")
    if errors:
        raise ValidationError(errors)
    _save(site, actor=actor, reason="registered")
    record(
        actor=actor,
        action="site.create",
        target=site,
        summary=f"Registered site {code}",
        payload={"code": code},
    )
    return site


# --- Deployments ----------------------------------------------------------------------------


@transaction.atomic
def deployment_start(
    *,
    actor: Any,
    version: ModelVersion,
    site: Site,
    reason: str,
    mode: str = DeploymentMode.LIVE,
    at: datetime | None = None,
    score_mapping: Mapping[str, Any] | None = None,
    thresholds: Mapping[str, float] | None = None,
    deferral_policy_number: int | None = None,
    on_behalf_of: Any = None,
) -> Deployment:
    """Start ``version`` at ``site`` with the configuration the gate applies (a release's
    recalibration, thresholds and deferral policy; none: the version's own). A live deployment
    ends the model's previous live one there (kept, with its end time), so history is never
    overwritten. The same version may start again only with another configuration.

    ``actor=None`` with ``on_behalf_of``: a signed release carried out by the system for the
    person who deployed it (governance.deploy checked their permission to deploy releases)."""
    require_perms(actor, "registry.add_deployment")
    actor = person = _user(actor) or on_behalf_of  # recorded as theirs from here on
    # Lock the model first: two deployments of one model start one after the other, so the
    # second cleanly supersedes the first instead of failing on the one-live constraint.
    ClinicalModel.objects.select_for_update().get(pk=version.model_id)
    version = ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
    if mode not in DeploymentMode.values:
        raise ValidationError({"mode": f"Unknown mode {mode!r}."})
    if not site.is_active:
        raise ValidationError({"site": f"Site {site.code} is inactive."})
    if not version.is_deployable():
        raise ValidationError(
            {"version": f"{version} is {version.status}; only an approved version can be deployed."}
        )
    if not reason.strip():
        raise ValidationError({"reason": "Say why (e.g. the release it carries out)."})
    config = deployment_config_errors(
        version,
        score_mapping=score_mapping,
        thresholds=thresholds,
        deferral_policy_number=deferral_policy_number,
    )
    now = at or timezone.now()
    previous = None
    if mode == DeploymentMode.LIVE:
        previous = (
            Deployment.objects.select_for_update()
            .filter(model=version.model, site=site, mode=DeploymentMode.LIVE, ended_at__isnull=True)
            .first()
        )
        if previous is not None:
            if previous.version_id == version.pk and _config(previous) == config:
                raise ValidationError(
                    {"version": f"{version} is already live at {site.code} as configured."}
                )
            _end(previous, actor=actor, reason=f"superseded by {version.version}", at=now)
            _settle_superseded(previous.version, actor=actor)
    deployment = Deployment(
        model=version.model,
        version=version,
        site=site,
        mode=mode,
        started_at=now,
        started_by=person or version.created_by,
        reason=reason,
        score_mapping=config[0],
        thresholds=config[1],
        deferral_policy_number=config[2],
    )
    if previous is not None and previous.frozen:
        # The kill switch survives a new configuration: only a medical director's explicit
        # unfreeze (with their password) lets the model act again.
        deployment.frozen, deployment.frozen_at = True, now
        deployment.frozen_reason = f"still frozen: {previous.frozen_reason}"[:300]
    _save(deployment, actor=actor, reason=reason)
    if mode == DeploymentMode.LIVE and version.status != VersionStatus.DEPLOYED:
        version.status = VersionStatus.DEPLOYED
        _save(version, actor=actor, reason=f"deployed at {site.code}", update_fields=["status"])
    record(
        actor=actor,
        action="deployment.start",
        target=deployment,
        summary=f"{version} {mode} at {site.code}",
        payload={
            "model": version.model.slug,
            "version": version.version,
            "site": site.code,
            "mode": mode,
            "reason": reason,
            "superseded_deployment": previous.pk if previous else None,
            "score_mapping": config[0],
            "thresholds": config[1],
            "deferral_policy_number": config[2],
            "frozen": deployment.frozen,
        },
    )
    return deployment


Config = tuple[dict[str, Any], dict[str, float] | None, int | None]


def _config(deployment: Deployment) -> Config:
    return (
        dict(deployment.score_mapping or {}),
        deployment.thresholds,
        deployment.deferral_policy_number,
    )


def deployment_config_errors(
    version: ModelVersion,
    *,
    score_mapping: Mapping[str, Any] | None,
    thresholds: Mapping[str, float] | None,
    deferral_policy_number: int | None,
) -> Config:
    """The configuration normalised, or a ValidationError naming every problem."""
    errors: dict[str, str] = {}
    mapping: dict[str, Any] = {}
    if score_mapping:
        method = score_mapping.get("method")
        numbers = {k: score_mapping.get(k) for k in ("intercept", "slope")}
        if method not in ("intercept", "logistic"):
            errors["score_mapping"] = "The mapping's method is 'intercept' or 'logistic'."
        elif not all(
            isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < 1e6
            for v in numbers.values()
        ):
            errors["score_mapping"] = "The mapping needs a finite intercept and slope."
        elif numbers["slope"] <= 0:
            errors["score_mapping"] = "A slope of zero or below would reverse or flatten risk."
        elif method == "intercept" and numbers["slope"] != 1:
            errors["score_mapping"] = "Recalibration-in-the-large keeps the slope at 1."
        else:
            mapping = {"method": method, **{k: float(v) for k, v in numbers.items()}}
    cut = None
    if thresholds is not None:
        bad = [
            name
            for name, value in thresholds.items()
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1
        ]
        if bad:
            errors["thresholds"] = f"Thresholds must be numbers in [0, 1]: {', '.join(bad)}."
        else:
            cut = {str(k): float(v) for k, v in thresholds.items()}
    if (
        deferral_policy_number is not None
        and not version.deferral_policies.filter(number=deferral_policy_number).exists()
    ):
        errors["deferral_policy_number"] = (
            f"{version} has no deferral policy v{deferral_policy_number}."
        )
    if errors:
        raise ValidationError(errors)
    return mapping, cut, deferral_policy_number


def _settle_superseded(version: ModelVersion, *, actor: Any) -> None:
    """A version no longer live anywhere goes back to approved (still deployable: rollback)."""
    still_live = version.deployments.filter(ended_at__isnull=True, mode=DeploymentMode.LIVE)
    if version.status == VersionStatus.DEPLOYED and not still_live.exists():
        version.status = VersionStatus.APPROVED
        _save(version, actor=actor, reason="no longer live at any site", update_fields=["status"])


def _end(deployment: Deployment, *, actor: Any, reason: str, at: datetime) -> None:
    deployment.ended_at, deployment.ended_by, deployment.end_reason = at, _user(actor), reason
    _save(
        deployment, actor=actor, reason=reason, update_fields=["ended_at", "ended_by", "end_reason"]
    )
    record(
        actor=actor,
        action="deployment.end",
        target=deployment,
        summary=f"{deployment.version} ended at {deployment.site.code}",
        payload={"site": deployment.site.code, "reason": reason},
    )


@transaction.atomic
def deployment_end(*, actor: Any, deployment: Deployment, reason: str) -> Deployment:
    require_perms(actor, "registry.change_deployment")
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if deployment.ended_at is not None:
        raise ValidationError({"deployment": "This deployment has already ended."})
    if not reason.strip():
        raise ValidationError({"reason": "Say why the deployment ends."})
    _end(deployment, actor=actor, reason=reason, at=timezone.now())
    _settle_superseded(deployment.version, actor=actor)
    return deployment


@transaction.atomic
def deployment_set_frozen(
    *, actor: Any, deployment: Deployment, frozen: bool, reason: str
) -> Deployment:
    """The kill switch: a frozen deployment defers every case to a human."""
    require_perms(actor, "registry.freeze_deployment")
    deployment = (
        Deployment.objects.select_for_update()
        .select_related("site", "version")
        .get(pk=deployment.pk)
    )
    if deployment.ended_at is not None:
        raise ValidationError({"deployment": "An ended deployment cannot be frozen or unfrozen."})
    if deployment.frozen == frozen:
        raise ValidationError(
            {"frozen": "The deployment is already " + ("frozen." if frozen else "running.")}
        )
    if not reason.strip():
        raise ValidationError({"reason": "Say why."})
    deployment.frozen = frozen
    deployment.frozen_at = timezone.now() if frozen else None
    deployment.frozen_reason = reason if frozen else ""
    _save(
        deployment,
        actor=actor,
        reason=reason,
        update_fields=["frozen", "frozen_at", "frozen_reason"],
    )
    record(
        actor=actor,
        action="deployment.freeze" if frozen else "deployment.unfreeze",
        target=deployment,
        summary=(
            f"{deployment.version} at {deployment.site.code} {'frozen' if frozen else 'unfrozen'}"
        ),
        payload={"site": deployment.site.code, "reason": reason},
    )
    return deployment
