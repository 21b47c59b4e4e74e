"""Every login, failed login and logout is an audit event."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts import services


@receiver(user_logged_in, dispatch_uid="vigil-audit-login")
def _on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    services.login_succeeded(user=user)


@receiver(user_logged_out, dispatch_uid="vigil-audit-logout")
def _on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    reason = getattr(request, "vigil_logout_reason", "user")
    services.logout_recorded(user=user, reason=reason)


@receiver(user_login_failed, dispatch_uid="vigil-audit-login-failed")
def _on_login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kw: Any
) -> None:
    username = str(credentials.get("username", ""))
    if getattr(request, "vigil_locked_out", False):
        return  # refused before authentication; already recorded as such
    services.login_failed(username=username)
