"""Monitoring engine routes, mounted under ``/api/v1/`` in the ``monitor-api`` namespace."""

from django.urls import path

from monitoring.api import monitor_views

app_name = "monitor-api"

urlpatterns = [
    path("metric-results/", monitor_views.MetricResultListView.as_view(), name="metric-results"),
    path(
        "models/<slug:model_slug>/versions/<str:version>/reference-profiles/",
        monitor_views.ReferenceProfileListView.as_view(),
        name="reference-profiles",
    ),
    path(
        "models/<slug:model_slug>/monitor-policy/",
        monitor_views.MonitorPolicyView.as_view(),
        name="monitor-policy",
    ),
]
