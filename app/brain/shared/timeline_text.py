"""The timeline answer as text for a person or a model (``brain recent`` and the MCP ``timeline`` tool).

Why one renderer: the CLI and the MCP tool show the same day; a developer who reads one and a
model that reads the other should see the same lines (times in the zone the day was cut in).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from brain.shared import timeutil
from brain.shared.zones import parse_tz

KIND_PLURAL = {"session": "sessions", "page": "pages", "file": "files", "note": "notes"}


def duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``1 h 05 min``."""
    s = int(seconds or 0)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def counts(c: dict[str, int]) -> str:
    parts = [f"{c[k]} {KIND_PLURAL[k] if c[k] != 1 else k}" for k in ("session", "page", "file", "note") if c.get(k)]
    return ", ".join(parts) or "nothing"


def _clock(ts: str | None, tz: Any, with_day: bool) -> str:
    if not ts:
        return "--:--"
    local = timeutil.parse(ts).astimezone(tz)
    return local.strftime("%a %d %H:%M" if with_day else "%H:%M")


def heading(data: dict[str, Any]) -> str:
    tz = data.get("tz") or "UTC"
    if data.get("day"):
        d = date.fromisoformat(data["day"])
        span = d.strftime("%A %d %B %Y") if (data.get("days") or 1) == 1 else (
            f"{data['days']} days from {d.strftime('%A %d %B %Y')}")
    else:
        span = f"{data['since']} to {data['until']}"
    return f"{span} ({tz}): {counts(data.get('counts') or {})}"


def entry_lines(e: dict[str, Any], tz: Any, with_day: bool) -> list[str]:
    """One entry: a line with time, kind and title, then how to reopen it."""
    start = _clock(e["at"], tz, with_day)
    if e["kind"] == "session":
        end = _clock(e.get("end"), tz, with_day)
        prompts = f", {e['user_messages']} prompts" if e.get("user_messages") else ""
        lines = [f"{start}–{end}  session  {e['title']}  ({duration(e.get('duration_s'))}{prompts})"]
        if e.get("first_prompt") and e["first_prompt"] != e["title"]:
            lines.append(f"    first prompt: {e['first_prompt']}")
        if e.get("open"):
            lines.append(f"    {e['open']}")
        return lines
    if e["kind"] == "page":
        return [f"{start}  page     {e['title']}", f"    {e.get('url') or e.get('uri') or ''}"]
    if e["kind"] == "file":
        size = f" ({e['line_count']} lines)" if e.get("line_count") else ""
        return [f"{start}  file     {e.get('rel_path') or e['title']}{size}", f"    {e.get('path') or e['id']}"]
    return [f"{start}  note     {e['title'] or e['id']}"]


def render(data: dict[str, Any]) -> str:
    """The whole timeline: heading, then each project with its entries in time order."""
    tz = parse_tz(data.get("tz"))
    with_day = bool((data.get("days") or 1) > 1 or not data.get("day"))
    out = [heading(data)]
    if not data.get("groups"):
        out.append("no activity recorded")
    for g in data.get("groups", []):
        name = f"{g['name']}  ({g['project']})" if g.get("project") else "no project (pages visited, notes)"
        out.append("")
        out.append(f"{name}: {counts(g['counts'])}")
        for e in g["entries"]:
            out.extend("  " + line for line in entry_lines(e, tz, with_day))
    if data.get("truncated"):
        out.append(f"\n(only the first {data['total']} entries; narrow by project or source)")
    return "\n".join(out)


def now_in(tz_name: str) -> datetime:
    return datetime.now(parse_tz(tz_name))
