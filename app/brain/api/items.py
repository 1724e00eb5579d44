"""Ingest, read, list and delete items (forgetting, which also refuses re-ingest, is in ``forget.py``)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from brain.api import ingest_child, schema
from brain.api.deps import get_config, get_store
from brain.api.errors import ApiError
from brain.api.params import json_body
from brain.shared.schema import ItemBatch

bp = Blueprint("items", __name__, url_prefix="/api/v1")


@bp.post("/items")
@schema.operation("Store a batch of items: all of them, or none", schema.IngestAnswer, body=ItemBatch,
                  code="invalid_field", body_required=True, parse=False,
                  errors={413: "The body is over server.max_body_bytes, or the batch over server.max_batch_items "
                               "(`too_many_items`).",
                          503: "The embedding model's tokenizer is not usable (`embedder_unavailable`), or the "
                               "database's disk is read-only or failing."})
def upsert_items():
    """Batch upsert: all items valid and stored, or none."""
    body = json_body()
    limit = get_config().server.max_batch_items
    items = body.get("items")
    if isinstance(items, list) and len(items) > limit:  # before validating 10,000 items one by one
        raise ApiError(413, "too_many_items", f"a batch may carry at most {limit} items, got {len(items)}",
                       field="items")
    return jsonify(ingest_child.upsert(get_config(), body))


@bp.get("/items")
@schema.operation("List items, newest first by updated_at, without their content", schema.ItemList,
                  query=schema.ItemsQuery)
def list_items(query: schema.ItemsQuery):
    rows = get_store().list(**query.filters(), limit=query.limit + 1, offset=query.offset)
    more = len(rows) > query.limit
    return jsonify({"items": rows[:query.limit], "next_offset": query.offset + query.limit if more else None})


@bp.get("/items/<path:item_id>")
@schema.operation("One item with its content (paged by offset/limit characters)", schema.StoredItem,
                  query=schema.ItemPageQuery, errors={404: "No item with this id (`not_found`)."})
def get_item(item_id: str, query: schema.ItemPageQuery):
    item = get_store().get(item_id)
    if item is None:
        raise ApiError(404, "not_found", f"no item with id {item_id!r}")
    offset, limit = query.offset, query.limit
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
@schema.operation("Delete an item (the collector may send it again; to forget it for good: POST /forget)",
                  schema.Deleted, errors={404: "No item with this id (`not_found`)."})
def delete_item(item_id: str):
    if not get_store().delete(item_id):
        raise ApiError(404, "not_found", f"no item with id {item_id!r}")
    return jsonify({"deleted": 1})
