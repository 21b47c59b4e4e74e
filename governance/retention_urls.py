"""Retention and legal-hold pages. Included under ``/governance/`` in the ``governance``
namespace: ``governance:retention-holds`` and ``governance:retention-hold-release``."""

from django.urls import path

from governance import retention_views

urlpatterns = [
    path("retention/", retention_views.retention_holds, name="retention-holds"),
    path(
        "retention/holds/<int:pk>/release/",
        retention_views.retention_hold_release,
        name="retention-hold-release",
    ),
]
