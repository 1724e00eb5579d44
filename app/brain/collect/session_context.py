"""What the SessionStart hook tells a new Claude Code session: the brain's memory of its project.

Three parts, kept in this order when the token budget (``hooks.context_tokens``) is short:

1. **Recent sessions** in this project from every agent (brain-api's item list, sources
   ``claude`` and ``agent``, filtered by project), newest first: when, which agent, the title
   (the first prompt when there is none) and the command that reopens it (``mcp.render.locate``,
   the same command the MCP tools give).
2. **Where the last session stopped**: the last prompt of the most recent other Claude session
   in this project, and the answer after it if there is one, read from its transcript, which
   lies beside this session's (Claude Code keeps a project's transcripts in one folder), with
   the collector's own parsing (harness text is not the user's words). That is all "open
   thread" can honestly mean without an LLM: where it stopped; the model sees whether the last
   prompt was answered.
3. **Related memories**: brain-api's hybrid search in this project for its name and the recent
   sessions' titles, the sessions already listed left out.

Time: every part runs against one deadline (``hooks.start_budget`` less the time kept for
printing, counted from the hook process's start: ``brain.shared.hook_deadline``). brain-api calls run in parallel threads, each with a fresh client (no retries, the time
left as its timeout); a part not done by the deadline is left out, and without the session list
(brain-api down or slow) nothing is printed at all. The text is redacted before it is printed:
items are redacted by the collectors, notes posted by hand need not be.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from brain.client.http import ApiClient
from brain.collect.claude import LineStats, Renderer, parse_jsonl
from brain.mcp import render
from brain.shared.settings import LaptopConfig

RECENT_SESSIONS = 5
MEMORIES = 5
SEARCH_K = 12
TAIL_BYTES = 2 << 20  # the end of a transcript read for its last prompt (a line can be megabytes)
CHARS_PER_TOKEN = 4  # what a token budget allows, estimated without a tokenizer (none on the laptop)
LINE_CHARS = 300
SESSION_SOURCES = ("claude", "agent")


@dataclass
class Parts:
    """What was found, each part ``None`` when it failed or missed the deadline."""

    project: str
    sessions: list[dict[str, Any]] | None = None
    stopped: Stopped | None = None
    memories: list[dict[str, Any]] | None = None
    problems: list[str] = field(default_factory=list)


def parallel(calls: dict[str, Callable[[], Any]], deadline: float) -> dict[str, Any]:
    """Run each call in a daemon thread; the results in by ``deadline`` (``time.monotonic()``),
    an exception standing for its call's result. A call still running is abandoned: a daemon
    thread never holds the hook's exit."""
    results: dict[str, Any] = {}

    def run(name: str, fn: Callable[[], Any]) -> None:
        try:
            results[name] = fn()
        except Exception as exc:  # reported by the caller, never raised into the session
            results[name] = exc

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return dict(results)


def _client(cfg: LaptopConfig, deadline: float) -> ApiClient:
    """A client of its own (a requests session is not shared between threads), no retries, the
    time left until the deadline as its timeout."""
    client = ApiClient.from_config(cfg, retries=0)
    client.timeout = max(0.05, deadline - time.monotonic())
    return client


def _sessions(cfg: LaptopConfig, project: str, source: str, deadline: float) -> list[dict[str, Any]]:
    return _client(cfg, deadline).list_items(source=source, project=project, limit=RECENT_SESSIONS + 1)["items"]


def _is_session(item: dict[str, Any], session_id: str) -> bool:
    meta = item.get("meta") or {}
    return bool(session_id) and (meta.get("session_id") == session_id or item.get("id") == f"claude:{session_id}")


def recent_sessions(found: dict[str, Any], session_id: str, parts: Parts) -> list[dict[str, Any]] | None:
    """Both lists merged, newest first, without the session that is starting (a resumed or
    compacted one lists itself); None when neither list came back."""
    items: list[dict[str, Any]] = []
    ok = False
    for source in SESSION_SOURCES:
        value = found.get(source)
        if isinstance(value, list):
            ok = True
            items += value
        else:
            parts.problems.append(f"{source} sessions: {value or 'no answer by the deadline'}")
    if not ok:
        return None
    items = [it for it in items if not _is_session(it, session_id)]
    items.sort(key=lambda it: str(it.get("updated_at") or ""), reverse=True)
    return items[:RECENT_SESSIONS]


def _search_query(project: str, sessions: list[dict[str, Any]]) -> str:
    words = [Path(project).name] + [str(s.get("title") or "") for s in sessions[:3]]
    return " ".join(" ".join(words).split())[:400] or project


def related(cfg: LaptopConfig, project: str, sessions: list[dict[str, Any]], session_id: str,
            deadline: float) -> list[dict[str, Any]]:
    """Search results in the project, the listed sessions and the one starting left out."""
    shown = {s.get("id") for s in sessions}
    answer = _client(cfg, deadline).search(_search_query(project, sessions), k=SEARCH_K, project=project)
    return [r for r in answer.get("results", [])
            if r.get("id") not in shown and not _is_session(r, session_id)][:MEMORIES]


def _tail(path: Path) -> bytes:
    """The last ``TAIL_BYTES`` of a file, from its first complete line."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        start = max(0, size - TAIL_BYTES)
        fh.seek(start)
        data = fh.read()
    return data if start == 0 else data.partition(b"\n")[2]


_SLASH_COMMAND = re.compile(r"/[\w:-]+(\s|$)")
_INTERRUPTED = "[Request interrupted"


@dataclass
class Stopped:
    """Where a session stopped: its last prompt, and the last answer after it ("" for none)."""

    session: dict[str, Any]
    prompt: str
    answer: str
    interrupted: bool


def _is_prompt(line: str) -> bool:
    """A rendered line the user typed as a request: not an interruption marker, not a slash
    command (``/mcp``, ``/clear``) which asks nothing of the next session."""
    if not line.startswith("user: "):
        return False
    text = line[len("user: "):]
    return not text.startswith(_INTERRUPTED) and not _SLASH_COMMAND.match(text)


def last_exchange(lines: list[str]) -> tuple[str, str, bool] | None:
    """(last prompt, last answer after it or "", whether the user interrupted it) of rendered lines."""
    prompts = [n for n, line in enumerate(lines) if _is_prompt(line)]
    if not prompts:
        return None
    after = lines[prompts[-1] + 1:]
    answers = [line[len("assistant: "):] for line in after if line.startswith("assistant: ")]
    interrupted = any(line.startswith("user: " + _INTERRUPTED) for line in after)
    return lines[prompts[-1]][len("user: "):], answers[-1] if answers else "", interrupted


def where_it_stopped(sessions: list[dict[str, Any]], transcript_path: str) -> Stopped | None:
    """Where the newest Claude session of the list whose transcript lies beside this session's
    stopped; None when there is none."""
    if not transcript_path:
        return None
    folder = Path(transcript_path).expanduser().parent
    for session in sessions:
        if session.get("source") != "claude":
            continue
        sid = str((session.get("meta") or {}).get("session_id") or str(session.get("id", "")).partition(":")[2])
        path = folder / f"{sid}.jsonl"
        if not sid or not path.is_file():
            continue
        entries = [e for e in parse_jsonl(_tail(path), LineStats()) if not e.get("isSidechain")]
        found = last_exchange(Renderer(tool_result_chars=LINE_CHARS, tool_input_chars=100).render(entries))
        return Stopped(session, *found) if found else None
    return None


def gather(cfg: LaptopConfig, payload: dict[str, Any], project: str, deadline: float) -> Parts:
    """Ask brain-api (two rounds of parallel calls) and read the last transcript, by ``deadline``."""
    parts = Parts(project)
    session_id = str(payload.get("session_id") or "")
    found = parallel({s: partial(_sessions, cfg, project, s, deadline) for s in SESSION_SOURCES}, deadline)
    parts.sessions = recent_sessions(found, session_id, parts)
    if parts.sessions is None:
        return parts
    sessions = parts.sessions
    second = parallel({"memories": lambda: related(cfg, project, sessions, session_id, deadline),
                       "stopped": lambda: where_it_stopped(sessions, str(payload.get("transcript_path") or ""))},
                      deadline)
    for name in ("memories", "stopped"):
        value = second.get(name)
        if isinstance(value, Exception) or name not in second:
            parts.problems.append(f"{name}: {value or 'not done by the deadline'}")
        else:
            setattr(parts, name, value)
    return parts


# ---------------------------------------------------------------------- the text


def _quote(text: str, limit: int = LINE_CHARS) -> str:
    return '"' + render.one_line(text, limit) + '"'


def session_line(item: dict[str, Any]) -> str:
    loc = render.locate(item)
    title = render.one_line(str(item.get("title") or item.get("id")), 120)
    how = f"resume: {loc['open']}" if loc.get("resume") else f"read: {loc['open']}"
    return f"- {render.short_time(item.get('updated_at'))} · {render.agent_name(item)} · {title} · {how}"


def memory_line(item: dict[str, Any]) -> str:
    loc = render.locate(item, item.get("chunk"))
    title = render.one_line(str(item.get("title") or item.get("id")), 100)
    snippet = render.one_line(str(item.get("snippet") or ""), 160)
    where = loc.get("open") or ""
    if not where or where.startswith("get_item("):  # the MCP tool's call: this session may not have it
        where = f"id {item.get('id')}"
    return f"- [{item.get('source')}] {title} ({where}): {snippet}"


def stopped_lines(stopped: Stopped) -> list[str]:
    session = stopped.session
    title = render.one_line(str(session.get("title") or session.get("id")), 100)
    lines = [f"Where the last session stopped ({title}, {render.short_time(session.get('updated_at'))}):",
             f"  last prompt: {_quote(stopped.prompt)}"]
    if stopped.answer:
        lines.append(f"  last answer: {_quote(stopped.answer)}")
    elif stopped.interrupted:
        lines.append("  (the user interrupted it before any answer)")
    else:
        lines.append("  (no answer after it)")
    return lines


def compose(parts: Parts, max_tokens: int) -> str:
    """The context text, cut at whole lines to ``max_tokens`` (about 4 characters a token); ""
    when there is nothing to say."""
    blocks: list[list[str]] = []
    if parts.sessions:
        blocks.append(["Recent sessions in this project (newest first):"] + [session_line(s) for s in parts.sessions])
    if parts.stopped:
        blocks.append(stopped_lines(parts.stopped))
    if parts.memories:
        blocks.append(["Related memories:"] + [memory_line(m) for m in parts.memories])
    if not blocks:
        return ""
    head = (f"From the user's brain (their searchable memory of past work) about {parts.project}; "
            "use it when it helps, the user did not type it:")
    budget, out = max_tokens * CHARS_PER_TOKEN, [head]
    used = len(head)
    for block in blocks:
        for n, line in enumerate(block):
            if used + len(line) + 1 > budget or (n == 0 and used + len(line) + len(block[1]) + 2 > budget):
                return "\n".join(out) if len(out) > 1 else ""  # a heading alone says nothing
            out.append(line)
            used += len(line) + 1
    return "\n".join(out)


def token_estimate(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)
