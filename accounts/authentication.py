"""Bearer-token authentication for service accounts (model services)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import TOKEN_PREFIX, ServiceAccount, hash_token

LAST_USED_RESOLUTION = timedelta(minutes=1)
#: A service account's permissions are its group's, and change only when an operator edits the
#: roles; they are read once a minute per process instead of twice per request. Revoking a
#: token takes effect at once regardless (the account row is read on every request).
PERMISSION_TTL_SECONDS = 60.0
_permission_cache: dict[tuple[int, str], tuple[float, set[str]]] = {}


def _load_permissions(user: Any) -> None:
    key = (user.pk, user.get_username())
    cached = _permission_cache.get(key)
    now = time.monotonic()
    if cached is None or now - cached[0] > PERMISSION_TTL_SECONDS:
        names = {
            f"{app}.{codename}"
            for app, codename in Permission.objects.filter(group__user=user).values_list(
                "content_type__app_label", "codename"
            )
        }
        cached = (now, names)
        _permission_cache[key] = cached
    # ModelBackend reads these attributes instead of querying (django.contrib.auth.backends).
    user._perm_cache = set(cached[1])
    user._user_perm_cache = set()
    user._group_perm_cache = set(cached[1])


class ServiceTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, ServiceAccount] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0] not in (self.keyword, "Token"):
            return None
        if len(parts) != 2 or not parts[1].startswith(TOKEN_PREFIX):
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: use 'Bearer <token>'."
            )
        account = (
            ServiceAccount.objects.select_related("user")
            .filter(token_hash=hash_token(parts[1]))
            .first()
        )
        if account is None or not account.is_active or not account.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked service token.")
        now = timezone.now()
        # "Last used" is for the access review, to the minute: writing it on every request
        # would cost the gate a database write per prediction.
        if account.last_used_at is None or now - account.last_used_at > LAST_USED_RESOLUTION:
            ServiceAccount.objects.filter(pk=account.pk).update(last_used_at=now)
        _load_permissions(account.user)
        return account.user, account

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
