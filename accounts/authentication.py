"""Bearer-token authentication for service accounts (model services)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connections, router
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


_Column = tuple[str, Any, list[Callable[..., Any]]]  # attribute name, column, converters


@lru_cache(maxsize=8)
def _token_lookup(alias: str) -> tuple[str, list[_Column], list[_Column]]:
    """``ServiceAccount.objects.select_related("user").filter(token_hash=...)`` as plain SQL,
    built once per database: the ORM spends ~0.5 ms of CPU compiling this query on every
    request, several times what the database needs to answer it. The rows are turned into
    model instances the way the ORM does (the database's and the fields' converters, then
    ``Model.from_db``), so the account and its user are exactly what the ORM would give."""
    connection = connections[alias]
    quote = connection.ops.quote_name

    def columns(model: Any, alias: str) -> list[_Column]:
        found = []
        for field in model._meta.concrete_fields:
            column = field.get_col(alias)
            converters = connection.ops.get_db_converters(column) + column.get_db_converters(
                connection
            )
            found.append((field.attname, column, converters))
        return found

    user_model = get_user_model()
    account_table = quote(ServiceAccount._meta.db_table)
    user_table = quote(user_model._meta.db_table)
    account_columns = columns(ServiceAccount, account_table)
    user_columns = columns(user_model, user_table)
    select = ", ".join(
        f"{table}.{quote(column.target.column)}"
        for table, found in ((account_table, account_columns), (user_table, user_columns))
        for _, column, _ in found
    )
    user_key = quote(ServiceAccount._meta.get_field("user").column)
    sql = (
        f"SELECT {select} FROM {account_table} "
        f"INNER JOIN {user_table} ON {account_table}.{user_key} = "
        f"{user_table}.{quote(user_model._meta.pk.column)} "
        f"WHERE {account_table}.{quote('token_hash')} = %s"
    )
    return sql, account_columns, user_columns


def _account_with_user(token_hash: str) -> ServiceAccount | None:
    """The service account of ``token_hash`` with its user (one query), or ``None``."""
    alias = router.db_for_read(ServiceAccount)
    connection = connections[alias]
    sql, account_columns, user_columns = _token_lookup(alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, [token_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for value, (_, column, converters) in zip(row, account_columns + user_columns, strict=True):
        for convert in converters:
            value = convert(value, column, connection)
        values.append(value)
    split = len(account_columns)
    account = ServiceAccount.from_db(
        alias, [name for name, _, _ in account_columns], values[:split]
    )
    user = get_user_model().from_db(alias, [name for name, _, _ in user_columns], values[split:])
    account.user = user  # also caches user.service_account, as select_related does
    return account


def authenticate_token(header: str) -> tuple[Any, ServiceAccount] | None:
    """The (user, service account) of an ``Authorization`` header's token; ``None`` when the
    header carries no token (another scheme, or none); ``AuthenticationFailed`` for a malformed
    header or an unknown, revoked or deactivated token. Used by ``ServiceTokenAuthentication``
    and by the gate's hot path (``monitoring.api.fast``), so both check tokens alike."""
    if not header:
        return None
    parts = header.split()
    if parts[0] not in (ServiceTokenAuthentication.keyword, "Token"):
        return None
    if len(parts) != 2 or not parts[1].startswith(TOKEN_PREFIX):
        raise exceptions.AuthenticationFailed(
            "Malformed Authorization header: use 'Bearer <token>'."
        )
    account = _account_with_user(hash_token(parts[1]))
    if account is None or not account.is_active or not account.user.is_active:
        raise exceptions.AuthenticationFailed("Invalid or revoked service token.")
    now = timezone.now()
    # "Last used" is for the access review, to the minute: writing it on every request
    # would cost the gate a database write per prediction.
    if account.last_used_at is None or now - account.last_used_at > LAST_USED_RESOLUTION:
        ServiceAccount.objects.filter(pk=account.pk).update(last_used_at=now)
    _load_permissions(account.user)
    return account.user, account


class ServiceTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, ServiceAccount] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        return authenticate_token(header)

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
