"""Filters of the registry's API lists. An unknown choice (risk tier, site code, model slug) is a
400 with the field named, never a silently empty list."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters

from registry.models import (
    ClinicalModel,
    Deployment,
    DeploymentMode,
    ModelStatus,
    RiskTier,
    Site,
)


class ClinicalModelFilter(filters.FilterSet):
    risk_tier = filters.ChoiceFilter(choices=RiskTier.choices)
    status = filters.ChoiceFilter(choices=ModelStatus.choices)
    owner = filters.CharFilter(
        method="filter_owner", label="Clinical or technical owner (user id or username)"
    )
    site = filters.ModelChoiceFilter(
        queryset=Site.objects.all(),
        to_field_name="code",
        method="filter_site",
        label="Site code: models with a live deployment running there",
    )
    search = filters.CharFilter(method="filter_search", label="Text in slug, name or purpose")

    class Meta:
        model = ClinicalModel
        fields = ["risk_tier", "status", "owner", "site", "search"]

    def filter_owner(
        self, queryset: QuerySet[ClinicalModel], name: str, value: str
    ) -> QuerySet[ClinicalModel]:
        by_name = Q(clinical_owner__username=value) | Q(technical_owner__username=value)
        if value.isdigit():
            by_name |= Q(clinical_owner_id=int(value)) | Q(technical_owner_id=int(value))
        return queryset.filter(by_name)

    def filter_site(
        self, queryset: QuerySet[ClinicalModel], name: str, value: Site
    ) -> QuerySet[ClinicalModel]:
        running = Deployment.objects.active().filter(site=value, mode=DeploymentMode.LIVE)
        return queryset.filter(pk__in=running.values("model_id"))

    def filter_search(
        self, queryset: QuerySet[ClinicalModel], name: str, value: str
    ) -> QuerySet[ClinicalModel]:
        return queryset.filter(
            Q(slug__icontains=value)
            | Q(name__icontains=value)
            | Q(summary__icontains=value)
            | Q(intended_use__icontains=value)
            | Q(keywords__icontains=value)
        )


class DeploymentFilter(filters.FilterSet):
    model = filters.ModelChoiceFilter(
        queryset=ClinicalModel.objects.all(), to_field_name="slug", label="Model slug"
    )
    site = filters.ModelChoiceFilter(
        queryset=Site.objects.all(), to_field_name="code", label="Site code"
    )
    active = filters.BooleanFilter(
        field_name="ended_at", lookup_expr="isnull", label="Still running"
    )
    mode = filters.ChoiceFilter(choices=DeploymentMode.choices)
    frozen = filters.BooleanFilter()

    class Meta:
        model = Deployment
        fields = ["model", "site", "active", "mode", "frozen"]
