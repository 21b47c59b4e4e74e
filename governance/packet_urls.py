"""Audit packet pages, for inclusion under ``/governance/`` in the ``governance`` namespace:
one model's packet (its sections, with the download buttons) and the download itself."""

from __future__ import annotations

from django.urls import path

from governance import packet_views as views

urlpatterns = [
    path("models/<slug:slug>/packet/", views.packet_model, name="packet-model"),
    path("models/<slug:slug>/packet/download/", views.packet_download, name="packet-download"),
]
