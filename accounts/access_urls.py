"""The access review, mounted at /accounts/access/."""

from __future__ import annotations

from django.urls import path

from accounts import access_views

app_name = "access"

urlpatterns = [
    path("", access_views.access_review_page, name="review"),
    path("break-glass/<int:pk>/reviewed/", access_views.grant_reviewed, name="grant_reviewed"),
]
