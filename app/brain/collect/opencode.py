"""opencode sessions -> one ``agent:opencode:<sessionID>`` item per session.

Format, as read in anomalyco/opencode (formerly sst/opencode): ``packages/opencode/src/session/
session.sql.ts`` (the tables), ``storage/schema.sql.ts`` (``time_created``/``time_updated``, Unix
ms), ``session/message-v2.ts`` (the JSON in ``message.data`` and ``part.data``),
``storage/json-migration.ts`` (the JSON files before the database and how they became rows),
``storage/db.ts`` (the database's name), ``session/index.ts`` (placeholder titles):

* Database (since v1.2): ``$XDG_DATA_HOME`` (default ``~/.local/share``, on macOS too: opencode
  takes it from ``xdg-basedir``) ``/opencode/opencode.db``
  (``opencode-<channel>.db`` for other release channels; ``$OPENCODE_DB``, absolute or relative
  to that folder, overrides), SQLite in WAL mode, read from a private copy. Tables ``session``
  (``id``, ``project_id``, ``parent_id``, ``directory``, ``title``, ``version``, times),
  ``message`` (``id``, ``session_id``, ``time_created``, ``data``: the message without its ids),
  ``part`` (``id``, ``message_id``, ``session_id``, ``data``), ``project`` (``id``, ``worktree``).
  Columns are selected by name, so a column added or dropped by a later version is no trouble.
* Before it, JSON files under ``storage/``: ``session/<projectID>/<sessionID>.json``,
  ``message/<sessionID>/<messageID>.json``, ``part/<messageID>/<partID>.json``,
  ``project/<projectID>.json``, the same objects with their ids. opencode copies them into the
  database once and leaves them behind, so a session found in both is read from the database
  (its JSON copy is counted as empty).
* Messages, in ``time.created`` then id order: ``role`` user|assistant; an assistant's
  ``modelID``/``providerID``, ``error{name, data.message}``, and ``summary: true`` on the summary
  a compaction wrote (asked for by a user message with a ``compaction`` part). Parts in id order:
  ``text`` (``synthetic`` text is opencode's own, e.g. a file it read for an @-mention, and
  ``ignored`` text was never sent: neither is the user's), ``reasoning``, ``tool`` (``tool``,
  ``callID``, ``state{status: pending|running|completed|error, input, output, error}``),
  ``subtask`` (a command run as a sub-agent); ``file``, ``agent``, ``step-start``,
  ``step-finish``, ``snapshot``, ``patch``, ``retry`` are bookkeeping.
* A sub-agent's session (``parent_id``) is an item of its own (``meta.parent_session``).
* ``New session - <ISO time>`` / ``Child session - <ISO time>`` titles are placeholders: the first
  prompt is the title until opencode writes a real one.
* Reopened with ``opencode --session <id>`` (``-s``) from the project folder.
* Not read: the ``session_message`` table of opencode's in-development v2 sessions.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from brain.collect.agents import (
    Bad,
    Lines,
    Session,
    Unit,
    archive_files,
    archive_rows,
    as_text,
    db_snapshot,
    decode,
    load_json,
    row_json,
    tables,
    text_of,
    when,
)
from brain.shared.settings import LaptopConfig

NAME = "opencode"
PLACEHOLDER_TITLE = re.compile(r"^(New|Child) session - \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TABLES = {"session", "message", "part"}


def data_dir(env: dict[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/opencode`` (opencode's ``Global.Path.data``), default ``~/.local/share/opencode``."""
    env = dict(os.environ if env is None else env)
    xdg = env.get("XDG_DATA_HOME", "")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share") / "opencode"


def databases(data: Path, env: dict[str, str] | None = None) -> list[Path]:
    """``opencode.db``, ``opencode-<channel>.db`` and ``$OPENCODE_DB``, those that exist."""
    env = dict(os.environ if env is None else env)
    found = [p for p in [data / "opencode.db", *sorted(data.glob("opencode-*.db"))] if p.is_file()]
    custom = env.get("OPENCODE_DB", "")
    if custom and custom != ":memory:":
        path = Path(custom) if os.path.isabs(custom) else data / custom
        if path.is_file() and path not in found:
            found.append(path)
    return found


def roots(cfg: LaptopConfig, env: dict[str, str] | None = None) -> list[Path]:
    """opencode's data folder, when it holds a database or the older JSON sessions."""
    data = data_dir(env)
    return [data] if databases(data, env) or (data / "storage" / "session").is_dir() else []


def units(cfg: LaptopConfig, found: list[Path]) -> Iterator[Unit]:
    """Each database (expanded into its sessions when it changed), then the JSON sessions."""
    for data in found:
        dbs = databases(data)
        in_db = DbSessions(dbs)
        for db in dbs:
            yield Unit(db.name, [db, db.with_name(db.name + "-wal")], None,
                       expand=partial(db_units, db, data, cfg, in_db))
        storage = data / "storage"
        if (storage / "session").is_dir():
            yield from json_units(storage, cfg, in_db)


# ---------------------------------------------------------------------- the database


@dataclass
class DbSessions:
    """The session ids the databases hold: learnt while they are read, else read on demand
    (only when a JSON session changed, which after the move to the database is never)."""

    dbs: list[Path]
    ids: set[str] = field(default_factory=set)
    complete: bool = False

    def __contains__(self, sid: object) -> bool:
        if sid not in self.ids and not self.complete:
            for db in self.dbs:
                with db_snapshot(db) as conn:
                    if "session" in tables(conn):
                        self.ids.update(as_text(r[0]) for r in conn.execute("SELECT id FROM session"))
            self.complete = True
        return sid in self.ids


def db_units(db: Path, data: Path, cfg: LaptopConfig, in_db: DbSessions) -> Iterator[Unit]:
    """One unit per session row, read from one private copy of the database."""
    with db_snapshot(db) as conn:
        have = tables(conn)
        if TABLES - have:
            raise sqlite3.DatabaseError(f"no {'/'.join(sorted(TABLES - have))} table: not an opencode database")
        stamps = _stamps(conn)
        worktrees = _worktrees(conn) if "project" in have else {}
        for raw_id, updated in conn.execute("SELECT id, time_updated FROM session ORDER BY time_created, id").fetchall():
            sid = as_text(raw_id)
            in_db.ids.add(sid)
            row = DbSession(conn, db, data, sid, worktrees, cfg)
            yield Unit(f"{db.name} session {sid}", [], row.build, archive_rows(data, f"{db.name}/{sid}.jsonl", row.records),
                       stamp=f"{as_text(updated)}:{stamps.get(sid, '')}")
    in_db.complete = True


def _stamps(conn: sqlite3.Connection) -> dict[str, str]:
    """Per session: its messages' and parts' counts and newest update times (a part is
    rewritten as it streams, without touching its session's row)."""
    out: dict[str, str] = {}
    for table in ("message", "part"):
        for sid, n, newest in conn.execute(f"SELECT session_id, count(*), max(time_updated) FROM {table} "
                                           "GROUP BY session_id"):  # table names are constants
            out[as_text(sid)] = f"{out.get(as_text(sid), '')}{table}:{n}:{as_text(newest)};"
    return out


def _worktrees(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        return {as_text(i): as_text(w) for i, w in conn.execute("SELECT id, worktree FROM project")}
    except sqlite3.Error:
        return {}


def _dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


class DbSession:
    """One session's rows: parsed into a Session (``build``), exported for the archive (``records``)."""

    def __init__(self, conn: sqlite3.Connection, db: Path, data: Path, sid: str, worktrees: dict[str, str],
                 cfg: LaptopConfig):
        self.conn, self.db, self.data, self.sid, self.worktrees, self.cfg = conn, db, data, sid, worktrees, cfg
        self.bad = Bad()
        self.rows: list[dict[str, Any]] = []

    def _read(self) -> tuple[dict[str, Any], list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
        """The session row and its (message, parts) in order; bad rows named and left out."""
        self.bad, self.rows = Bad(), []
        session = {k: _plain(v) for k, v in _dicts(self.conn.execute("SELECT * FROM session WHERE id = ?",
                                                                     (self.sid,)))[0].items()}
        self.rows.append({"session": session})
        parts: dict[str, list[dict[str, Any]]] = {}
        for row in _dicts(self.conn.execute("SELECT * FROM part WHERE session_id = ? ORDER BY message_id, id",
                                            (self.sid,))):
            part = self._row("part", row)
            if part is not None:
                parts.setdefault(as_text(row.get("message_id")), []).append(part)
        messages = []
        for row in _dicts(self.conn.execute("SELECT * FROM message WHERE session_id = ? ORDER BY time_created, id",
                                            (self.sid,))):
            info = self._row("message", row)
            if info is not None:
                messages.append((info, parts.get(as_text(row.get("id")), [])))
        return session, messages

    def _row(self, table: str, row: dict[str, Any]) -> dict[str, Any] | None:
        where = f"{self.db.name} {table} {as_text(row.get('id'))}"
        value = row_json(row.get("data"), where, self.bad)
        record = {k: _plain(v) for k, v in row.items() if k != "data"}
        record["data"] = value if value is not None else _plain(row.get("data"))
        self.rows.append({table: record})
        return value

    def build(self) -> Session | None:
        session, messages = self._read()
        project = session.get("directory") or self.worktrees.get(str(session.get("project_id")), "")
        return make_session(self.sid, session, messages, project, [self.db.name], self.bad, self.cfg)

    def records(self) -> list[dict[str, Any]]:
        return self.rows


def _plain(value: Any) -> Any:
    """A column value that JSON can hold: bytes as text (invalid UTF-8 as U+FFFD)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# ---------------------------------------------------------------------- the JSON files (before v1.2)


def json_units(storage: Path, cfg: LaptopConfig, in_db: DbSessions) -> Iterator[Unit]:
    """One unit per ``session/<projectID>/<sessionID>.json`` with its message and part files."""
    for path in sorted((storage / "session").glob("*/*.json")):
        sid = path.stem
        messages = sorted((storage / "message" / sid).glob("*.json"))
        parts = [p for m in messages for p in sorted((storage / "part" / m.stem).glob("*.json"))]
        paths = [path, *messages, *parts]
        rel = path.relative_to(storage).as_posix()
        def build(p: Path = path, m: list[Path] = messages) -> Session | None:
            return None if p.stem in in_db else json_session(storage, p, m, cfg)

        yield Unit(rel, paths, build, archive_files(storage, paths))


def _json_file(path: Path, storage: Path, bad: Bad) -> dict[str, Any] | None:
    rel = path.relative_to(storage).as_posix()
    value = load_json(decode(path.read_bytes(), rel, bad), rel, bad)
    if value is not None and not isinstance(value, dict):
        bad.dropped.append((rel, "not a JSON object"))
        bad.skipped += 1
        return None
    return value


def json_session(storage: Path, path: Path, message_files: list[Path], cfg: LaptopConfig) -> Session | None:
    bad = Bad()
    session = _json_file(path, storage, bad)
    if session is None:
        return None
    sid = path.stem
    messages = []
    for mpath in message_files:
        info = _json_file(mpath, storage, bad)
        if info is None:
            continue
        parts = [p for p in (_json_file(f, storage, bad) for f in sorted((storage / "part" / mpath.stem).glob("*.json")))
                 if p is not None]
        messages.append((info, parts))
    messages.sort(key=lambda m: (_num((m[0].get("time") or {}).get("created")), str(m[0].get("id"))))
    flat = {"project_id": path.parent.name, "parent_id": session.get("parentID"), "title": session.get("title"),
            "version": session.get("version"), "time_created": (session.get("time") or {}).get("created"),
            "time_updated": (session.get("time") or {}).get("updated")}
    project = session.get("directory") or _worktree(storage, path.parent.name, bad)
    rel = path.relative_to(storage).as_posix()
    return make_session(sid, flat, messages, project, [rel, f"message/{sid}/"], bad, cfg)


def _worktree(storage: Path, project_id: str, bad: Bad) -> str:
    path = storage / "project" / f"{project_id}.json"
    project = _json_file(path, storage, bad) if path.is_file() else None
    return str(project.get("worktree") or "") if project else ""


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


# ---------------------------------------------------------------------- rendering


def make_session(sid: str, session: dict[str, Any], messages: list[tuple[dict[str, Any], list[dict[str, Any]]]],
                 project: Any, files: list[str], bad: Bad, cfg: LaptopConfig) -> Session:
    lines = Lines(cfg)
    models: list[str] = []
    times = render(messages, lines, models)
    times += [when(session.get("time_created")), when(session.get("time_updated"))]
    title = str(session.get("title") or "")
    project = str(project or "") if project and project != "/" else None
    return Session(
        NAME, sid, lines, files, title="" if PLACEHOLDER_TITLE.match(title) else title, project=project,
        times=[t for t in times if t], bad=bad, resume=f"opencode --session {sid}",
        meta={"model": models[-1] if models else None,
              "models": sorted(set(models)) if len(set(models)) > 1 else None,
              "agent_version": session.get("version") or None, "parent_session": session.get("parent_id") or None,
              "project_id": session.get("project_id") or None})


def render(messages: list[tuple[dict[str, Any], list[dict[str, Any]]]], lines: Lines, models: list[str]) -> list[Any]:
    """Append the messages' parts; returns their times. A compaction (a user message's
    ``compaction`` part) shows the summary the next assistant message (``summary: true``) holds."""
    times: list[Any] = []
    compacting = False
    for info, parts in messages:
        stamp = got if isinstance(got := info.get("time"), dict) else {}
        times += [when(stamp.get("created")), when(stamp.get("completed"))]
        if info.get("role") == "assistant" and info.get("summary") is True:
            lines.compacted("\n".join(str(p.get("text")) for p in parts if p.get("type") == "text" and p.get("text")))
            compacting = False
            continue
        if compacting:
            lines.compacted()
            compacting = False
        if info.get("role") == "user":
            compacting = _user(parts, lines)
        elif info.get("role") == "assistant":
            if isinstance(info.get("modelID"), str):
                models.append(f"{info.get('providerID')}/{info['modelID']}" if info.get("providerID") else info["modelID"])
            for part in parts:
                _assistant_part(part, lines)
            _error(info.get("error"), lines)
    if compacting:
        lines.compacted()
    return times


def _user(parts: list[dict[str, Any]], lines: Lines) -> bool:
    """The user's own text and commands; True when the message asks for a compaction."""
    compaction = False
    for part in parts:
        kind = part.get("type")
        if kind == "text" and not part.get("synthetic") and not part.get("ignored"):
            lines.user(str(part.get("text") or ""))
        elif kind == "subtask":
            lines.tool("task", {"description": part.get("description"), "prompt": part.get("prompt")})
        elif kind == "compaction":
            compaction = True
    return compaction


def _assistant_part(part: dict[str, Any], lines: Lines) -> None:
    kind = part.get("type")
    if kind == "text":
        lines.assistant(str(part.get("text") or ""))
    elif kind == "reasoning":
        lines.thought(str(part.get("text") or ""))
    elif kind == "tool":
        name = str(part.get("tool") or "tool")
        state = got if isinstance(got := part.get("state"), dict) else {}
        lines.tool(name, state.get("input"))
        if state.get("status") == "completed":
            lines.result(name, _output(state.get("output")))
        elif state.get("status") == "error":
            lines.result(name, _output(state.get("error")), error=True)


def _output(value: Any) -> str:
    if isinstance(value, str):
        return value
    return text_of(value) or ("" if value is None else json.dumps(value, ensure_ascii=False))


def _error(error: Any, lines: Lines) -> None:
    """An assistant message's error (``{name, data: {message}}``), as Gemini errors are shown."""
    if not isinstance(error, dict):
        return
    data = got if isinstance(got := error.get("data"), dict) else {}
    lines.error(str(data.get("message") or error.get("name") or ""))
