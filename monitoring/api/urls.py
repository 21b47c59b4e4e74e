from django.urls import include, path

from monitoring.api import fast, views

app_name = "monitoring-api"

urlpatterns = [
    # The hot path: a plain Django view that hands anything unusual to views.PredictionView.
    path("predictions/", fast.prediction, name="prediction"),
    path("predictions/bulk/", views.PredictionBulkView.as_view(), name="prediction-bulk"),
    path("", include("monitoring.api.outcome_urls")),
    path("", include("monitoring.api.policy_urls")),
]
