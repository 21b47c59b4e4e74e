"""Bearer-token authentication for service accounts (model services)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import TOKEN_PREFIX, ServiceAccount, hash_token


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
        ServiceAccount.objects.filter(pk=account.pk).update(last_used_at=timezone.now())
        return account.user, account

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
