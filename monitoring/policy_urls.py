"""Deferral policy pages, mounted at ``/policies/``."""

from __future__ import annotations

from django.urls import path

from monitoring import policy_views

app_name = "policies"

urlpatterns = [
    path("<slug:slug>/<str:version>/", policy_views.detail, name="detail"),
    path("<slug:slug>/<str:version>/edit/", policy_views.edit, name="edit"),
]
