"""JSON errors everywhere: ``{"error": {"code", "message", "field"?, "index"?}}``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raised by handlers for a client or service error with a precise code."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, index: int | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.index = status, code, message, field, index
        self.extra = extra or {}


def error_response(status: int, code: str, message: str, field: str | None = None, index: int | None = None,
                   extra: dict[str, Any] | None = None):
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    if index is not None:
        body["index"] = index
    payload: dict[str, Any] = {"error": body}
    payload.update(extra or {})
    return jsonify(payload), status


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.index, exc.extra)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        if exc.code == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"request body is larger than the limit of {limit} bytes"
        return error_response(exc.code or 500, code, message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error (see the server log)")
