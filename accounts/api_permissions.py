"""Who may read the API's own description (the OpenAPI schema and its docs page), and how the
schema describes service tokens."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import permissions

from accounts.permissions import is_service_account


class IsHumanUser(permissions.BasePermission):
    """A logged-in person of any role. Model services (tokens) have no use for the docs, and
    the schema maps the whole system, so it is not public."""

    message = "Log in to read the API documentation."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(
            user and user.is_authenticated and user.is_active and not is_service_account(user)
        )


class ServiceTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Describes ``accounts.authentication.ServiceTokenAuthentication`` in the schema."""

    target_class = "accounts.authentication.ServiceTokenAuthentication"
    name = "serviceToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A service account's token (vgl_...), from create_service_account.",
        }
