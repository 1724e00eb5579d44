"""``GET /api/v1/timeline``: a day (or a range) across all sources, grouped by project (``brain.core.timeline``).

Query: ``day=YYYY-MM-DD`` (default today) and ``days`` (1..31) cut in ``tz`` (an IANA zone or an
offset, default UTC), or ``since``/``until`` for any range; ``source``, ``project``, ``limit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from flask import Blueprint, jsonify

from brain.api import schema
from brain.api.deps import get_db
from brain.api.errors import ApiError
from brain.core import timeline
from brain.shared.zones import parse_tz

bp = Blueprint("timeline", __name__, url_prefix="/api/v1")


def _day(value: str | None, tz_name: str) -> date:
    if not value:
        return datetime.now(parse_tz(tz_name)).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"day must be YYYY-MM-DD, e.g. 2026-03-10 (got {value!r})",
                       field="day") from None


def window_from(args: Mapping[str, Any]) -> timeline.Window:
    """The window of a query (the API's and the page's): a day in a zone, or since/until."""
    return window_of(schema.parse_query(schema.TimelineQuery, args))


def window_of(query: schema.TimelineQuery) -> timeline.Window:
    tz_name = query.tz.strip() or "UTC"
    try:
        tz = parse_tz(tz_name)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"tz: {exc}", field="tz") from None
    since, until = query.since, query.until
    if since or until:
        if query.day:
            raise ApiError(400, "invalid_parameter", "give day (and days) or since/until, not both", field="day")
        if not (since and until):
            raise ApiError(400, "invalid_parameter", "a range needs both since and until",
                           field="until" if since else "since")
        return timeline.Window(since, until, tz_name)
    return timeline.day_window(_day(query.day, tz_name), query.days, tz, tz_name)


@bp.get("/timeline")
@schema.operation("A day (or a range) across all sources, grouped by project", schema.TimelineAnswer,
                  query=schema.TimelineQuery)
def get_timeline(query: schema.TimelineQuery):
    w = window_of(query)
    project = query.project
    body = timeline.build(get_db(), w, source=query.source,
                          project=(project.rstrip("/") or "/") if project else None, limit=query.limit)
    return jsonify(body)
