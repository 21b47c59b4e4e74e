"""Review meeting pages, included under ``/governance/`` in the ``governance`` namespace. One
POST route per write, so each has its own access rule."""

from __future__ import annotations

from django.urls import path

from governance import review_views as views

urlpatterns = [
    path("reviews/", views.review_list, name="review-list"),
    path("reviews/<int:pk>/", views.review_meeting, name="review-meeting"),
    path("reviews/<int:pk>/pack/", views.review_pack, name="review-pack"),
    path("reviews/<int:pk>/minutes/", views.review_minutes, name="review-minutes"),
    path("models/<slug:slug>/reviews/", views.review_model, name="review-model"),
    path("models/<slug:slug>/reviews/schedule/", views.review_schedule, name="review-schedule"),
    path("models/<slug:slug>/reviews/plan/", views.review_plan, name="review-plan"),
    path("actions/<int:pk>/close/", views.review_action_close, name="review-action-close"),
]
