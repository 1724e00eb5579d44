"""Ingest, read, list and delete items (forgetting, which also refuses re-ingest, is in ``forget.py``)."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from brain.api.deps import get_config, get_store, get_text_model_for_app
from brain.api.errors import ApiError
from brain.api.params import filters, int_param, json_body
from brain.core.embed import EmbedError
from brain.core.store import ValidationError

log = logging.getLogger(__name__)
bp = Blueprint("items", __name__, url_prefix="/api/v1")


@bp.post("/items")
def upsert_items():
    """Batch upsert: all items valid and stored, or none."""
    body = json_body(allowed={"items"}, unknown_code="invalid_field")
    items = body.get("items")
    if not isinstance(items, list):
        raise ApiError(400, "invalid_field", "items must be a list of item objects", field="items")
    limit = get_config()["server.max_batch_items"]
    if len(items) > limit:
        raise ApiError(413, "too_many_items", f"a batch may carry at most {limit} items, got {len(items)}",
                       field="items")
    try:
        model = get_text_model_for_app()
    except EmbedError as exc:
        log.error("cannot cut chunks for the configured model: %s", exc)
        raise ApiError(503, "embedder_unavailable", f"the embedding model's tokenizer is not usable, nothing was "
                       f"stored: {exc}") from None
    try:
        result = get_store().upsert(items, model, get_config()["server.max_item_bytes"])
    except ValidationError as exc:
        raise ApiError(400, "invalid_item", exc.message, field=exc.field, index=exc.index) from None
    return jsonify(result.as_dict())


@bp.get("/items")
def list_items():
    args = request.args
    limit = int_param(args.get("limit"), "limit", 50, 1, 500)
    offset = int_param(args.get("offset"), "offset", 0, 0, 10_000_000)
    rows = get_store().list(**filters(args), limit=limit + 1, offset=offset)
    more = len(rows) > limit
    return jsonify({"items": rows[:limit], "next_offset": offset + limit if more else None})


@bp.get("/items/<path:item_id>")
def get_item(item_id: str):
    item = get_store().get(item_id)
    if item is None:
        raise ApiError(404, "not_found", f"no item with id {item_id!r}")
    offset = int_param(request.args.get("offset"), "offset", 0, 0, 1 << 40)
    limit = int_param(request.args.get("limit"), "limit", 0, 0, 1 << 40)
    content = item["content"]
    item["content_total"] = len(content)
    if offset or limit:
        end = offset + limit if limit else len(content)
        item["content"] = content[offset:end]
        item["next_offset"] = end if end < len(content) else None
    else:
        item["next_offset"] = None
    return jsonify(item)


@bp.delete("/items/<path:item_id>")
def delete_item(item_id: str):
    if not get_store().delete(item_id):
        raise ApiError(404, "not_found", f"no item with id {item_id!r}")
    return jsonify({"deleted": 1})
