"""Registry API routes, mounted under ``/api/v1/``.

A ``SimpleRouter`` (no format-suffix routes): version strings contain dots, which a suffix
route would read as a format (``1.0.0/`` → version ``1.0``, format ``0``).
"""

from rest_framework.routers import SimpleRouter

from registry.api import views

app_name = "registry-api"

router = SimpleRouter()
router.register("models", views.ClinicalModelViewSet, basename="model")
router.register(
    r"models/(?P<model_slug>[-a-zA-Z0-9_]+)/versions",
    views.ModelVersionViewSet,
    basename="model-version",
)
router.register("sites", views.SiteViewSet, basename="site")
router.register("feeds", views.DataFeedViewSet, basename="feed")
router.register("deployments", views.DeploymentViewSet, basename="deployment")

urlpatterns = router.urls
