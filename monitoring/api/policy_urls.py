"""Deferral policy routes, mounted under ``/api/v1/`` in the ``monitoring-api`` namespace."""

from django.urls import path

from monitoring.api import policy_views

PREFIX = "models/<slug:model_slug>/versions/<str:version>/deferral-policies/"

urlpatterns = [
    path(PREFIX, policy_views.DeferralPolicyListView.as_view(), name="deferral-policy-list"),
    path(
        f"{PREFIX}<int:number>/",
        policy_views.DeferralPolicyDetailView.as_view(),
        name="deferral-policy-detail",
    ),
]
