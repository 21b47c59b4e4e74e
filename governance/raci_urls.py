"""RACI grid pages. Included under ``/governance/`` in the ``governance`` namespace:
``governance:raci-default`` (the health-system default) and ``governance:raci-model``."""

from django.urls import path

from governance import raci_views

urlpatterns = [
    path("raci/", raci_views.raci_default, name="raci-default"),
    path("models/<slug:slug>/raci/", raci_views.raci_model, name="raci-model"),
]
