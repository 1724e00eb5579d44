"""Other coding agents' sessions (Codex CLI, Gemini CLI, Aider, opencode, Cursor) -> one item per session.

Every agent has its own module (``codex``, ``gemini``, ``aider``, ``opencode``, ``cursor``) that finds
its files or databases, reads them into a ``Session`` and says how to reopen it; this module holds
what they share, so their items read like Claude sessions:

* Items: ``source`` ``agent``, ``id`` ``agent:<agent>:<session id>``, ``uri``
  ``<agent>://session/<session id>``, ``meta.agent`` the agent's name and ``meta.resume`` the
  command that reopens the session where the agent has one. One ``agent`` source keeps the
  store's list of sources fixed however many agents are added; Claude keeps its own ``claude``
  source (its items predate this module).
* Content: ``user:``, ``assistant:``, ``tool <name>: <input>``, ``result (<name>[, error]): ...``
  lines, clipped at ``collect.tool_result_chars`` / ``collect.tool_input_chars`` at a token
  boundary (``claude._clip``), ``--- context compacted ---`` where the agent compacted.
* Incremental: a session is read again only when one of its files changed (size, mtime),
  remembered per file in the state's cursors; the outbox drops an item identical to the one
  sent before, so a re-read is idempotent. A SQLite database (opencode, Cursor) is a unit that
  expands into one unit per session only when the database or its ``-wal`` changed; it is read
  from a private copy (``db_snapshot``), and each session in it is read again only when its
  rows' stamp (their update times and counts) changed.
* One bad record never stops the rest: a line that is not JSON, a record of the wrong shape,
  invalid UTF-8 or a lone surrogate is skipped or repaired and named in the run's
  ``dropped`` / ``repaired``; a session that fails for any other reason is dropped and named
  while the other sessions are collected.
* Archived like Claude transcripts: the raw files (redacted at rest) in the transcript archive,
  one archive root per agent folder; a database is archived as one JSON-lines export per session.
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from brain.collect import TITLE_SOURCE_CHARS, Problem, RunStats, prepare, repair_text
from brain.collect.archive import AgentArchive, Archive
from brain.collect.browser import snapshot
from brain.collect.claude import PROMPT_TITLE_CHARS, WRITTEN_TITLE_CHARS, _clip
from brain.collect.outbox import Queued, Sink, State
from brain.shared import timeutil
from brain.shared.settings import LaptopConfig

SOURCE = "agent"
# meta the collector derives itself (ids, counts, versions): not redacted. ``files`` is: its paths come
# from the session's tool inputs, which are the user's text
PLAIN_META = ("agent", "resume", "session_id", "model", "models", "user_messages", "tool_calls",
              "skipped_lines", "forked_from", "agent_version")


# ---------------------------------------------------------------------- reading


@dataclass
class Bad:
    """Bad records of one session: skipped (``dropped``) or kept repaired (``repaired``)."""

    dropped: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)
    skipped: int = 0


def decode(raw: bytes, where: str, bad: Bad) -> str:
    """UTF-8 text; invalid bytes become U+FFFD and the record is named as repaired."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        bad.repaired.append((where, "invalid UTF-8 replaced with U+FFFD"))
        return raw.decode("utf-8", "replace")


def load_json(text: str, where: str, bad: Bad) -> Any:
    """A JSON value with lone surrogates (``"\\ud83d"``) replaced; ``None`` (and named) if broken."""
    try:
        value = json.loads(text)
    except ValueError:
        bad.dropped.append((where, "not valid JSON"))
        bad.skipped += 1
        return None
    if "\\ud" in text or "\\uD" in text:
        value, n = repair_text(value)
        if n:
            bad.repaired.append((where, f"{n} lone surrogates replaced with U+FFFD"))
    return value


def read_jsonl(data: bytes, rel: str, bad: Bad) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, in order. A line that is not an object is dropped
    and named; an unparseable last line without a newline is the tail being written (skipped,
    not named: the next run reads it whole)."""
    lines = data.split(b"\n")
    for n, raw in enumerate(lines):
        if not raw.strip():
            continue
        where = f"{rel} line {n + 1}"
        text = decode(raw, where, bad)
        if n == len(lines) - 1:
            try:
                json.loads(text)
            except ValueError:
                bad.skipped += 1
                continue
        obj = load_json(text, where, bad)
        if obj is None:
            continue
        if not isinstance(obj, dict):
            bad.dropped.append((where, "not a JSON object"))
            bad.skipped += 1
            continue
        yield obj


def text_of(value: Any) -> str:
    """The text of a content value: a string, ``{text}`` parts or lists of them."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value["text"] if isinstance(value.get("text"), str) else ""
    if isinstance(value, list):
        return "\n".join(t for t in (text_of(v) for v in value) if t)
    return ""


def when(value: Any) -> datetime | None:
    """An ISO string, or Unix seconds / milliseconds, as an aware datetime; None if not a time."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
        if isinstance(value, str) and value:
            return timeutil.parse(value)
    except (ValueError, OverflowError, OSError):
        return None
    return None


# ---------------------------------------------------------------------- rendering


ERROR_CHARS = 500  # longest error message shown


class Lines:
    """A session's content as Claude items show it; counts the user's prompts and tool calls."""

    def __init__(self, cfg: LaptopConfig):
        self.result_chars: int = cfg.collect.tool_result_chars
        self.input_chars: int = cfg.collect.tool_input_chars
        self.thinking: bool = cfg.collect.include_thinking
        self.out: list[str] = []
        self.prompts = 0
        self.calls = 0

    def user(self, text: str) -> None:
        text = text.strip()
        if text:
            self.out.append(f"user: {text}")
            self.prompts += 1

    def assistant(self, text: str) -> None:
        text = text.strip()
        if text:
            self.out.append(f"assistant: {text}")

    def thought(self, text: str) -> None:
        if self.thinking and text.strip():
            self.out.append(f"thinking: {text.strip()}")

    def tool(self, name: str, args: Any) -> None:
        """``tool <name>: <the input that says what it did>`` (a command, a path, a query)."""
        self.calls += 1
        shown = _clip(tool_input(args), self.input_chars)
        self.out.append(f"tool {name}: {shown}" if shown else f"tool {name}")

    def result(self, name: str, text: str, error: bool = False) -> None:
        flag = ", error" if error else ""
        self.out.append(f"result ({name}{flag}): {_clip(text, self.result_chars)}")

    def note(self, line: str) -> None:
        self.out.append(line)

    def error(self, text: str) -> None:
        """``error: <message>``, a long one cut at a token boundary (never through a secret)."""
        if text.strip():
            self.out.append(f"error: {_clip(text, ERROR_CHARS)}")

    def compacted(self, summary: str = "") -> None:
        self.out.append("--- context compacted ---")
        if summary.strip():
            self.out.append(f"[summary of the conversation so far] {_clip(summary, 4 * self.result_chars)}")

    def first_prompt(self) -> str:
        """The first prompt, whole (``prepare`` makes it one line once it is redacted)."""
        return next((_clip(line[len("user: "):], TITLE_SOURCE_CHARS) for line in self.out if line.startswith("user: ")),
                    "")


KEY_ARGS = ("command", "cmd", "file_path", "filePath", "path", "absolute_path", "pattern", "query", "url",
            "description", "prompt", "input")


def json_or_text(raw: Any) -> Any:
    """Tool arguments and results that agents store as JSON strings (Codex's
    ``function_call.arguments``, Cursor's ``rawArgs``/``params``/``result``), decoded; a string that
    is not JSON stays as it is, so it is still shown."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def tool_input(args: Any) -> str:
    """The one argument that says what a call did (a command list joined as a shell line), else
    the arguments as compact JSON."""
    if isinstance(args, str):
        return args
    if not isinstance(args, dict):
        return "" if args is None else json.dumps(args, ensure_ascii=False)
    for key in KEY_ARGS:
        value = args.get(key)
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return shlex.join(value)
        if isinstance(value, str) and value:
            return value
    return json.dumps(args, ensure_ascii=False, sort_keys=True) if args else ""


# ---------------------------------------------------------------------- sessions -> items


@dataclass
class Session:
    """One agent session, parsed (not yet redacted)."""

    agent: str
    sid: str
    lines: Lines
    files: list[str]
    title: str = ""
    project: str | None = None
    times: list[datetime] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    resume: str | None = None
    bad: Bad = field(default_factory=Bad)

    def item(self) -> dict[str, Any]:
        times = sorted(self.times)
        meta = {"agent": self.agent, "resume": self.resume, "session_id": self.sid,
                "user_messages": self.lines.prompts, "tool_calls": self.lines.calls, "files": self.files,
                "skipped_lines": self.bad.skipped or None, **self.meta}
        return {
            "id": f"{SOURCE}:{self.agent}:{self.sid}", "source": SOURCE,
            "title": _clip(self.title, TITLE_SOURCE_CHARS) if self.title.strip() else self.lines.first_prompt() or self.sid,
            "uri": f"{self.agent}://session/{self.sid}", "project": self.project,
            "created_at": timeutil.fmt(times[0]) if times else None,
            "updated_at": timeutil.fmt(times[-1]) if times else None,
            "content": "\n".join(self.lines.out).strip(),
            "meta": {k: v for k, v in meta.items() if v not in (None, [], {}, "")},
        }


@dataclass
class Unit:
    """What one session is read from: its files (watched for changes and archived), and how.

    A database is a unit of its own: ``paths`` its file and ``-wal``, ``expand`` the units of its
    sessions (read from one private copy), each with a ``stamp`` that changes when its rows do."""

    key: str  # names the session in problems before it is parsed (a file, a database row)
    paths: list[Path]
    build: Callable[[], Session | list[Session] | None] | None  # a list: several sessions in one file (Aider)
    archive: Callable[[AgentArchive], None] | None = None
    expand: Callable[[], Iterable[Unit]] | None = None  # a database: its sessions' units
    stamp: str | None = None  # a session in a database: read again only when this changes


class Tracker:
    """Which files were read, with their size and mtime, and which database sessions, with their
    rows' stamp, in the collectors' state (cursors)."""

    def __init__(self, state: State, agent: str):
        self.state, self.agent = state, agent

    def _sig(self, path: Path) -> str:
        try:
            st = path.stat()
        except OSError:
            return "gone"
        return f"{st.st_size}:{st.st_mtime_ns}"

    def changed(self, unit: Unit) -> bool:
        if unit.stamp is not None:
            return self.state.get_cursor(f"{self.agent}-rows:{unit.key}") != unit.stamp
        return any(self.state.get_cursor(f"{self.agent}-file:{p}") != self._sig(p) for p in unit.paths)

    def remember(self, unit: Unit) -> None:
        if unit.stamp is not None:
            self.state.set_cursor(f"{self.agent}-rows:{unit.key}", unit.stamp)
            return
        for p in unit.paths:
            self.state.set_cursor(f"{self.agent}-file:{p}", self._sig(p))


def emit(session: Session, sink: Sink, stats: RunStats, redactor: Any, cfg: LaptopConfig) -> None:
    """Redact, cap and queue one session's item (unchanged items are not queued again)."""
    item, counts = prepare(session.item(), redactor, cfg.collect.max_item_bytes, PLAIN_META, stats,
                           WRITTEN_TITLE_CHARS if session.title.strip() else PROMPT_TITLE_CHARS)
    if sink.upsert(Queued(item, counts)):
        stats.queued += 1
        stats.redacted.update(counts)
    else:
        stats.unchanged += 1


def run_units(agent: str, units: Iterable[Unit], cfg: LaptopConfig, state: State, sink: Sink, redactor: Any,
              archive: Archive | None, since: datetime | None, stats: RunStats) -> bool:
    """Read the changed sessions, queue them, archive their files, remember them; a session that
    fails is named in ``stats`` and the others still run. True when every changed unit was read
    and queued (a database's files are remembered only then, so a failed session is tried again)."""
    tracker = Tracker(state, agent)
    done = True
    for unit in units:
        if not tracker.changed(unit):
            stats.unchanged += 1
            continue
        if _run_unit(agent, unit, cfg, state, sink, redactor, archive, since, stats):
            tracker.remember(unit)
            state.checkpoint()
        else:
            done = False
    return done


def _run_unit(agent: str, unit: Unit, cfg: LaptopConfig, state: State, sink: Sink, redactor: Any,
              archive: Archive | None, since: datetime | None, stats: RunStats) -> bool:
    """One changed unit; False when it (or a session in it) could not be read or queued."""
    if unit.expand is not None:
        try:
            return run_units(agent, unit.expand(), cfg, state, sink, redactor, archive, since, stats)
        except (OSError, sqlite3.Error) as exc:
            stats.errors.append(f"{agent} {unit.key}: cannot read: {exc}")
            return False
    try:
        built = unit.build() if unit.build is not None else None
    except OSError as exc:
        stats.errors.append(f"{agent} {unit.key}: cannot read: {exc}")
        return False
    except Exception as exc:  # one strange session must not stop the others
        stats.scanned += 1
        stats.dropped.append((f"{agent} {unit.key}", f"cannot be read: {type(exc).__name__}"))
        return False
    sessions = built if isinstance(built, list) else [built]
    for bad in {id(s.bad): s.bad for s in sessions if s is not None}.values():  # Aider's sessions share one
        stats.dropped.extend(bad.dropped)
        stats.repaired.extend(bad.repaired)
    if not all(_queue(agent, unit.key, s, sink, stats, redactor, cfg, since) for s in sessions):
        return False
    if archive is not None and unit.archive is not None:
        try:
            unit.archive(AgentArchive(archive, agent))
        except OSError as exc:
            stats.errors.append(f"{agent} archive: {unit.key}: {exc}")
    return True


def _queue(agent: str, key: str, session: Session | None, sink: Sink, stats: RunStats, redactor: Any,
           cfg: LaptopConfig, since: datetime | None) -> bool:
    """Queue one built session; False when it could not be queued (the unit is read again)."""
    stats.scanned += 1
    if session is None or not session.lines.out:
        stats.skipped["empty"] += 1
    elif since and session.times and max(session.times) < since:
        stats.skipped["before --since"] += 1
    else:
        try:
            emit(session, sink, stats, redactor, cfg)
        except (UnicodeError, ValueError, TypeError) as exc:
            stats.dropped.append((f"{agent} {key}", f"cannot be queued: {type(exc).__name__}"))
            return False
    return True


def archive_files(root: Path, paths: list[Path]) -> Callable[[AgentArchive], None]:
    """Archive each file under ``root`` by its path relative to it (as Claude transcripts are)."""
    def add(archive: AgentArchive) -> None:
        for p in paths:
            if p.is_file():
                archive.add(root, p.relative_to(root).as_posix(), p.read_bytes())
    return add


def archive_rows(root: Path, rel: str, records: Callable[[], list[dict[str, Any]]]) -> Callable[[AgentArchive], None]:
    """Archive one session read from a database as a JSON-lines export (one record per row) at
    ``rel`` under ``root``. Why not the database: it holds every other session and the agent's
    own settings, changes on every use, and a JSON-lines file is redacted line by line at rest
    like a transcript (a row that grew is one more version, a new row an appended line)."""
    def add(archive: AgentArchive) -> None:
        data = b"".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")
                        + b"\n" for r in records())
        archive.add(root, rel, data)
    return add


# ---------------------------------------------------------------------- databases


@contextmanager
def db_snapshot(db: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a private copy of a live SQLite database, taken with its
    ``-wal`` and ``-journal`` the way the browser collector copies Chrome's History
    (``browser.snapshot``, retried when the files changed while copied).

    Why a copy: the agent may be writing while the collector reads. The copy holds every
    committed transaction (SQLite replays the copied ``-wal`` and rolls back a copied hot
    ``-journal``) and never half of one, the agent is never blocked, and a lock the agent holds
    cannot stop the run. Text comes back as bytes (``decode`` names invalid UTF-8): SQLite would
    otherwise fail the whole query on one bad row."""
    with tempfile.TemporaryDirectory(prefix="brain-agent-") as tmp:
        os.chmod(tmp, 0o700)
        conn = sqlite3.connect(snapshot(db, Path(tmp)), timeout=5)
        conn.text_factory = bytes
        try:
            conn.execute("PRAGMA query_only = 1")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            yield conn
        finally:
            conn.close()


def tables(conn: sqlite3.Connection) -> set[str]:
    return {as_text(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def as_text(value: Any) -> str:
    """A column read as bytes (``db_snapshot``) as text; not for user text (use ``decode``)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def row_json(raw: Any, where: str, bad: Bad) -> dict[str, Any] | None:
    """A JSON-object column (bytes, a string or NULL) parsed; None (and named) if it is not one."""
    if raw is None:
        bad.dropped.append((where, "no value"))
        bad.skipped += 1
        return None
    value = load_json(decode(raw, where, bad) if isinstance(raw, bytes) else str(raw), where, bad)
    if value is None:
        return None
    if not isinstance(value, dict):
        bad.dropped.append((where, "not a JSON object"))
        bad.skipped += 1
        return None
    return value


# ---------------------------------------------------------------------- all agents
