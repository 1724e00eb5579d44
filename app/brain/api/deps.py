"""Per-request and per-process resources for the blueprints.

Why here: the house style keeps one SQLite connection per request in ``g`` (closed at teardown),
while the embedder and the vector index are expensive and live once per worker process.
"""

from __future__ import annotations

import sqlite3

from flask import current_app, g

from brain.core import store
from brain.core.embed import Embedder, TextModel, get_embedder, get_text_model
from brain.core.search import Searcher
from brain.shared.settings import ServerConfig


def get_config() -> ServerConfig:
    return current_app.config["BRAIN"]


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = store.connect(get_config().server.db_path)
    return g.db


def get_store() -> store.Store:
    cfg = get_config()
    return store.Store(get_db(), cfg.embed.chunk_tokens, cfg.embed.chunk_overlap)


def get_embedder_for_app() -> Embedder:
    ext = current_app.extensions
    if "brain_embedder" not in ext:
        ext["brain_embedder"] = get_embedder(get_config())
    return ext["brain_embedder"]


def get_text_model_for_app() -> TextModel:
    ext = current_app.extensions
    if "brain_text_model" not in ext:
        ext["brain_text_model"] = get_text_model(get_config())
    return ext["brain_text_model"]


def get_searcher() -> Searcher:
    ext = current_app.extensions
    if "brain_searcher" not in ext:
        cfg = get_config()
        ext["brain_searcher"] = Searcher(model_id=get_text_model_for_app().model_id,
                                         make_embedder=lambda: get_embedder(cfg))
    return ext["brain_searcher"]


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()
