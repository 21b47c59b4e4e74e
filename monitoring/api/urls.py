from django.urls import include, path

from monitoring.api import views

app_name = "monitoring-api"

urlpatterns = [
    path("predictions/", views.PredictionView.as_view(), name="prediction"),
    path("predictions/bulk/", views.PredictionBulkView.as_view(), name="prediction-bulk"),
    path("", include("monitoring.api.outcome_urls")),
    path("", include("monitoring.api.policy_urls")),
]
