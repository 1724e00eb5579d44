"""Timestamps: one canonical form so SQL can compare them as text.

Every stored time is UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (fixed width), so ``since``/``until``
filters are plain string comparisons that use the indexes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime


def now() -> str:
    return fmt(datetime.now(UTC))


def fmt(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.astimezone(UTC).microsecond // 1000:03d}Z"


def parse(value: str) -> datetime:
    """Parse ISO-8601 (``Z`` or an offset; a bare date means midnight UTC). Raise ValueError."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be an ISO-8601 date or time string")
    text = value.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        dt = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 date or time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def normalise(value: str) -> str:
    """Parse then format in the canonical stored form."""
    return fmt(parse(value))
