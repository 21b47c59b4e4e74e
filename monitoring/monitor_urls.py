"""Monitoring pages, mounted at /monitoring/ in the ``monitor`` namespace."""

from django.urls import path

from monitoring import monitor_views

app_name = "monitor"

urlpatterns = [
    path("", monitor_views.overview, name="overview"),
    path("<slug:slug>/", monitor_views.model_dashboard, name="dashboard"),
    path("<slug:slug>/evaluate/", monitor_views.evaluate, name="evaluate"),
    path("<slug:slug>/metric/<str:metric>/", monitor_views.metric, name="metric"),
    path("<slug:slug>/policy/", monitor_views.policy, name="policy"),
    path("<slug:slug>/policy/edit/", monitor_views.policy_edit, name="policy_edit"),
    path(
        "<slug:slug>/versions/<str:version>/reference/",
        monitor_views.reference,
        name="reference",
    ),
    path(
        "<slug:slug>/versions/<str:version>/reference/upload/",
        monitor_views.reference_upload,
        name="reference_upload",
    ),
]
