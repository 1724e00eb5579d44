"""Hybrid search endpoint."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify

from brain.api import schema
from brain.api.deps import get_db, get_searcher
from brain.api.errors import ApiError
from brain.core.embed import EmbedError

bp = Blueprint("search", __name__, url_prefix="/api/v1")


@bp.get("/search")
@schema.operation("Hybrid search (BM25 + vectors): one result per item, best first", schema.SearchAnswer,
                  query=schema.SearchQuery,
                  errors={503: "mode=vector and the query cannot be embedded (`embedder_unavailable`)."})
def search(query: schema.SearchQuery):
    searcher = get_searcher()
    start = time.perf_counter()
    try:
        outcome = searcher.run(get_db(), query.q, k=query.k, mode=query.mode, **query.filters())
    except EmbedError as exc:
        raise ApiError(503, "embedder_unavailable", f"cannot embed the query: {exc}") from None
    body = {"query": query.q, "mode": query.mode, "model": searcher.model_id,
            "took_ms": round((time.perf_counter() - start) * 1000, 2),
            "results": [h.as_result() for h in outcome.hits]}
    if outcome.degraded:
        body["degraded"] = outcome.degraded
    return jsonify(body)
