"""JSON errors everywhere: ``{"error": {"code", "message", "field"?, "index"?}}``.

A failing disk is not the client's fault and not a bug either: it gets its own answer
(``507 insufficient_storage`` when the disk is full, ``503 storage_read_only`` when it is
read-only, ``503 storage_error`` for other I/O errors) so a collector keeps its outbox and
retries, and an operator sees what to fix. Every write is one transaction, so nothing of a
failed request stays behind; the next request after space returns simply works.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask, current_app, jsonify
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


# SQLite's primary result codes (the low byte of an extended code such as SQLITE_IOERR_WRITE)
_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CANTOPEN, _SQLITE_FULL = 8, 10, 14, 13


def filesystem_state(folder: Path) -> tuple[bool, int]:
    """(read-only, bytes free to an unprivileged writer) of the filesystem holding ``folder``."""
    st = os.statvfs(folder)
    return bool(st.f_flag & os.ST_RDONLY), st.f_bavail * st.f_frsize


def storage_error(exc: BaseException, db_path: str | Path) -> ApiError | None:
    """The answer for an error of the disk under the database, or None if ``exc`` is something else.

    Why look at the filesystem: SQLite reports a write on a filesystem remounted read-only as
    SQLITE_IOERR_WRITE on an open connection (SQLITE_READONLY on a new one), and ENOSPC may show
    as an I/O error too; statvfs tells which it is."""
    if isinstance(exc, sqlite3.Error):
        primary = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if primary == _SQLITE_FULL:
            return _full(exc)
        if primary not in (_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CANTOPEN):
            return None
    elif isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _full(exc)
        if exc.errno not in (errno.EROFS, errno.EIO):
            return None
    else:
        return None
    try:
        read_only, free = filesystem_state(Path(db_path).parent)
    except OSError:
        read_only, free = False, 1
    if read_only or (isinstance(exc, sqlite3.Error) and primary == _SQLITE_READONLY) or (
            isinstance(exc, OSError) and exc.errno == errno.EROFS):
        return ApiError(503, "storage_read_only", f"the database's disk is read-only, nothing was stored: {exc}")
    if free == 0:
        return _full(exc)
    return ApiError(503, "storage_error", f"the database's disk failed, nothing was stored: {exc}")


def _full(exc: BaseException) -> ApiError:
    return ApiError(507, "insufficient_storage", f"the database's disk is full, nothing was stored: {exc}")


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
        resp, status = error_response(exc.code or 500, code, message)
        for name, value in exc.get_headers():  # a 405's Allow (the methods the route has), a 503's Retry-After
            if name.lower() != "content-type":
                resp.headers[name] = value
        return resp, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        storage = storage_error(exc, current_app.config["BRAIN"].server.db_path)
        if storage is not None:
            log.error("storage: %s", storage.message)
            return _api_error(storage)
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error (see the server log)")
