"""HIPAA automatic logoff: end a session idle longer than VIGIL_IDLE_TIMEOUT_MINUTES."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, resolve_url
from django.utils.http import urlencode

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
