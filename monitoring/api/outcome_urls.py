"""Outcome and override routes, mounted under ``/api/v1/`` in the ``monitoring-api`` namespace."""

from django.urls import path

from monitoring.api import outcome_views

urlpatterns = [
    path("outcomes/", outcome_views.OutcomeView.as_view(), name="outcome"),
    path("outcomes/bulk/", outcome_views.OutcomeBulkView.as_view(), name="outcome-bulk"),
    path("overrides/", outcome_views.OverrideView.as_view(), name="override"),
]
