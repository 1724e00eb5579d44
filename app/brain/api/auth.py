"""Bearer-token authentication, compared in constant time."""

from __future__ import annotations

import hmac

from flask import request

from .deps import get_config
from .errors import ApiError

PUBLIC_ENDPOINTS = frozenset({"health.healthz"})


def require_token() -> None:
    """``before_request`` hook: 401 unless the Authorization header carries a configured token."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    tokens = get_config()["server.api_tokens"]
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "unauthorized", "missing bearer token: send 'Authorization: Bearer <token>'")
    given = given.strip().encode()
    ok = False
    for token in tokens:  # check every token so timing doesn't reveal which one matched
        ok |= hmac.compare_digest(given, token.encode())
    if not tokens:
        raise ApiError(401, "unauthorized", "no API tokens are configured on the server (server.api_tokens)")
    if not ok:
        raise ApiError(401, "unauthorized", "invalid bearer token")
