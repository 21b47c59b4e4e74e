"""Governance API routes, mounted under ``/api/v1/`` in the ``governance-api`` namespace."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from governance.api import views

app_name = "governance-api"

router = SimpleRouter()
router.register("releases", views.ReleaseViewSet, basename="release")

urlpatterns = [
    *router.urls,
    path("", include("governance.api.reviews")),
    path("", include("governance.api.raci")),
    path("", include("governance.api.recal")),
    path("", include("governance.api.lineage")),
]
