"""Review queue pages, mounted at /review/."""

from __future__ import annotations

from django.urls import path

from monitoring import views

app_name = "review"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("<int:pk>/", views.case, name="case"),
    path("<int:pk>/decide/", views.decide, name="decide"),
]
