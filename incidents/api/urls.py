"""Incident API routes, mounted under ``/api/v1/`` in the ``incidents-api`` namespace."""

from rest_framework.routers import SimpleRouter

from incidents.api import views

app_name = "incidents-api"

router = SimpleRouter()
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("incidents", views.IncidentViewSet, basename="incident")
router.register("drills", views.DrillViewSet, basename="drill")
router.register("runbooks", views.RunbookViewSet, basename="runbook")

urlpatterns = router.urls
