from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

api_v1 = [
    path("", include("registry.api.urls")),
    path("", include("governance.audit.api.urls")),
    path("", include("monitoring.api.urls")),
    path("", include("monitoring.api.monitor_urls")),
    path("", include("incidents.api.urls")),
    path("", include("governance.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up code as a file: no inline script (CSP).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="registry:inventory", permanent=False), name="home"),
    path("accounts/access/", include("accounts.access_urls")),
    path("accounts/", include("accounts.urls")),
    path("models/", include("registry.card_urls")),
    path("models/", include("registry.urls")),
    path("audit/", include("governance.audit.urls")),
    path("review/", include("monitoring.urls")),
    path("policies/", include("monitoring.policy_urls")),
    path("monitoring/", include("monitoring.monitor_urls")),
    path("incidents/", include("incidents.urls")),
    path("governance/", include("governance.urls")),
    path("api/v1/", include(api_v1)),
]

handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
