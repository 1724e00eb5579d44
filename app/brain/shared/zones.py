"""Time zones for days: which hours "Tuesday" covers, for the timeline on both sides.

Why a zone and not just UTC: a developer's day starts at their midnight. The page sends the
browser's zone, the CLI and the MCP server send this machine's, and brain-api cuts the day there.
Shared by brain-api (``brain.core.timeline``) and the laptop side (``brain recent``, the MCP tool);
it imports neither.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")


def parse_tz(name: str | None) -> tzinfo:
    """``Europe/Rome``, ``+01:00``/``-0530``, ``UTC`` or ``Z`` (empty: UTC); ValueError otherwise."""
    text = (name or "").strip()
    if text in ("", "UTC", "Z", "utc", "z"):
        return UTC
    m = _OFFSET.fullmatch(text)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        hours, minutes = int(m.group(2)), int(m.group(3))
        if hours > 14 or minutes > 59:
            raise ValueError(f"time zone offset {text!r} is out of range")
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    if len(text) > 64 or not re.fullmatch(r"[A-Za-z0-9_+\-/]+", text) or ".." in text:
        raise ValueError(f"{text!r} is not a time zone (e.g. Europe/Rome or +01:00)")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {text!r} (e.g. Europe/Rome or +01:00)") from None


def local_tz_name() -> str:
    """This machine's zone as brain-api can read it: ``$TZ``, else the ``/etc/localtime`` link's
    IANA name, else today's fixed offset (right for today, not across a DST change)."""
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            parse_tz(env)
            return env
        except ValueError:
            pass
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        name = target.split("zoneinfo/", 1)[1]
        try:
            parse_tz(name)
            return name
        except ValueError:
            pass
    offset = datetime.now().astimezone().utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
