from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def roles(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    names: list[str] = []
    if user is not None and user.is_authenticated:
        names = sorted(user.groups.values_list("name", flat=True))
    return {
        "vigil_roles": names,
        "vigil_idle_timeout_seconds": settings.VIGIL_IDLE_TIMEOUT_SECONDS,
    }
