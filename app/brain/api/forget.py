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

from brain.api import schema
from brain.api.deps import get_db
from brain.api.errors import ApiError
from brain.core import forgetting
from brain.shared.tombstones import Rule, RuleError, parse_rule

bp = Blueprint("forget", __name__, url_prefix="/api/v1")
MAX_ROWID = (1 << 63) - 1


def rule_from(body: dict[str, Any]) -> Rule:
    """The rule of a request body (without its options), or a 400 naming the field."""
    try:
        return parse_rule(body)
    except RuleError as exc:
        code = "missing_filter" if exc.field is None else "invalid_parameter"
        raise ApiError(400, code, exc.message, field=exc.field) from None


@bp.post("/forget")
@schema.operation("Forget what a rule matches, and remember the rule so it is never stored again",
                  schema.ForgetAnswer, body=schema.ForgetRequest,
                  errors={400: "No rule field (`missing_filter`), or a field is wrong (`invalid_parameter`)."})
def forget(body: schema.ForgetRequest):
    """Delete what the rule matches and remember the rule, so it is never stored again."""
    rule = rule_from(body.rule())
    if body.dry_run:
        return jsonify({"matches": forgetting.count(get_db(), rule), "rule": rule.as_dict()})
    tombstone, deleted = forgetting.forget(get_db(), rule)
    return jsonify({"deleted": deleted, "tombstone": tombstone})


@bp.get("/tombstones")
@schema.operation("The rules of what was forgotten, oldest first (the collectors fetch them before each run)",
                  schema.TombstoneList)
def tombstones():
    return jsonify({"tombstones": forgetting.list_tombstones(get_db())})


@bp.delete("/tombstones/<int:tombstone_id>")
@schema.operation("Undo a forget: matching items are accepted again (what was deleted is not restored)",
                  schema.Undone, errors={404: "No tombstone with this id (`not_found`)."})
def undo(tombstone_id: int):
    # an id past SQLite's integers names no tombstone (and must not reach SQLite: OverflowError, a 500)
    removed = forgetting.remove(get_db(), tombstone_id) if tombstone_id <= MAX_ROWID else None
    if removed is None:
        raise ApiError(404, "not_found", f"no tombstone with id {tombstone_id} (see GET /api/v1/tombstones)")
    return jsonify({"removed": 1, "tombstone": removed})
