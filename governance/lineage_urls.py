"""Decision lineage pages, for inclusion under ``/governance/`` in the ``governance``
namespace: a search box by event id and one event's lineage."""

from __future__ import annotations

from django.urls import path

from governance import lineage_views as views

urlpatterns = [
    path("decisions/", views.lineage_search, name="lineage-search"),
    path("decisions/<uuid:event_id>/", views.lineage_detail, name="lineage-detail"),
]
