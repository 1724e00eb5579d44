"""The body's transport rules, before any model looks at it (``brain.api.schema``).

Every JSON body goes through :func:`json_body`: strict UTF-8, no ``NaN``/``Infinity`` (nor numbers
too large for a float), at most ``MAX_JSON_DEPTH`` levels, and no string with a NUL or a lone
surrogate anywhere (keys too) — one rule for every field of every endpoint, checked before any
handler looks at the values, so a bad request is a 400 and never reaches SQLite as a 500.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import ClientDisconnected, HTTPException

from brain.api.errors import ApiError
from brain.shared.schema import printable, text_problem, where

# deep enough for any item's meta a collector writes (a handful of levels); a body nested deeper
# is refused before json.loads recurses into it (RecursionError at ~1000 levels) or json.dumps does
MAX_JSON_DEPTH = 64


def body_bytes() -> bytes:
    """The raw request body, read once (cached for the handler).

    Why here and not in each handler: reading is where a client's faults show up — a body that
    stops arriving (the worker's read timeout: 408), a broken chunked encoding or a client gone
    before its body was complete (400), a body over ``MAX_CONTENT_LENGTH`` (413) — and each must
    be a JSON 4xx for every endpoint, not an exception the app answers with a 500."""
    try:
        return request.get_data(cache=True)
    except ClientDisconnected as exc:  # werkzeug's stream turns the socket's error into this one
        raise _read_error(exc.__context__) from None
    except HTTPException:
        raise
    except (ParseException, OSError) as exc:
        raise _read_error(exc) from None


def _read_error(exc: BaseException | None) -> ApiError:
    if isinstance(exc, ParseException):
        return ApiError(400, "invalid_body", f"the request body could not be read: {exc}")
    if isinstance(exc, (BlockingIOError, TimeoutError)):  # EAGAIN: SO_RCVTIMEO passed (brain.api.gunicorn_worker)
        return ApiError(408, "request_timeout", "the request body stopped arriving before it was complete")
    return ApiError(400, "invalid_body", "the request body ended before it was complete")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _walk(value: Any) -> tuple[tuple[Any, ...], str] | None:
    """The first path in ``value`` that breaks the body rules, and why (iterative: no recursion)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        v, path = stack.pop()
        if len(path) > MAX_JSON_DEPTH:
            return path[:MAX_JSON_DEPTH], f"is nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(v, str):
            why = text_problem(v)
            if why:
                return path, why
        elif isinstance(v, dict):
            for k, child in v.items():
                why = text_problem(k)
                if why:
                    return path, f"has a key that {why}"
                stack.append((child, (*path, k)))
        elif isinstance(v, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(v))
    return None


def _refuse(path: tuple[Any, ...], why: str) -> ApiError:
    """A 400 naming where the bad value is: ``field`` + ``index`` inside a batch's item, else ``field``."""
    message = f"{where(path) or 'the body'} {why}"
    if len(path) >= 3 and path[0] == "items" and isinstance(path[1], int):
        return ApiError(400, "invalid_item", message, field=printable(path[2]), index=path[1])
    return ApiError(400, "invalid_parameter", message, field=printable(path[0]) if path else None)


def parse_json(data: bytes) -> Any:
    """Decode a JSON document under the body rules (see the module docstring)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", f"request body is not UTF-8: {exc}") from None
    try:
        value = json.loads(text, parse_constant=_no_constants, parse_float=_finite)
    except RecursionError:
        raise ApiError(400, "invalid_json", f"request body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    bad = _walk(value)
    if bad:
        raise _refuse(*bad)
    return value


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it (its fields are the
    route's model's business: ``brain.api.schema``)."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as JSON with 'Content-Type: application/json'")
    data = parse_json(body_bytes())
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "request body must be a JSON object")
    return data


def check_url_text() -> None:
    """``before_request``: the body's text rule (:func:`brain.shared.schema.text_problem`) for the query
    string and the path too. (Werkzeug decodes both with replacement, so only a NUL can get here.)"""
    for key, value in request.args.items(multi=True):
        why = text_problem(key) or text_problem(value)
        if why:
            raise ApiError(400, "invalid_parameter", f"query parameter {printable(key)} {why}",
                           field=printable(key))
    for key, value in (request.view_args or {}).items():
        why = text_problem(value) if isinstance(value, str) else None
        if why:
            raise ApiError(400, "invalid_parameter", f"{key} {why}", field=key)
