"""HIPAA automatic logoff (end a session idle longer than VIGIL_IDLE_TIMEOUT_MINUTES), and the
audit of every refused request (``access.denied``) for the access review."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, resolve_url
from django.utils.http import urlencode

from governance.audit.services import record

SESSION_KEY = "vigil_last_activity"


class IdleTimeoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            now = time.time()
            last = request.session.get(SESSION_KEY)
            if last is not None and now - float(last) > settings.VIGIL_IDLE_TIMEOUT_SECONDS:
                request.vigil_logout_reason = "idle"  # type: ignore[attr-defined]
                logout(request)
                if request.path.startswith("/api/"):
                    return self.get_response(request)
                minutes = settings.VIGIL_IDLE_TIMEOUT_SECONDS // 60
                messages.info(
                    request, f"You were signed out after {minutes} minutes of inactivity."
                )
                login_url = resolve_url(settings.LOGIN_URL)
                return redirect(f"{login_url}?{urlencode({'next': request.get_full_path()})}")
            request.session[SESSION_KEY] = now
        return self.get_response(request)


# --- Denied attempts ------------------------------------------------------------------------

DENIED_ACTION = "access.denied"
_SAFE = ("GET", "HEAD", "OPTIONS")


def _declared_perms(view_func: Callable[..., HttpResponse] | None, method: str) -> list[str]:
    """The permissions the view declares for ``method``: a page's ``perms_required`` or a DRF
    view's ``required_perms`` (an ``@action``'s own table first). Empty when unknown."""
    if view_func is None:
        return []
    perms = getattr(view_func, "vigil_perms", None)
    if perms is not None:
        return [p for perm in perms for p in ((perm,) if isinstance(perm, str) else perm)]
    table = (getattr(view_func, "initkwargs", None) or {}).get("required_perms") or getattr(
        getattr(view_func, "cls", None), "required_perms", None
    )
    if not isinstance(table, dict):
        return []
    key = method if method in table else ("read" if method in _SAFE else "write")
    return list(table.get(key, ()))


def _missing(user: Any, declared: list[str]) -> list[str]:
    return sorted({perm for perm in declared if not user.has_perm(perm)})


def _detail(request: HttpRequest, response: HttpResponse) -> str:
    """Why: the refusal's own message (ours, so never patient data), clipped."""
    text = getattr(request, "vigil_denied_detail", "")
    body = getattr(response, "data", None)
    if not text and isinstance(body, dict):
        text = str(body.get("detail", ""))
    return str(text)[:200]


def access_denied_record(
    *, user: Any, method: str, path: str, query_keys: list[str], missing: list[str], detail: str
) -> None:
    """Append ``access.denied``. Only the path and the *names* of query parameters: a value
    could hold an identifier someone typed into a filter."""
    record(
        actor=user,
        action=DENIED_ACTION,
        object_type="http.request",
        summary=f"{user.get_username()} was refused {method} {path}"[:300],
        payload={
            "method": method,
            "path": path[:300],
            "query_keys": query_keys[:20],
            "missing_permissions": missing,
            "detail": detail,
        },
    )


class AccessDeniedAuditMiddleware:
    """Every 403 a signed-in user (or a service token) gets, page or API, becomes an
    ``access.denied`` audit event for the access review. Anonymous requests are not recorded:
    pages send them to the login page, and there is no one to name.

    Goes after ``AuthenticationMiddleware`` and ``IdleTimeoutMiddleware`` (an idle session
    is ended before it could be refused). DRF authenticates inside the view and sets the
    underlying request's user, so token users are named too.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if response.status_code == 403 and user is not None and user.is_authenticated:
            view_func = getattr(request, "vigil_view_func", None)
            access_denied_record(
                user=user,
                method=request.method or "",
                path=request.path,
                query_keys=sorted(request.GET.keys()),
                missing=_missing(user, _declared_perms(view_func, (request.method or "").upper())),
                detail=_detail(request, response),
            )
        return response

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., HttpResponse], *args: Any
    ) -> None:
        request.vigil_view_func = view_func  # type: ignore[attr-defined]

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if isinstance(exception, PermissionDenied):
            request.vigil_denied_detail = str(exception)  # type: ignore[attr-defined]
