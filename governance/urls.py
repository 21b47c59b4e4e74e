"""Governance pages, mounted at ``/governance/`` in the ``governance`` namespace: releases and
signatures, deployments and rollback, the RACI grid, update policies and recommendations, and
review meetings."""

from django.urls import include, path

from governance import views

app_name = "governance"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("releases/", views.release_list, name="release-list"),
    path("releases/new/", views.release_new, name="release-new"),
    path("releases/<int:pk>/", views.release_detail, name="release-detail"),
    path("releases/<int:pk>/edit/", views.release_edit, name="release-edit"),
    path("releases/<int:pk>/submit/", views.release_submit, name="release-submit"),
    path("releases/<int:pk>/sign/", views.release_sign, name="release-sign"),
    path("releases/<int:pk>/reject/", views.release_reject, name="release-reject"),
    path("releases/<int:pk>/withdraw/", views.release_withdraw, name="release-withdraw"),
    path("releases/<int:pk>/deploy/", views.release_deploy, name="release-deploy"),
    path("releases/<int:pk>/evidence/", views.release_evidence, name="release-evidence"),
    path(
        "releases/<int:pk>/files/<int:file_pk>/",
        views.evidence_download,
        name="release-file",
    ),
    path(
        "releases/<int:pk>/signatures/<int:signature_pk>/void/",
        views.signature_void,
        name="signature-void",
    ),
    path("signing/<int:user_pk>/unlock/", views.signing_unlock, name="signing-unlock"),
    path("models/<slug:slug>/deployments/", views.deployments, name="deployments"),
    path("models/<slug:slug>/rollback/", views.rollback, name="rollback"),
    path("", include("governance.raci_urls")),
    path("", include("governance.recal_urls")),
    path("", include("governance.review_urls")),
    path("", include("governance.retention_urls")),
    path("", include("governance.packet_urls")),
    path("", include("governance.lineage_urls")),
]
