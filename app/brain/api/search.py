"""Hybrid search endpoint."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify, request

from brain.api.deps import get_db, get_searcher
from brain.api.errors import ApiError
from brain.api.params import filters, int_param
from brain.core.embed import EmbedError
from brain.core.search import MODES

bp = Blueprint("search", __name__, url_prefix="/api/v1")


@bp.get("/search")
def search():
    args = request.args
    q = (args.get("q") or "").strip()
    if not q:
        raise ApiError(400, "invalid_parameter", "q is required (the search text)", field="q")
    if len(q) > 2000:
        raise ApiError(400, "invalid_parameter", "q is longer than 2000 characters", field="q")
    k = int_param(args.get("k"), "k", 10, 1, 100)
    mode = args.get("mode") or "hybrid"
    if mode not in MODES:
        raise ApiError(400, "invalid_parameter", f"mode must be one of {', '.join(MODES)}", field="mode")
    f = filters(args)
    searcher = get_searcher()
    start = time.perf_counter()
    try:
        outcome = searcher.run(get_db(), q, k=k, mode=mode, **f)
    except EmbedError as exc:
        raise ApiError(503, "embedder_unavailable", f"cannot embed the query: {exc}") from None
    body = {"query": q, "mode": mode, "model": searcher.model_id,
            "took_ms": round((time.perf_counter() - start) * 1000, 2),
            "results": [h.as_result() for h in outcome.hits]}
    if outcome.degraded:
        body["degraded"] = outcome.degraded
    return jsonify(body)
