"""Query and body parameter parsing with errors that name the field."""

from __future__ import annotations

from typing import Any

from flask import request

from .. import timeutil
from ..store import SOURCES
from .errors import ApiError


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as JSON with 'Content-Type: application/json'")
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "invalid_json", "request body is not valid JSON")
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "request body must be a JSON object")
    return data


def int_param(value: Any, name: str, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer", field=name)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer", field=name) from None
    if not lo <= n <= hi:
        raise ApiError(400, "invalid_parameter", f"{name} must be between {lo} and {hi}", field=name)
    return n


def time_param(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_parameter", f"{name} must be an ISO-8601 date or time string", field=name)
    try:
        return timeutil.normalise(value)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"{name}: {exc}", field=name) from None


def source_param(value: Any, name: str = "source") -> str | None:
    if value is None or value == "":
        return None
    if value not in SOURCES:
        raise ApiError(400, "invalid_parameter", f"{name} must be one of {', '.join(SOURCES)}", field=name)
    return value


def str_param(value: Any, name: str, limit: int = 4096) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError(400, "invalid_parameter", f"{name} must be a string of at most {limit} characters", field=name)
    return value


def filters(src: Any) -> dict[str, Any]:
    """source/project/since/until from a mapping (query args or a JSON body)."""
    out = {
        "source": source_param(src.get("source")),
        "project": str_param(src.get("project"), "project"),
        "since": time_param(src.get("since"), "since"),
        "until": time_param(src.get("until"), "until"),
    }
    if out["since"] and out["until"] and out["since"] > out["until"]:
        raise ApiError(400, "invalid_parameter", "since must not be after until", field="since")
    return out
