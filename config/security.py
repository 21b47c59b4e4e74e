"""Response headers Django's SecurityMiddleware does not set: a content security policy and a
permissions policy.

Vigil serves everything from its own origin (hospitals run air-gapped: no CDN), so the policy
allows nothing else. Scripts come only from static files: no template has an inline
``<script>`` or an ``on...=`` handler, and an injected one would not run. Styles also allow
``'unsafe-inline'``: some templates keep a page's few rules in a ``<style>`` block and two set a
computed width in a ``style=`` attribute (a hash cannot cover attributes); CSS cannot run code.

The other headers come from settings: ``X-Content-Type-Options`` (SECURE_CONTENT_TYPE_NOSNIFF),
``Referrer-Policy`` (SECURE_REFERRER_POLICY), ``Cross-Origin-Opener-Policy``
(SECURE_CROSS_ORIGIN_OPENER_POLICY, Django's default ``same-origin``), ``X-Frame-Options``
(X_FRAME_OPTIONS) and, in production, HSTS.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",  # Swagger UI's stylesheet draws its icons as data: images
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",  # with X-Frame-Options: DENY, for older browsers
        "form-action 'self'",
    ]
)
#: Powerful browser features no Vigil page uses, switched off for every origin.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer", "camera", "geolocation", "gyroscope", "magnetometer", "microphone",
        "payment", "usb",
    )
)  # fmt: skip


class ContentSecurityPolicyMiddleware:
    """Adds ``Content-Security-Policy`` and ``Permissions-Policy`` to every response that has
    not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
