"""Read queries across registry records, for the pages (writes live in ``registry.services``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Model, Prefetch, Q, QuerySet

from accounts.roles import SERVICE_GROUP
from governance.audit.models import AuditEvent
from registry.models import (
    ClinicalModel,
    CohortColumn,
    DataFeed,
    Deployment,
    DeploymentMode,
    FeatureSpec,
    ModelVersion,
    Site,
)

User = get_user_model()


# --- People ---------------------------------------------------------------------------------

def human_users(*, including: Sequence[Any] = ()) -> QuerySet[Any]:
    """Active people who may own a model or a feed: never a model service's account.
    ``including`` keeps current owners choosable (an edit need not replace a departed owner)."""
    people = User.objects.filter(is_active=True, service_account__isnull=True).exclude(
        groups__name=SERVICE_GROUP
    )
    kept = [p for p in including if p is not None]
    if kept:
        people = User.objects.filter(Q(pk__in=people.values("pk")) | Q(pk__in=kept))
    return people.order_by("last_name", "first_name", "username")


def model_owners() -> QuerySet[Any]:
    """Users who own at least one model, clinically or technically (the inventory filter)."""
    return (
        User.objects.filter(
            Q(clinical_models_owned__isnull=False) | Q(technical_models_owned__isnull=False)
        )
        .distinct()
        .order_by("last_name", "first_name", "username")
    )


# --- Inventory ------------------------------------------------------------------------------

def inventory(
    *,
    risk_tier: str = "",
    status: str = "",
    owner: Any = None,
    site: Site | None = None,
    search: str = "",
) -> QuerySet[ClinicalModel]:
    """The model inventory, each model with ``versions_newest_first`` and
    ``running_deployments`` prefetched. ``site`` keeps models *live* (not shadow) there now."""
    models = ClinicalModel.objects.select_related("clinical_owner", "technical_owner")
    if risk_tier:
        models = models.filter(risk_tier=risk_tier)
    if status:
        models = models.filter(status=status)
    if owner is not None:
        models = models.filter(Q(clinical_owner=owner) | Q(technical_owner=owner))
    if site is not None:
        live_here = Deployment.objects.active().filter(site=site, mode=DeploymentMode.LIVE)
        models = models.filter(pk__in=live_here.values("model_id"))
    for word in search.split():
        models = models.filter(
            Q(name__icontains=word) | Q(slug__icontains=word) | Q(summary__icontains=word)
            | Q(keywords__icontains=word) | Q(intended_use__icontains=word)
            | Q(intended_population__icontains=word)
        )
    return models.prefetch_related(
        Prefetch(
            "versions", queryset=ModelVersion.objects.order_by("-created_at"),
            to_attr="versions_newest_first",
        ),
        Prefetch(
            "deployments",
            queryset=Deployment.objects.active().select_related("site", "version")
            .order_by("site__code"),
            to_attr="running_deployments",
        ),
    )


# --- One model ------------------------------------------------------------------------------

def model_versions(model: ClinicalModel) -> QuerySet[ModelVersion]:
    """The model's versions, newest first, each with its ``feature_count``."""
    return (
        model.versions.select_related("created_by")
        .annotate(feature_count=Count("features"))
        .order_by("-created_at")
    )


def model_deployments(model: ClinicalModel) -> QuerySet[Deployment]:
    """Every deployment of the model, grouped by site (for ``{% regroup %}``), newest first."""
    return (
        Deployment.objects.filter(model=model)
        .select_related("site", "version", "started_by", "ended_by")
        .order_by("site__code", "-started_at")
    )


def version_deployments(version: ModelVersion) -> QuerySet[Deployment]:
    return version.deployments.select_related("site", "started_by", "ended_by").order_by(
        "site__code", "-started_at"
    )


def version_features(version: ModelVersion) -> QuerySet[FeatureSpec]:
    return version.features.select_related("feed").order_by("name")


# --- Live deployments -----------------------------------------------------------------------

def deployments_live_at(*, model: ClinicalModel, site: Site, at: datetime) -> list[Deployment]:
    """The exact answer to "which version ran at site S at time T" (live and shadow rows)."""
    return list(
        Deployment.objects.live_at(site=site, model=model, at=at)
        .select_related("version", "site", "started_by", "ended_by")
        .order_by("mode", "-started_at")
    )


def running_deployments() -> QuerySet[Deployment]:
    """Every deployment running now, across all models and sites."""
    return (
        Deployment.objects.active()
        .select_related("model", "version", "site", "started_by")
        .order_by("model__name", "site__code", "mode")
    )


# --- Sites and feeds ------------------------------------------------------------------------

def sites_with_deployments() -> QuerySet[Site]:
    """Sites, each with ``running_deployments`` prefetched."""
    return Site.objects.prefetch_related(
        Prefetch(
            "deployments",
            queryset=Deployment.objects.active().select_related("model", "version")
            .order_by("model__name"),
            to_attr="running_deployments",
        )
    ).order_by("code")


def feeds_with_features() -> QuerySet[DataFeed]:
    """Data feeds, each with the features (and so the model versions) that depend on it."""
    return DataFeed.objects.select_related("owner").prefetch_related(
        Prefetch(
            "features",
            queryset=FeatureSpec.objects.select_related("version__model")
            .order_by("version__model__name", "-version__created_at", "name"),
        )
    ).order_by("name")


# --- History --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str
    new: str


@dataclass(frozen=True)
class HistoryEntry:
    """One simple-history row of a model's records. ``changes`` is empty for creation."""

    when: datetime
    who: Any
    kind: str
    record: str
    reason: str
    changes: tuple[FieldChange, ...]


_KINDS = {"+": "created", "~": "changed", "-": "deleted"}


def _shown(value: Any, limit: int = 80) -> str:
    if value in (None, ""):
        return "—"
    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _change(row: Any, change: Any) -> FieldChange:
    """One changed field; a foreign key is shown as the record it names, not its id."""
    old, new = change.old, change.new
    field = row.instance_type._meta.get_field(change.field)
    if field.is_relation:
        named = field.related_model._default_manager.in_bulk(
            [v for v in (old, new) if v is not None]
        )
        old, new = named.get(old, old), named.get(new, new)
    return FieldChange(change.field, _shown(old), _shown(new))


def _entries(rows: Iterable[Any], label: Any) -> list[HistoryEntry]:
    """Rows of one history table, diffed against the previous row of the same record."""
    entries, previous = [], {}
    for row in sorted(rows, key=lambda r: (r.history_date, r.history_id)):
        before = previous.get(row.id)
        changes: tuple[FieldChange, ...] = ()
        if before is not None:
            changes = tuple(_change(row, c) for c in row.diff_against(before).changes)
        previous[row.id] = row
        entries.append(HistoryEntry(
            when=row.history_date, who=row.history_user, kind=_KINDS.get(row.history_type, "?"),
            record=label(row), reason=row.history_change_reason or "", changes=changes,
        ))
    return entries


def model_history(model: ClinicalModel) -> list[HistoryEntry]:
    """Every recorded state change of the model, its versions, features, cohort columns and
    deployments, newest first."""
    versions = list(ModelVersion.history.filter(model_id=model.pk).select_related("history_user"))
    version_names = {v.id: v.version for v in versions}
    site_codes = dict(Site.objects.values_list("pk", "code"))
    per_version = {"version_id__in": list(version_names)}
    entries = [
        *_entries(ClinicalModel.history.filter(id=model.pk).select_related("history_user"),
                  lambda r: f"model {r.slug}"),
        *_entries(versions, lambda r: f"version {r.version}"),
        *_entries(FeatureSpec.history.filter(**per_version).select_related("history_user"),
                  lambda r: f"feature {r.name} of {version_names.get(r.version_id, '?')}"),
        *_entries(CohortColumn.history.filter(**per_version).select_related("history_user"),
                  lambda r: f"cohort column {r.name} of {version_names.get(r.version_id, '?')}"),
        *_entries(Deployment.history.filter(model_id=model.pk).select_related("history_user"),
                  lambda r: f"deployment #{r.id}: {version_names.get(r.version_id, '?')} "
                            f"at {site_codes.get(r.site_id, '?')} ({r.mode})"),
    ]
    return sorted(entries, key=lambda e: e.when, reverse=True)


def _object_filter(model_class: type[Model], ids: Sequence[Any]) -> Q:
    return Q(object_type=model_class._meta.label_lower, object_id__in=[str(i) for i in ids])


def model_audit_events(model: ClinicalModel) -> QuerySet[AuditEvent]:
    """Audit events about the model and its versions, features, cohorts and deployments
    (``AuditEvent.objects.for_object`` for each, in one query), newest first."""
    version_ids = list(ModelVersion.objects.filter(model=model).values_list("pk", flat=True))
    wanted = (
        _object_filter(ClinicalModel, [model.pk])
        | _object_filter(ModelVersion, version_ids)
        | _object_filter(FeatureSpec, list(
            FeatureSpec.objects.filter(version_id__in=version_ids).values_list("pk", flat=True)))
        | _object_filter(CohortColumn, list(
            CohortColumn.objects.filter(version_id__in=version_ids).values_list("pk", flat=True)))
        | _object_filter(Deployment, list(
            Deployment.objects.filter(model=model).values_list("pk", flat=True)))
    )
    return AuditEvent.objects.filter(wanted).order_by("-seq")

