from rest_framework.routers import SimpleRouter

from governance.audit.api import views

app_name = "audit-api"

router = SimpleRouter()
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")

urlpatterns = router.urls
