"""Liveness, readiness and stats."""

from __future__ import annotations

import sqlite3

from flask import Blueprint, jsonify

from ..embed import EmbedError
from ..store import write_transaction
from .deps import get_db, get_store, get_text_model_for_app
from .errors import ApiError

health_bp = Blueprint("health", __name__)
bp = Blueprint("ops", __name__)


@health_bp.get("/healthz")
def healthz():
    """Liveness: the process answers. No auth, no database access."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Readiness: the database takes a write and ingest can cut chunks for the configured model.

    A backlog of texts waiting for vectors does not make the API unready (ingest and BM25 search
    work, vectors follow); it is reported, with the embedder's own state, for a person to read."""
    db = get_db()
    try:
        with write_transaction(db):
            db.execute("INSERT INTO kv(key, value) VALUES ('ready_probe', datetime('now')) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
    except sqlite3.Error as exc:
        raise ApiError(503, "not_ready", f"database is not writable: {exc}") from None
    try:
        model = get_text_model_for_app().model_id
    except EmbedError as exc:
        raise ApiError(503, "not_ready", f"the embedding model is not usable: {exc}") from None
    backlog = get_store().backlog(model).get(model, {})
    return jsonify({"status": "ready", "db": "ok", "embedder": model, "queued": backlog.get("queued", 0)})


@bp.get("/api/v1/stats")
def stats():
    try:
        model = get_text_model_for_app().model_id
    except EmbedError as exc:
        model = f"unavailable: {exc}"
    return jsonify(get_store().stats(model))
