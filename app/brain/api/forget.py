"""Forgetting over HTTP: ``POST /api/v1/forget``, the tombstones, undo (``brain.core.forgetting``).

- ``POST /api/v1/forget`` ``{rule fields..., "dry_run"?}`` → ``{"deleted", "tombstone"}``, or with
  ``dry_run: true`` ``{"matches"}`` (nothing deleted, nothing recorded: the count to confirm).
- ``GET /api/v1/tombstones`` → ``{"tombstones": [{"id", "rule", "created_at", "deleted"}]}``: what
  the collectors fetch before they collect.
- ``DELETE /api/v1/tombstones/<id>`` → ``{"removed": 1, "tombstone"}``: undo (the items stay deleted).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from brain.api.deps import get_db
from brain.api.errors import ApiError
from brain.api.params import json_body
from brain.core import forgetting
from brain.shared.tombstones import Rule, RuleError, parse_rule

bp = Blueprint("forget", __name__, url_prefix="/api/v1")


def rule_from(body: dict[str, Any]) -> Rule:
    """The rule of a request body (without its options), or a 400 naming the field."""
    try:
        return parse_rule(body)
    except RuleError as exc:
        code = "missing_filter" if exc.field is None else "invalid_parameter"
        raise ApiError(400, code, exc.message, field=exc.field) from None


@bp.post("/forget")
def forget():
    """Delete what the rule matches and remember the rule, so it is never stored again."""
    body = json_body()
    dry_run = body.pop("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ApiError(400, "invalid_parameter", "dry_run must be true or false", field="dry_run")
    rule = rule_from(body)
    if dry_run:
        return jsonify({"matches": forgetting.count(get_db(), rule), "rule": rule.as_dict()})
    tombstone, deleted = forgetting.forget(get_db(), rule)
    return jsonify({"deleted": deleted, "tombstone": tombstone})


@bp.get("/tombstones")
def tombstones():
    return jsonify({"tombstones": forgetting.list_tombstones(get_db())})


@bp.delete("/tombstones/<int:tombstone_id>")
def undo(tombstone_id: int):
    removed = forgetting.remove(get_db(), tombstone_id)
    if removed is None:
        raise ApiError(404, "not_found", f"no tombstone with id {tombstone_id} (see GET /api/v1/tombstones)")
    return jsonify({"removed": 1, "tombstone": removed})
