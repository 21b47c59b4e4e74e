"""Registry pages, mounted at /models/. Fixed paths come before ``<slug>/`` so they resolve
(and ``forms.RESERVED_SLUGS`` keeps a model from taking one of them)."""

from __future__ import annotations

from django.urls import path

from registry import views

app_name = "registry"

urlpatterns = [
    path("", views.inventory, name="inventory"),
    path("new/", views.model_register, name="model_register"),
    path("live/", views.live, name="live"),
    path("sites/", views.sites, name="sites"),
    path("sites/new/", views.site_create, name="site_create"),
    path("feeds/", views.feeds, name="feeds"),
    path("feeds/new/", views.feed_create, name="feed_create"),
    path("<slug:slug>/", views.model_detail, name="model_detail"),
    path("<slug:slug>/edit/", views.model_edit, name="model_edit"),
    path("<slug:slug>/history/", views.history, name="history"),
    path("<slug:slug>/versions/new/", views.version_register, name="version_register"),
    path("<slug:slug>/versions/<str:version>/", views.version_detail, name="version_detail"),
    path(
        "<slug:slug>/versions/<str:version>/transition/", views.version_transition,
        name="version_transition",
    ),
    path(
        "<slug:slug>/deployments/<int:pk>/freeze/", views.deployment_freeze,
        name="deployment_freeze",
    ),
]
