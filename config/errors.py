"""Error pages: an API client gets JSON, a person gets the page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 for a URL no pattern matches (views' own 404s are answered by DRF or the view)."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": f"No endpoint or record at {request.path}: check the path and its ids."},
            status=404,
        )
    return render(request, "404.html", status=404)


#: Seconds a client should wait before retrying when the database is unreachable.
RETRY_AFTER = 5


def server_error(request: HttpRequest) -> HttpResponse:
    """An uncaught error. The database being unreachable (a restart, a failover) is a 503
    with Retry-After: the request did nothing and may be sent again (the gate is idempotent
    on the event id). API clients always get JSON, never an HTML page."""
    import sys

    from django.db import InterfaceError, OperationalError
    from django.views.defaults import server_error as html_server_error

    exc = sys.exc_info()[1]
    unavailable = isinstance(exc, OperationalError | InterfaceError)
    if request.path.startswith("/api/"):
        if unavailable:
            response = JsonResponse(
                {"detail": "The database is unavailable; nothing was stored. Retry shortly "
                           "(the same event id is safe to resend)."},  # fmt: skip
                status=503,
            )
            response["Retry-After"] = str(RETRY_AFTER)
            return response
        return JsonResponse(
            {"detail": "Internal error; nothing is assumed stored. Retry, and report it if it "
                       "persists."},  # fmt: skip
            status=500,
        )
    if unavailable:
        response = HttpResponse(
            "<!doctype html><title>Vigil is briefly unavailable</title><h1>Vigil is briefly "
            "unavailable</h1><p>The database cannot be reached. Nothing was saved; try again "
            "in a few seconds.</p>",
            status=503,
        )
        response["Retry-After"] = str(RETRY_AFTER)
        return response
    return html_server_error(request)
