"""Timestamps: one canonical form so SQL can compare them as text.

Every stored time is UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (fixed width, the year zero-padded to four
digits), so ``since``/``until`` filters are plain string comparisons that use the indexes.
Times outside years 1–9999 once converted to UTC have no such form and are refused.
"""

from __future__ import annotations

from datetime import UTC, date, datetime


def now() -> str:
    return fmt(datetime.now(UTC))


def fmt(dt: datetime) -> str:
    """The canonical form. Why not ``strftime("%Y")``: glibc writes year 1 as ``1``, not ``0001``,
    and the text would then sort after ``2026``."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    u = dt.astimezone(UTC)
    return (f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}."
            f"{u.microsecond // 1000:03d}Z")


def parse(value: str) -> datetime:
    """Parse ISO-8601 (``Z`` or an offset; a bare date means midnight UTC). Raise ValueError.

    ``0001-01-01T00:00:00+01:00`` is a valid ISO string whose UTC instant falls in year 0, which
    Python's datetime cannot hold (OverflowError): that is the caller's bad input, so ValueError."""
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
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value!r} is outside years 1-9999 once converted to UTC") from None


def normalise(value: str) -> str:
    """Parse then format in the canonical stored form."""
    return fmt(parse(value))
