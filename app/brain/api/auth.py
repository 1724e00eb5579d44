"""Bearer-token authentication, compared in constant time; or the web page's session cookie.

The page (``web.py``) signs itself in and out; its own routes check the session there. Its calls to
``/api/v1`` carry the session cookie instead of a bearer header (``web_auth``): accepted for reading,
and for writing only with the session's CSRF token. A request with an Authorization header is
judged by that header alone, exactly as before."""

from __future__ import annotations

import hmac

from flask import request

from brain.api import web_auth
from brain.api.deps import get_config, get_db
from brain.api.errors import ApiError

PUBLIC_ENDPOINTS = frozenset({"health.healthz"})
SELF_AUTHENTICATING = frozenset({"web"})  # blueprints that check the session themselves (the page)


def require_token() -> None:
    """``before_request`` hook: 401 unless the Authorization header carries a configured token."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.blueprint in SELF_AUTHENTICATING:
        return
    tokens = get_config().server.api_tokens
    header = request.headers.get("Authorization", "")
    if not header and request.cookies.get(web_auth.SESSION_COOKIE):
        _require_session(tokens)
        return
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "unauthorized", "missing bearer token: send 'Authorization: Bearer <token>'")
    given_bytes = given.strip().encode()
    ok = False
    for token in tokens:  # check every token so timing doesn't reveal which one matched
        ok |= hmac.compare_digest(given_bytes, token.encode())
    if not tokens:
        raise ApiError(401, "unauthorized", "no API tokens are configured on the server (server.api_tokens)")
    if not ok:
        raise ApiError(401, "unauthorized", "invalid bearer token")


def _require_session(tokens: list[str]) -> None:
    """The page's call: a live session, and its CSRF token on anything that changes state."""
    session = web_auth.find_session(get_db(), request.cookies.get(web_auth.SESSION_COOKIE), tokens)
    if session is None:
        raise ApiError(401, "unauthorized", "the web session has ended: sign in again")
    if request.method not in web_auth.SAFE_METHODS and not web_auth.csrf_ok(request, session):
        raise ApiError(403, "csrf_failed", f"missing or wrong {web_auth.CSRF_HEADER} (or a foreign Origin) "
                       "for a change made with the web session")
