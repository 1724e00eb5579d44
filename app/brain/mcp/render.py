"""Turn brain-api items into results a model can act on: what the item is and how to reopen it.

Why every result names its next step: a model that finds "how I fixed this last month" must be able
to use it, so Claude sessions carry the ``cd <project> && claude --resume <id>`` command (Claude Code
resumes a session only from its own working directory), other agents' sessions (source ``agent``)
the command that reopens them in their own agent (``meta.resume``, run from the session's project
folder), pages their URL and visit time, files their path and line range, and every item its id for
``get_item``.

Collectors own the ``meta`` keys, so the lookups here are tolerant: a documented key when present
(``meta.resume``), else what the id form in docs/API.md implies, else the item's own times.
"""

from __future__ import annotations

from typing import Any

from brain.shared.resume import reopen_command

SNIPPET_CHARS = 300
# Keys a browser collector may use for the visit times; updated_at/created_at are the fallback.
LAST_VISIT_KEYS = ("last_visit", "last_visit_at", "last_visited_at", "visited_at", "last_visit_time")
FIRST_VISIT_KEYS = ("first_visit", "first_visit_at", "first_visited_at")
PUBLIC_FIELDS = ("id", "source", "title", "uri", "project", "created_at", "updated_at", "meta")
# meta.agent of source "agent" items (docs/API.md) -> the name a reader knows the agent by.
AGENT_NAMES = {"codex": "Codex CLI", "gemini": "Gemini CLI", "aider": "Aider", "cursor": "Cursor",
               "opencode": "opencode"}


def short_time(value: str | None) -> str:
    """``2026-02-10T22:00:00.000Z`` -> ``2026-02-10 22:00Z`` for the text a model reads."""
    if not value:
        return "?"
    return value[:16].replace("T", " ") + ("Z" if len(value) > 10 else "")


def one_line(text: str | None, limit: int = SNIPPET_CHARS) -> str:
    """Whitespace collapsed and cut to ``limit`` characters (snippets, metadata)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def public(item: dict[str, Any]) -> dict[str, Any]:
    """The item fields every tool result carries (no content, no scores)."""
    return {k: item.get(k) for k in PUBLIC_FIELDS}


def file_location(item: dict[str, Any]) -> tuple[str | None, str | None]:
    """(path, host) of a file item: meta first, else the documented id form ``file:<host>:<path>``."""
    meta = item.get("meta") or {}
    path, host = meta.get("path"), meta.get("host")
    rest = str(item.get("id", ""))[len("file:"):]
    id_host, sep, id_path = rest.partition(":")
    if sep:
        path, host = path or id_path or None, host or id_host or None
    return path, host


def _first(meta: dict[str, Any], keys: tuple[str, ...], default: Any) -> Any:
    for key in keys:
        if meta.get(key):
            return meta[key]
    return default


def locate(item: dict[str, Any], chunk: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields that let a caller act on an item, by source; ``open`` is the one-line action."""
    source = item.get("source")
    meta = item.get("meta") or {}
    if source == "claude":
        session_id = str(meta.get("session_id") or str(item.get("id", "")).partition(":")[2])
        resume = str(meta.get("resume") or f"claude --resume {session_id}")
        project = item.get("project") or meta.get("cwd")
        out: dict[str, Any] = {"session_id": session_id, "project": project, "resume": resume,
                               "open": reopen_command(project, resume)}
        if meta.get("git_branch"):
            out["git_branch"] = meta["git_branch"]
        return out
    if source == "agent":
        return _locate_agent(item, meta)
    if source == "browser":
        url = item.get("uri") or meta.get("url")
        out = {"url": url, "visited_at": _first(meta, LAST_VISIT_KEYS, item.get("updated_at")),
               "first_visited_at": _first(meta, FIRST_VISIT_KEYS, item.get("created_at")), "open": url}
        if meta.get("visit_count") is not None:
            out["visit_count"] = meta["visit_count"]
        return out
    if source == "file":
        path, host = file_location(item)
        start, end = (chunk or {}).get("start_line"), (chunk or {}).get("end_line")
        out = {"path": path, "host": host, "project": item.get("project"), "open": path}
        if start and end:
            out.update(start_line=start, end_line=end, open=f"{path}:{start}-{end}")
        return out
    uri = item.get("uri")
    return {"uri": uri, "open": uri or f"get_item(id={item.get('id')!r})"}


def _locate_agent(item: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """An agent session (``agent:<agent>:<session id>``): ``meta.resume`` run from its project
    folder, as Claude sessions are (a resume command that already changes folder is kept as it
    is); without one, ``open`` points at ``get_item``."""
    _, _, rest = str(item.get("id", "")).partition(":")
    id_agent, _, id_session = rest.partition(":")
    agent = str(meta.get("agent") or id_agent)
    project = item.get("project") or meta.get("cwd")
    resume = meta.get("resume") if isinstance(meta.get("resume"), str) and meta["resume"].strip() else None
    action = reopen_command(project, resume) or f"get_item(id={item.get('id')!r})"
    out = {"agent": agent, "session_id": str(meta.get("session_id") or id_session), "project": project,
           "resume": resume, "open": action}
    if meta.get("git_branch"):
        out["git_branch"] = meta["git_branch"]
    return out


def agent_name(item: dict[str, Any]) -> str:
    """"Claude Code", "Codex CLI", ...: which agent a session item comes from."""
    if item.get("source") == "claude":
        return "Claude Code"
    parts = str(item.get("id", "")).split(":")
    agent = str((item.get("meta") or {}).get("agent") or (parts[1] if len(parts) > 2 else ""))
    return AGENT_NAMES.get(agent, agent or "agent")


def describe(item: dict[str, Any], loc: dict[str, Any]) -> list[str]:
    """Two lines telling a model what an item is and how to reopen it."""
    source = item.get("source")
    if source in ("claude", "agent"):
        head = (f"{agent_name(item)} session · {short_time(item.get('created_at'))} → "
                f"{short_time(item.get('updated_at'))}")
        if loc.get("project"):
            head += f" · project {loc['project']}"
        if loc.get("git_branch"):
            head += f" · branch {loc['git_branch']}"
        if source == "agent" and not loc.get("resume"):
            return [head, f"no resume command: read it with {loc['open']}"]
        return [head, f"resume: {loc['open']}"]
    if source == "browser":
        head = f"web page · last visited {short_time(loc.get('visited_at'))}"
        if loc.get("visit_count") is not None:
            head += f" · {loc['visit_count']} visits"
        return [head, f"url: {loc.get('url')}"]
    if source == "file":
        head = f"file · modified {short_time(item.get('updated_at'))}"
        if loc.get("project"):
            head += f" · project {loc['project']}"
        where = f"path: {loc.get('path')}"
        if loc.get("start_line"):
            where += f" lines {loc['start_line']}-{loc['end_line']}"
        if loc.get("host"):
            where += f" (host {loc['host']})"
        return [head, where]
    head = f"{source} · updated {short_time(item.get('updated_at'))}"
    return [head, f"uri: {loc['uri']}"] if loc.get("uri") else [head]


def entry(n: int, item: dict[str, Any], snippet: str | None = None) -> str:
    """One numbered result; ``item`` already carries its :func:`locate` fields."""
    lines = [f"[{n}] {item.get('title') or item.get('id')}"]
    lines += ["    " + line for line in describe(item, item)]
    lines.append(f"    id: {item.get('id')}")
    if snippet:
        lines.append(f"    > {one_line(snippet)}")
    return "\n".join(lines)


def count_by(items: list[dict[str, Any]], key: str) -> str:
    """``"3 claude, 1 file"``: most frequent first."""
    counts: dict[str, int] = {}
    for it in items:
        counts[str(it.get(key))] = counts.get(str(it.get(key)), 0) + 1
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
