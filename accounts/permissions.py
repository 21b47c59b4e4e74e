"""Role checks for the API and for pages. Fail closed: a view that declares nothing is denied."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from rest_framework import permissions

from accounts.roles import SERVICE_GROUP

SAFE = ("GET", "HEAD", "OPTIONS")


def is_service_account(user: Any) -> bool:
    return bool(user and user.is_authenticated and hasattr(user, "service_account"))


class AnyOf(tuple[str, ...]):
    """A requirement met by any one of its permissions: ``AnyOf(("a.x", "a.y"))``."""


def has_perms(user: Any, perms: Iterable[str | AnyOf]) -> bool:
    """All of ``perms``; an ``AnyOf`` entry is met by any one of its members."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    for perm in perms:
        if isinstance(perm, AnyOf):
            if not any(user.has_perm(p) for p in perm):
                return False
        elif not user.has_perm(perm):
            return False
    return True


class RolePermission(permissions.BasePermission):
    """Each API view declares ``required_perms``: a dict of HTTP method (or ``"read"`` /
    ``"write"``) to the permissions needed. Without a matching entry the request is denied,
    so a new endpoint without a role check cannot slip through.

    Service accounts are refused unless the view sets ``allow_service_accounts = True``.
    """

    message = "Your role does not allow this action."

    def required_for(self, request: Any, view: Any) -> list[str] | None:
        table: dict[str, Iterable[str]] = getattr(view, "required_perms", None) or {}
        method = request.method.upper()
        if method in table:
            return list(table[method])
        key = "read" if method in SAFE else "write"
        if key in table:
            return list(table[key])
        return None

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if is_service_account(user) and not getattr(view, "allow_service_accounts", False):
            return False
        perms = self.required_for(request, view)
        if perms is None:
            return False
        return has_perms(user, perms)


def perms_required(
    *perms: str | AnyOf,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Page views: anonymous users go to the login page; lacking a permission is a 403."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if is_service_account(user) or user.groups.filter(name=SERVICE_GROUP).exists():
                raise PermissionDenied("Service accounts have no access to pages.")
            if not has_perms(user, perms):
                raise PermissionDenied("Your role does not allow this page.")
            return view(request, *args, **kwargs)

        wrapped.vigil_perms = perms  # type: ignore[attr-defined]
        return wrapped

    return decorator


def require_perms(actor: Any, *perms: str) -> None:
    """Services call this first. ``actor=None`` is the system itself (an operator's management
    command or a scheduled task), which runs with the server's own authority."""
    if actor is None:
        return
    if is_service_account(actor) or not has_perms(actor, perms):
        raise PermissionDenied(f"Your role does not allow this ({', '.join(perms)}).")
