"""Liveness, readiness, stats and the OpenAPI document."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flask import Blueprint, current_app, jsonify

from brain import __version__
from brain.api import schema
from brain.api.deps import get_config, get_db, get_store, get_text_model_for_app
from brain.api.errors import ApiError, filesystem_state, storage_error
from brain.core.embed import EmbedError
from brain.core.store import write_transaction

# below this much free space the next ingest may fail with 507: the API is not ready. Why not 0:
# a write probe can still succeed on a full disk (SQLite reuses its WAL file's pages), ingest not
MIN_FREE_BYTES = 1024 * 1024

health_bp = Blueprint("health", __name__)
bp = Blueprint("ops", __name__)


@health_bp.get("/healthz")
@schema.operation("Liveness: the process answers (no token needed)", schema.Health, public=True)
def healthz():
    """Liveness: the process answers. No auth, no database access."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@schema.operation("Readiness: the database takes a write and the model's tokenizer loads", schema.Ready,
                  errors={503: "Not ready (`not_ready`): the database is not writable, its disk read-only or "
                               "nearly full, or the model unusable."})
def readyz():
    """Readiness: the database takes a write and ingest can cut chunks for the configured model.

    A backlog of texts waiting for vectors does not make the API unready (ingest and BM25 search
    work, vectors follow); it is reported, with the embedder's own state, for a person to read."""
    _check_disk()
    db = get_db()
    try:
        with write_transaction(db):
            db.execute("INSERT INTO kv(key, value) VALUES ('ready_probe', datetime('now')) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
    except sqlite3.Error as exc:
        storage = storage_error(exc, get_config().server.db_path)
        raise ApiError(503, "not_ready", storage.message if storage else f"database is not writable: {exc}") from None
    try:
        model = get_text_model_for_app().model_id
    except EmbedError as exc:
        raise ApiError(503, "not_ready", f"the embedding model is not usable: {exc}") from None
    backlog = get_store().backlog(model).get(model, {})
    return jsonify({"status": "ready", "db": "ok", "embedder": model, "queued": backlog.get("queued", 0)})


def _check_disk() -> None:
    """503 not_ready while the database's filesystem is read-only or (nearly) full."""
    folder = Path(get_config().server.db_path).parent
    try:
        read_only, free = filesystem_state(folder)
    except OSError as exc:
        raise ApiError(503, "not_ready", f"the database's folder {folder} cannot be read: {exc}") from None
    if read_only:
        raise ApiError(503, "not_ready", f"the database's disk ({folder}) is read-only")
    if free < MIN_FREE_BYTES:
        raise ApiError(503, "not_ready", f"the database's disk ({folder}) is full: {free} bytes free")


@bp.get("/api/v1/openapi.json")
@schema.operation("This document: every route's parameters, bodies and answers (OpenAPI 3.1)", None,
                  raw_ok={"type": "object", "required": ["openapi", "paths"]})
def openapi():
    """Built from the app's own routes and models once per worker (brain.api.schema)."""
    ext = current_app.extensions
    if "brain_openapi" not in ext:
        ext["brain_openapi"] = schema.openapi(current_app, __version__)
    return jsonify(ext["brain_openapi"])


@bp.get("/api/v1/stats")
@schema.operation("Counts per source, the database's size and the embedding backlog per model", schema.Stats)
def stats():
    try:
        model = get_text_model_for_app().model_id
    except EmbedError as exc:
        model = f"unavailable: {exc}"
    return jsonify(get_store().stats(model))
