"""A day (or a range) across all sources in time order, grouped by project: ``GET /api/v1/timeline``.

Why its own reading of time per kind: the store keeps one activity window per item
(``created_at``..``updated_at``), which means different things per source. A session was active
all along its window, so it shows where it enters the day. A page's window runs from its first to
its last visit, and the days between are unknown, so a page shows on a day only when one of those
two visits falls in it. A file shows on the day it was changed (its modification time).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from brain.shared import timeutil
from brain.shared.resume import reopen_command

KINDS = {"claude": "session", "agent": "session", "browser": "page", "file": "file", "note": "note"}
PROMPT_CHARS = 300
HEAD_CHARS = 4000  # of a session's content, read to find its first prompt
ROLE_PREFIXES = ("user: ", "assistant: ", "assistant:", "tool ", "result (", "thinking: ", "=== subagent")


@dataclass(frozen=True)
class Window:
    """The UTC window asked for, and the day it stands for (None for a plain since/until range)."""

    since: str
    until: str
    tz_name: str
    day: date | None = None
    days: int = 1


def day_window(day: date, days: int, tz: tzinfo, tz_name: str) -> Window:
    """Local midnight of ``day`` to the last millisecond before midnight ``days`` later, in UTC.

    Why through the local wall clock: a day with a DST change has 23 or 25 hours."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end_day = day + timedelta(days=days)
    end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=tz) - timedelta(milliseconds=1)
    return Window(timeutil.fmt(start), timeutil.fmt(end), tz_name, day, days)


def first_prompt(head: str) -> str | None:
    """The session's first user prompt, on one line and cut to PROMPT_CHARS (multi-line prompts joined)."""
    lines = head.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("user: ") or line.startswith("user: [Request interrupted"):
            continue
        parts = [line[len("user: "):]]
        for more in lines[i + 1:]:
            if more.startswith(ROLE_PREFIXES):
                break
            parts.append(more)
        text = " ".join(" ".join(parts).split())
        return text if len(text) <= PROMPT_CHARS else text[:PROMPT_CHARS - 1] + "…"
    return None


def _seconds(a: str, b: str) -> float:
    return max(0.0, (timeutil.parse(b) - timeutil.parse(a)).total_seconds())


def _position(kind: str, created: str, updated: str, w: Window) -> str | None:
    """Where an item shows in the window (UTC), or None when it does not belong to it (see the module doc)."""
    if kind == "page":
        if w.since <= updated <= w.until:
            return updated
        return created if w.since <= created <= w.until else None
    if kind == "file":
        return updated if w.since <= updated <= w.until else None
    return max(created, w.since)


def _entry(row: sqlite3.Row, kind: str, at: str) -> dict[str, Any]:
    meta = json.loads(row["meta"] or "{}")
    out: dict[str, Any] = {"id": row["id"], "source": row["source"], "kind": kind, "title": row["title"],
                           "uri": row["uri"], "project": row["project"], "at": at,
                           "start": row["created_at"], "end": row["updated_at"]}
    if kind == "session":
        out["duration_s"] = round(_seconds(row["created_at"], row["updated_at"]))
        out["first_prompt"] = first_prompt(row["head"] or "") or None
        out["user_messages"] = meta.get("user_messages")
        out["agent"] = meta.get("agent") or row["source"]
        resume = meta.get("resume")
        out["resume"] = resume
        out["open"] = reopen_command(row["project"], resume)
    elif kind == "page":
        out["url"] = row["uri"]
        out["domain"] = meta.get("domain")
        out["visits"] = meta.get("visit_count")
    elif kind == "file":
        out["path"] = meta.get("path")
        out["rel_path"] = meta.get("rel_path")
        out["language"] = meta.get("language")
        out["line_count"] = meta.get("line_count")
    return out


def _rows(conn: sqlite3.Connection, w: Window, source: str | None, project: str | None) -> list[sqlite3.Row]:
    where = ["updated_at >= ?", "created_at <= ?"]
    args: list[Any] = [w.since, w.until]
    if source:
        where.append("source = ?")
        args.append(source)
    if project:
        where.append("project = ?")
        args.append(project)
    return conn.execute(
        "SELECT id, source, title, uri, project, created_at, updated_at, meta, "
        f"CASE WHEN source IN ('claude', 'agent') THEN substr(content, 1, {HEAD_CHARS}) ELSE '' END AS head "
        f"FROM items WHERE {' AND '.join(where)}", args).fetchall()


def _groups(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries by project (pages have none), each group in time order, groups by their first entry."""
    by: dict[str | None, list[dict[str, Any]]] = {}
    for e in entries:
        by.setdefault(e["project"], []).append(e)
    groups = []
    for project, items in by.items():
        name = (os.path.basename(project.rstrip("/")) or project) if project else None
        groups.append({"project": project, "name": name,
                       "first_at": items[0]["at"], "last_at": items[-1]["at"],
                       "counts": dict(Counter(e["kind"] for e in items)), "entries": items})
    return sorted(groups, key=lambda g: (g["first_at"], g["project"] or ""))


def build(conn: sqlite3.Connection, w: Window, *, source: str | None = None, project: str | None = None,
          limit: int = 1000) -> dict[str, Any]:
    """The timeline answer (docs/API.md): the window, counts, and the groups of entries."""
    entries = []
    for row in _rows(conn, w, source, project):
        kind = KINDS.get(row["source"], "note")
        at = _position(kind, row["created_at"], row["updated_at"], w)
        if at is not None:
            entries.append(_entry(row, kind, at))
    entries.sort(key=lambda e: (e["at"], e["id"]))
    truncated = len(entries) > limit
    entries = entries[:limit]
    out: dict[str, Any] = {"since": w.since, "until": w.until, "tz": w.tz_name,
                           "day": w.day.isoformat() if w.day else None, "days": w.days if w.day else None}
    if w.day:
        out["prev_day"] = (w.day - timedelta(days=w.days)).isoformat()
        out["next_day"] = (w.day + timedelta(days=w.days)).isoformat()
    out.update({"total": len(entries), "truncated": truncated, "counts": dict(Counter(e["kind"] for e in entries)),
                "groups": _groups(entries)})
    return out
