"""``GET /api/v1/timeline``: a day (or a range) across all sources, grouped by project (``brain.core.timeline``).

Query: ``day=YYYY-MM-DD`` (default today) and ``days`` (1..31) cut in ``tz`` (an IANA zone or an
offset, default UTC), or ``since``/``until`` for any range; ``source``, ``project``, ``limit``.
"""

from __future__ import annotations

from datetime import date, datetime

from flask import Blueprint, jsonify, request

from brain.api.deps import get_db
from brain.api.errors import ApiError
from brain.api.params import int_param, source_param, str_param, time_param
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


def window_from(args: dict[str, str]) -> timeline.Window:
    """The window of a query (the API's and the page's): a day in a zone, or since/until."""
    tz_name = (args.get("tz") or "UTC").strip()
    try:
        tz = parse_tz(tz_name)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"tz: {exc}", field="tz") from None
    since, until = time_param(args.get("since"), "since"), time_param(args.get("until"), "until")
    if since or until:
        if args.get("day"):
            raise ApiError(400, "invalid_parameter", "give day (and days) or since/until, not both", field="day")
        if not (since and until):
            raise ApiError(400, "invalid_parameter", "a range needs both since and until",
                           field="until" if since else "since")
        if since > until:
            raise ApiError(400, "invalid_parameter", "since must not be after until", field="since")
        return timeline.Window(since, until, tz_name)
    days = int_param(args.get("days"), "days", 1, 1, 31)
    return timeline.day_window(_day(args.get("day"), tz_name), days, tz, tz_name)


@bp.get("/timeline")
def get_timeline():
    args = request.args
    w = window_from(args)
    limit = int_param(args.get("limit"), "limit", 1000, 1, 5000)
    project = str_param(args.get("project"), "project")
    body = timeline.build(get_db(), w, source=source_param(args.get("source")),
                          project=(project.rstrip("/") or "/") if project else None, limit=limit)
    return jsonify(body)
