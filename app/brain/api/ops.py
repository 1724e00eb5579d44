"""Liveness, readiness and stats."""

from __future__ import annotations

import sqlite3

from flask import Blueprint, jsonify

from ..embed import EmbedError
from ..store import write_transaction
from .deps import get_db, get_embedder_for_app, get_store
from .errors import ApiError

health_bp = Blueprint("health", __name__)
bp = Blueprint("ops", __name__)


@health_bp.get("/healthz")
def healthz():
    """Liveness: the process answers. No auth, no database access."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Readiness: the database takes a write and the embedder produces a vector."""
    db = get_db()
    try:
        with write_transaction(db):
            db.execute("INSERT INTO kv(key, value) VALUES ('ready_probe', datetime('now')) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
    except sqlite3.Error as exc:
        raise ApiError(503, "not_ready", f"database is not writable: {exc}") from None
    try:
        embedder = get_embedder_for_app()
        embedder.embed(["readiness probe"])
    except EmbedError as exc:
        raise ApiError(503, "not_ready", f"embedder is not usable: {exc}") from None
    return jsonify({"status": "ready", "db": "ok", "embedder": embedder.model_id})


@bp.get("/api/v1/stats")
def stats():
    try:
        model = get_embedder_for_app().model_id
    except EmbedError as exc:
        model = f"unavailable: {exc}"
    return jsonify(get_store().stats(model))
