"""The OpenAPI schema and its docs page: complete, warning-free, for logged-in people only,
and served from local static files (hospitals run air-gapped: no CDN)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from accounts.services import service_account_create
from tests.factories import ClinicalModelFactory

SCHEMA, DOCS = "/api/v1/schema/", "/api/v1/docs/"

#: Every endpoint of the registry and audit APIs, with its methods.
ENDPOINTS = {
    "/api/v1/releases/": {"get", "post"},
    "/api/v1/releases/{id}/": {"get", "patch"},
    "/api/v1/releases/{id}/sign/": {"post"},
    "/api/v1/releases/{id}/submit/": {"post"},
    "/api/v1/releases/{id}/deploy/": {"post"},
    "/api/v1/releases/rollback/": {"post"},
    "/api/v1/raci/": {"get", "put"},
    "/api/v1/decisions/{event_id}/lineage/": {"get"},
    "/api/v1/raci/{slug}/": {"get", "put"},
    "/api/v1/models/": {"get", "post"},
    "/api/v1/models/{slug}/": {"get", "patch"},
    "/api/v1/models/{model_slug}/versions/": {"get", "post"},
    "/api/v1/models/{model_slug}/versions/{version}/": {"get"},
    "/api/v1/models/{model_slug}/versions/{version}/transition/": {"post"},
    "/api/v1/sites/": {"get", "post"},
    "/api/v1/sites/{code}/": {"get"},
    "/api/v1/feeds/": {"get", "post"},
    "/api/v1/feeds/{slug}/": {"get"},
    "/api/v1/deployments/": {"get", "post"},
    "/api/v1/deployments/{id}/": {"get"},
    "/api/v1/deployments/{id}/end/": {"post"},
    "/api/v1/deployments/{id}/freeze/": {"post"},
    "/api/v1/deployments/{id}/unfreeze/": {"post"},
    "/api/v1/deployments/live/": {"get"},
    "/api/v1/audit-events/": {"get"},
    "/api/v1/audit-events/{seq}/": {"get"},
    "/api/v1/audit-events/verify/": {"get"},
}


def test_it_generates_a_valid_schema_without_warnings(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    # --fail-on-warn raises on any warning or error; --validate checks it against OpenAPI 3.
    call_command(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--format",
        "openapi-json",
        "--file",
        str(target),
    )
    assert json.loads(target.read_text())["openapi"].startswith("3.")


@pytest.mark.django_db
def test_it_lists_every_endpoint(client_for: Any) -> None:
    response = client_for("viewer").get(SCHEMA, {"format": "json"})
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    for path, methods in ENDPOINTS.items():
        assert path in paths, f"{path} missing from the schema"
        assert methods <= set(paths[path]), f"{path}: {methods - set(paths[path])} missing"
    live = {p["name"]: p for p in paths["/api/v1/deployments/live/"]["get"]["parameters"]}
    assert {"model", "site", "at"} <= set(live) and all(
        live[n]["required"] for n in ("model", "site", "at")
    )
    schemes = json.loads(response.content)["components"]["securitySchemes"]
    assert schemes["serviceToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["serviceToken"]["description"],
    }


@pytest.mark.django_db
def test_it_serves_schema_and_docs_only_to_logged_in_people(client_for: Any) -> None:
    anonymous = Client()
    assert anonymous.get(SCHEMA).status_code in (401, 403)
    assert anonymous.get(DOCS).status_code in (401, 403)
    ClinicalModelFactory(slug="sepsis")
    issued = service_account_create(actor=None, name="sepsis-svc", model_slugs=["sepsis"])
    service = APIClient()
    service.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    assert service.get(SCHEMA).status_code == 403
    assert service.get(DOCS).status_code == 403
    for role in ("viewer", "ml_engineer", "compliance_officer"):
        client = client_for(role)
        assert client.get(SCHEMA).status_code == 200
        assert client.get(DOCS).status_code == 200


@pytest.mark.django_db
def test_it_serves_the_docs_page_from_local_static_files(client_for: Any) -> None:
    response = client_for("viewer").get(DOCS)
    assert response.status_code == 200
    html = response.content.decode()
    external = [
        url
        for url in re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", html)
        if not re.match(r"(?:https?:)?//testserver(?:[:/]|$)", url)
    ]
    assert external == [], f"the docs page reaches out to {external}"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    static = [a for a in assets if a.startswith("/static/")]
    assert any("swagger-ui-bundle.js" in a for a in static), assets
    assert any(a.endswith(".css") for a in static), assets
    for asset in static:
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not shipped"
    # Swagger UI's start-up code is a same-origin script (no inline script: CSP).
    (start,) = [a for a in assets if a.startswith(DOCS) and "script" in a]
    script = client_for("viewer").get(start).content.decode()
    assert '"validatorUrl": null' in script  # no schema upload to validator.swagger.io
    assert SCHEMA in script
