"""Pages of a model's updates (recalibration and retraining), included under the
``governance`` namespace at /governance/."""

from django.urls import path

from governance import recal_views as views

urlpatterns = [
    path("models/<slug:slug>/updates/", views.overview, name="update-policy"),
    path("models/<slug:slug>/updates/policy/", views.policy_edit, name="update-policy-edit"),
    path(
        "models/<slug:slug>/updates/recommendations/new/",
        views.recommendation_new,
        name="recommendation-new",
    ),
    path(
        "models/<slug:slug>/updates/recommendations/<int:pk>/",
        views.recommendation_detail,
        name="recommendation-detail",
    ),
    path(
        "models/<slug:slug>/updates/recommendations/<int:pk>/recalibrate/",
        views.recommendation_recalibrate,
        name="recommendation-recalibrate",
    ),
    path(
        "models/<slug:slug>/updates/recommendations/<int:pk>/retrain/",
        views.recommendation_retrain,
        name="recommendation-retrain",
    ),
    path("models/<slug:slug>/updates/thresholds/", views.threshold_change, name="threshold-change"),
]
