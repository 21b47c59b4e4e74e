"""The gate's hot path: ``POST /api/v1/predictions/`` without Django REST framework.

A model service calls this endpoint for every prediction, so the framework around the gate
costs as much as the gate itself (docs/benchmarks.md). ``prediction`` answers the plain case
itself: a service token, a JSON body the fast shape check vouches for, a JSON answer. Every
other request (no token or another scheme, a bad or revoked token, a role without the
permission, a body that is not plainly valid, an ``Accept`` asking for something else than
JSON, a query string) goes to ``PredictionView``, the DRF view, untouched: so the status codes,
the error bodies with their field messages, the 401's ``WWW-Authenticate`` and the browsable
API stay exactly DRF's. The fast answer is rendered as DRF renders it (same bytes, same
headers; ``tests/monitoring/test_gate_fast.py`` compares both paths).

Token checking is ``accounts.authentication.authenticate_token``, the very function DRF's
authentication class calls (same hashing, revocation, ``last_used_at`` throttling, cached
permissions), and the role check is ``RolePermission``'s ``has_perms`` with the view's own
``required_perms``.

The OpenAPI schema documents ``PredictionView``: drf-spectacular (like DRF's schema generator)
inspects a URL pattern's ``callback.cls``, which ``prediction`` carries like any
``APIView.as_view()`` callable.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.utils.encoders import JSONEncoder

from accounts.authentication import ServiceTokenAuthentication, authenticate_token
from accounts.models import TOKEN_PREFIX
from accounts.permissions import RolePermission, has_perms
from monitoring import gate
from monitoring.api.serializers import fast_prediction
from monitoring.api.views import PredictionView, error_body

#: A single prediction is well under a kilobyte; anything larger takes the DRF path.
MAX_FAST_BODY = 64 * 1024
_ACCEPT = frozenset({"", "*/*", "application/json"})
_CHARSETS = frozenset({"utf-8", "utf8"})

_drf_view = PredictionView.as_view()


def _headers() -> dict[str, str]:
    # What DRF's ``APIView.finalize_response`` adds: ``Allow`` and, with several renderers,
    # ``Vary: Accept``.
    return dict(PredictionView().default_response_headers)


_HEADERS = _headers()
_PERMS = PredictionView.required_perms["POST"]


def _emulates_drf() -> bool:
    """The fast path does what DRF would for this view only while the view is configured as
    it emulates: service tokens checked first, the role permission, no throttling, JSON
    rendered first. Another configuration turns the fast path off (every request goes to DRF)
    rather than letting the two drift apart."""
    view = PredictionView()
    return (
        [type(a) for a in view.get_authenticators()][:1] == [ServiceTokenAuthentication]
        and [type(p) for p in view.get_permissions()] == [RolePermission]
        and not view.get_throttles()
        and type(view.get_renderers()[0]) is JSONRenderer
        and JSONParser in [type(p) for p in view.get_parsers()]
        and PredictionView.allow_service_accounts
    )


ENABLED = _emulates_drf()


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)  # NaN and Infinity are not JSON (DRF's parser refuses them too)


def _render(data: Any, status: int) -> HttpResponse:
    """As DRF's ``JSONRenderer`` renders it (compact, UTF-8, strict, U+2028/9 escaped)."""
    text = json.dumps(
        data,
        cls=JSONEncoder,
        ensure_ascii=not api_settings.UNICODE_JSON,
        allow_nan=not api_settings.STRICT_JSON,
        separators=(",", ":") if api_settings.COMPACT_JSON else None,
    )
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    response = HttpResponse(text.encode(), status=status, content_type="application/json")
    for key, value in _HEADERS.items():
        response[key] = value
    return response


def _answer(request: HttpRequest) -> HttpResponse | None:
    """The answer to a plain request, or ``None``: let the DRF view answer."""
    meta = request.META
    if not ENABLED or request.method != "POST" or meta.get("QUERY_STRING"):
        return None  # DRF honours ?format=...
    if getattr(request, "_force_auth_user", None) is not None:
        return None  # DRF's test client authenticated the request itself
    if meta.get("HTTP_ACCEPT", "").strip() not in _ACCEPT:
        return None  # content negotiation (the browsable API, indent=...)
    if request.content_type != "application/json":
        return None
    params = request.content_params
    if params and (set(params) != {"charset"} or params["charset"].lower() not in _CHARSETS):
        return None
    try:
        length = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= MAX_FAST_BODY:
        return None
    header = meta.get("HTTP_AUTHORIZATION", "")
    parts = header.split()
    if len(parts) != 2 or parts[0] not in ("Bearer", "Token"):
        return None
    if not parts[1].startswith(TOKEN_PREFIX) or not header.isascii():
        return None
    try:
        found = authenticate_token(header)
    except AuthenticationFailed:
        return None
    if found is None:
        return None
    user, account = found
    if not has_perms(user, _PERMS):
        return None
    try:
        raw = json.loads(request.body.decode("utf-8"), parse_constant=_refuse_constant)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError included
        return None
    item = fast_prediction(raw)
    if item is None:
        return None
    request.user, request.auth = user, account  # as DRF does for the request it wraps
    (outcome,) = gate.gate_predictions(account=account, items=[item])
    if outcome.error is not None:
        return _render(error_body(outcome.error), outcome.error.status)
    assert outcome.answer is not None
    return _render(outcome.answer.as_dict(), 200 if outcome.answer.replayed else 201)


@csrf_exempt
def prediction(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Log one prediction and get the gate's answer (see ``PredictionView``)."""
    answer = _answer(request)
    if answer is not None:
        return answer
    return _drf_view(request, *args, **kwargs)


# For drf-spectacular and DRF's schema generator: this endpoint is ``PredictionView``.
prediction.cls = PredictionView  # type: ignore[attr-defined]
prediction.initkwargs = {}  # type: ignore[attr-defined]
