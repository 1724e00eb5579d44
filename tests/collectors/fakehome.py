"""Builders for a fake home folder laid out exactly as on disk.

* Claude Code: ``~/.claude/projects/<encoded-cwd>/<sessionId>.jsonl`` with the real transcripts
  from ``tests/fixtures/claude-projects`` plus synthetic ones for the cases they lack (1.0.x
  summary lines and inline sidechains, 2.0.x ``agent-*.jsonl`` beside the session, 2.1.x
  ``subagents/`` with ``.meta.json`` and workflows, broken lines), using the line shapes of
  ``../shared/reference/claude-code-logs.md``.
* Chrome: ``~/.config/google-chrome/<Profile>/History`` created from Chromium's schema SQL
  (``history.70.sql``, as quoted in ``../shared/reference/browser-history.md``).
* Firefox: ``~/.mozilla/firefox/profiles.ini`` + ``<profile>/places.sqlite`` created from the
  ``nsPlacesTables.h`` schema, kept open in WAL mode with an exclusive lock like a running
  Firefox, its newest rows only in ``places.sqlite-wal``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REAL_CLAUDE = REPO / "tests" / "fixtures" / "claude-projects"
CHROME_EPOCH_OFFSET_US = 11_644_473_600_000_000

# Verbatim from Chromium's components/test/data/history/history.70.sql (see the reference doc).
CHROME_SCHEMA = """
CREATE TABLE meta(key LONGVARCHAR NOT NULL UNIQUE PRIMARY KEY, value LONGVARCHAR);
CREATE TABLE urls(id INTEGER PRIMARY KEY AUTOINCREMENT,url LONGVARCHAR,title LONGVARCHAR,visit_count INTEGER DEFAULT 0 NOT NULL,typed_count INTEGER DEFAULT 0 NOT NULL,last_visit_time INTEGER NOT NULL,hidden INTEGER DEFAULT 0 NOT NULL);
CREATE TABLE visits(id INTEGER PRIMARY KEY AUTOINCREMENT,url INTEGER NOT NULL,visit_time INTEGER NOT NULL,from_visit INTEGER,external_referrer_url TEXT,transition INTEGER DEFAULT 0 NOT NULL,segment_id INTEGER,visit_duration INTEGER DEFAULT 0 NOT NULL,incremented_omnibox_typed_score BOOLEAN DEFAULT FALSE NOT NULL,opener_visit INTEGER,originator_cache_guid TEXT,originator_visit_id INTEGER,originator_from_visit INTEGER,originator_opener_visit INTEGER,is_known_to_sync BOOLEAN DEFAULT FALSE NOT NULL,consider_for_ntp_most_visited BOOLEAN DEFAULT FALSE NOT NULL,visited_link_id INTEGER DEFAULT 0 NOT NULL,app_id TEXT);
CREATE TABLE visit_source(id INTEGER PRIMARY KEY,source INTEGER NOT NULL);
CREATE TABLE keyword_search_terms (keyword_id INTEGER NOT NULL,url_id INTEGER NOT NULL,term LONGVARCHAR NOT NULL,normalized_term LONGVARCHAR NOT NULL);
INSERT INTO meta VALUES('version','70');
INSERT INTO meta VALUES('last_compatible_version','16');
"""

# From mozilla/gecko-dev toolkit/components/places/nsPlacesTables.h (see the reference doc).
FIREFOX_SCHEMA = """
CREATE TABLE moz_origins ( id INTEGER PRIMARY KEY, prefix TEXT NOT NULL, host TEXT NOT NULL, frecency INTEGER NOT NULL, recalc_frecency INTEGER NOT NULL DEFAULT 0, alt_frecency INTEGER, recalc_alt_frecency INTEGER NOT NULL DEFAULT 0, UNIQUE (prefix, host) );
CREATE TABLE moz_places (   id INTEGER PRIMARY KEY, url LONGVARCHAR, title LONGVARCHAR, rev_host LONGVARCHAR, visit_count INTEGER DEFAULT 0, hidden INTEGER DEFAULT 0 NOT NULL, typed INTEGER DEFAULT 0 NOT NULL, frecency INTEGER DEFAULT -1 NOT NULL, last_visit_date INTEGER , guid TEXT, foreign_count INTEGER DEFAULT 0 NOT NULL, url_hash INTEGER DEFAULT 0 NOT NULL , description TEXT, preview_image_url TEXT, site_name TEXT, origin_id INTEGER REFERENCES moz_origins(id), recalc_frecency INTEGER NOT NULL DEFAULT 0, alt_frecency INTEGER, recalc_alt_frecency INTEGER NOT NULL DEFAULT 0);
CREATE TABLE moz_historyvisits (  id INTEGER PRIMARY KEY, from_visit INTEGER, place_id INTEGER, visit_date INTEGER, visit_type INTEGER, session INTEGER, source INTEGER DEFAULT 0 NOT NULL, triggeringPlaceId INTEGER);
CREATE TABLE moz_meta (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID ;
"""


def unix_us(iso: str) -> int:
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)
    return int((dt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000 + dt.microsecond


def chrome_us(iso: str) -> int:
    return unix_us(iso) + CHROME_EPOCH_OFFSET_US


# ---------------------------------------------------------------------- Claude Code


def copy_real_claude(projects: Path) -> None:
    """The three real transcripts, byte for byte, under ``projects/``."""
    shutil.copytree(REAL_CLAUDE, projects, dirs_exist_ok=True)


def jsonl(path: Path, entries: list[Any], raw_tail: bytes = b"") -> Path:
    """Write compact JSON lines (as Claude Code does); ``raw_tail`` appends bytes verbatim."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" for e in entries)
    path.write_bytes(data + raw_tail)
    return path


def envelope(kind: str, session: str, ts: str, cwd: str, uuid: str, **extra: Any) -> dict[str, Any]:
    e = {"parentUuid": None, "isSidechain": False, "userType": "external", "cwd": cwd, "sessionId": session,
         "version": extra.pop("version", "2.1.38"), "gitBranch": extra.pop("gitBranch", "main"), "type": kind,
         "uuid": uuid, "timestamp": ts}
    e.update(extra)
    if e["gitBranch"] is None:  # 1.0.x lines have no gitBranch at all
        del e["gitBranch"]
    return e


def user(session: str, ts: str, cwd: str, uuid: str, content: Any, **extra: Any) -> dict[str, Any]:
    return envelope("user", session, ts, cwd, uuid, message={"role": "user", "content": content}, **extra)


def assistant(session: str, ts: str, cwd: str, uuid: str, msg_id: str, blocks: list[dict[str, Any]],
              model: str = "claude-opus-4-6", **extra: Any) -> dict[str, Any]:
    return envelope("assistant", session, ts, cwd, uuid, requestId="req_" + msg_id[-6:], message={
        "model": model, "id": msg_id, "type": "message", "role": "assistant", "content": blocks,
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 5}}, **extra)


SYN_CWD = "/home/dev/my_app.v2"  # encodes to -home-dev-my-app-v2: decoding the folder name would be wrong
SYN_DIR = "-home-dev-my-app-v2"
MAIN_SID = "11111111-2222-4333-8444-555555555555"
LEGACY_SID = "22222222-3333-4444-8555-666666666666"
OLD_SID = "33333333-4444-4555-8666-777777777777"


def write_synthetic_claude(projects: Path) -> None:
    """Sessions for the cases the real transcripts lack."""
    d = projects / SYN_DIR
    s, c = MAIN_SID, SYN_CWD
    main = [
        {"type": "file-history-snapshot", "messageId": "m0", "snapshot": {"messageId": "m0", "trackedFileBackups": {},
                                                                           "timestamp": "2026-03-01T10:00:00.000Z"},
         "isSnapshotUpdate": False},
        user(s, "2026-03-01T10:00:00.000Z", c, "u1", "<local-command-caveat>Caveat: The messages below were "
             "generated by the user while running local commands.</local-command-caveat>", isMeta=True),
        user(s, "2026-03-01T10:00:01.000Z", c, "u2", "Fix the flaky upload test; my key is sk-proj-"
             "AbCdEf0123456789AbCdEf0123456789xyz", permissionMode="default"),
        assistant(s, "2026-03-01T10:00:02.000Z", c, "a1", "msg_A", [{"type": "thinking", "thinking":
                  "SECRET-THOUGHT: consider retries", "signature": "c2ln"}]),
        assistant(s, "2026-03-01T10:00:03.000Z", c, "a2", "msg_A", [{"type": "text", "text": "Looking at the test."}]),
        assistant(s, "2026-03-01T10:00:04.000Z", c, "a3", "msg_A", [{"type": "tool_use", "id": "toolu_1",
                  "name": "Bash", "input": {"command": "pytest -x tests/test_upload.py", "timeout": 60000},
                  "caller": {"type": "direct"}}]),
        {"type": "progress", "data": {"type": "bash_progress", "output": "..."}, "uuid": "p1", "sessionId": s,
         "timestamp": "2026-03-01T10:00:05.000Z"},
        user(s, "2026-03-01T10:00:06.000Z", c, "u3", [{"type": "tool_result", "tool_use_id": "toolu_1",
             "content": "E" * 5000, "is_error": True}], toolUseResult={"stdout": "", "stderr": "E"}),
        # the same message id again, with a block already seen (written twice) and a new tool call
        assistant(s, "2026-03-01T10:00:07.000Z", c, "a4", "msg_A", [{"type": "text", "text": "Looking at the test."}]),
        assistant(s, "2026-03-01T10:00:08.000Z", c, "a5", "msg_A", [{"type": "tool_use", "id": "toolu_2",
                  "name": "Task", "input": {"description": "search docs", "subagent_type": "general-purpose",
                                            "prompt": "find the retry docs"}}]),
        user(s, "2026-03-01T10:00:09.000Z", c, "u4", [{"type": "tool_result", "tool_use_id": "toolu_2", "content": [
             {"type": "text", "text": "Docs say: use backoff."}, {"type": "image", "source": {
                 "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]),
        envelope("system", s, "2026-03-01T10:00:10.000Z", c, "s1", subtype="compact_boundary",
                 content="Conversation compacted", compactMetadata={"trigger": "auto", "preTokens": 1000}),
        user(s, "2026-03-01T10:00:11.000Z", c, "u5", "This session is being continued from a previous conversation.",
             isCompactSummary=True, isVisibleInTranscriptOnly=True),
        {"type": "queue-operation", "operation": "enqueue", "timestamp": "2026-03-01T10:00:12.000Z",
         "sessionId": s, "content": "later"},
        envelope("system", s, "2026-03-01T10:00:13.000Z", c, "s2", subtype="local_command",
                 content="<local-command-stdout>Kept model as \u001b[1mDefault\u001b[22m</local-command-stdout>",
                 level="info"),
        {"type": "some-future-type", "sessionId": s},
        user(s, "2026-03-01T10:00:14.000Z", c, "u6", "thanks, all green now"),
        {"type": "ai-title", "aiTitle": "Fix flaky upload test", "sessionId": s},
    ]
    broken = (b'{"type":"user","message":{"role":"user","content":"half a line"\n'  # malformed (not last)
              b'[1,2,3]\n'  # not an object
              b'"just a string"\n'
              + json.dumps(user(s, "2026-03-01T10:00:15.000Z", c, "u7", "crlf line here"),
                           separators=(",", ":")).encode() + b"\r\n"
              + b'{"type":"assistant","message":{"id":"msg_Z","content":[{"type":"te')  # truncated tail
    jsonl(d / f"{s}.jsonl", main, raw_tail=broken)
    # 2.1.x subagent with a .meta.json sidecar, plus a workflow subagent and its journal (not a transcript)
    sub = d / s / "subagents"
    jsonl(sub / "agent-a1b2c3d.jsonl", [
        user(s, "2026-03-01T10:00:08.500Z", c, "x1", "find the retry docs", isSidechain=True, agentId="a1b2c3d"),
        assistant(s, "2026-03-01T10:00:08.700Z", c, "x2", "msg_S", [{"type": "text", "text": "Docs say: use backoff."}],
                  model="claude-haiku-4-5", isSidechain=True, agentId="a1b2c3d"),
    ])
    (sub / "agent-a1b2c3d.meta.json").write_text('{"agentType":"general-purpose","spawnDepth":1}')
    jsonl(sub / "workflows" / "wf_1" / "agent-w9.jsonl", [
        user(s, "2026-03-01T10:00:09.500Z", c, "w1", "workflow step one", isSidechain=True, agentId="w9")])
    jsonl(sub / "workflows" / "wf_1" / "journal.jsonl", [{"event": "started", "wf": "wf_1"}])

    # 2.0.x: legacy agent file beside the session, carrying the parent's sessionId
    ls = LEGACY_SID
    jsonl(d / f"{ls}.jsonl", [
        user(ls, "2026-02-01T09:00:00.000Z", c, "l1", "summarise the changelog", version="2.0.70"),
        assistant(ls, "2026-02-01T09:00:01.000Z", c, "l2", "msg_L", [{"type": "text", "text": "Delegating."}],
                  version="2.0.70"),
    ])
    jsonl(d / "agent-a123456.jsonl", [
        user(ls, "2026-02-01T09:00:02.000Z", c, "g1", "read CHANGELOG.md", isSidechain=True, agentId="a123456",
             version="2.0.70"),
        assistant(ls, "2026-02-01T09:00:03.000Z", c, "g2", "msg_G", [{"type": "text", "text": "It lists 3 fixes."}],
                  isSidechain=True, agentId="a123456", version="2.0.70"),
    ])

    # 1.0.x: summary line first, no gitBranch, inline sidechain, Windows cwd
    os_ = OLD_SID
    wcwd = "e:\\Workspace\\src\\tool"
    old = {"version": "1.0.35", "gitBranch": None}
    jsonl(projects / "e--Workspace-src-tool" / f"{os_}.jsonl", [
        {"type": "summary", "summary": "Rust parser port", "leafUuid": "o3"},
        user(os_, "2025-06-01T08:00:00.000Z", wcwd, "o1", "port the parser to rust", **old),
        assistant(os_, "2025-06-01T08:00:01.000Z", wcwd, "o2", "msg_O", [{"type": "text", "text": "Spawning a task."}],
                  costUSD=0.01, **old),
        user(os_, "2025-06-01T08:00:02.000Z", wcwd, "o3", "Warmup sidechain prompt", isSidechain=True, **old),
        assistant(os_, "2025-06-01T08:00:03.000Z", wcwd, "o4", "msg_P", [{"type": "text", "text": "sidechain answer"}],
                  isSidechain=True, **old),
    ])


# ---------------------------------------------------------------------- browsers


@dataclass
class UrlRow:
    url: str
    title: str | None
    visits: list[str]  # ISO times ("0" = zero time)
    hidden: int = 0
    typed: int = 0
    terms: tuple[str, ...] = ()


CHROME_ROWS = [
    UrlRow("https://docs.python.org/3/library/sqlite3.html", "sqlite3 — DB-API 2.0 interface",
           ["2026-01-10T09:00:00Z", "2026-01-12T10:30:00Z"], typed=1),
    UrlRow("https://www.google.com/search?q=sqlite+wal+mode", "sqlite wal mode - Google Search",
           ["2026-01-11T08:00:00Z"], terms=("sqlite wal mode",)),
    UrlRow("https://example.com/reset?token=EXAMPLE-reset-123456&lang=en", "Reset your password",
           ["2026-01-11T09:00:00Z"]),
    UrlRow("https://admin:hunter2EXAMPLE@intranet.example.org/dashboard", "Dashboard", ["2026-01-11T09:30:00Z"]),
    UrlRow("chrome://settings/", "Settings", ["2026-01-11T10:00:00Z"]),
    UrlRow("chrome-extension://abcdefghijklmnop/popup.html", "Extension", ["2026-01-11T10:01:00Z"]),
    UrlRow("file:///home/dev/notes.html", "notes", ["2026-01-11T10:02:00Z"]),
    UrlRow("http://localhost:3000/", "dev server", ["2026-01-11T10:03:00Z"]),
    UrlRow("https://mail.bank.example/inbox", "Bank mail", ["2026-01-11T10:04:00Z"]),
    UrlRow("https://redirect.example.com/hop", None, ["2026-01-11T10:05:00Z"], hidden=1),
    UrlRow("https://future.example.com/", "From the future", ["2099-01-01T00:00:00Z"]),
    UrlRow("https://zero.example.com/", "Zero time", ["0"]),
    UrlRow("https://xn--bcher-kva.example/", "Bücher ✓ — عربي 🎉", ["2026-01-11T10:06:00Z"]),
    UrlRow("https://empty-title.example.com/page", "", ["2026-01-11T10:07:00Z"]),
]


def write_chrome_history(path: Path, rows: list[UrlRow] = CHROME_ROWS) -> None:
    """A Chrome ``History`` (rollback journal, schema v70) with the given URLs and visits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(CHROME_SCHEMA)
    add_chrome_rows(conn, rows)
    # a visit whose url id points nowhere (seen in real files)
    conn.execute("INSERT INTO visits(url, visit_time, transition) VALUES (9999, ?, 0)",
                 (chrome_us("2026-01-11T11:00:00Z"),))
    conn.commit()
    conn.close()


def add_chrome_rows(conn: sqlite3.Connection, rows: list[UrlRow]) -> None:
    for r in rows:
        times = [0 if v == "0" else chrome_us(v) for v in r.visits]
        cur = conn.execute("INSERT INTO urls(url, title, visit_count, typed_count, last_visit_time, hidden) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (r.url, r.title, len(times), r.typed, max(times), r.hidden))
        for t in times:
            # CLIENT_REDIRECT|CHAIN_END|LINK stored as a negative signed 32-bit value, like Chromium does
            conn.execute("INSERT INTO visits(url, visit_time, transition) VALUES (?, ?, ?)",
                         (cur.lastrowid, t, -1610612736))
        for term in r.terms:
            conn.execute("INSERT INTO keyword_search_terms VALUES (2, ?, ?, ?)", (cur.lastrowid, term, term.lower()))


FIREFOX_ROWS = [
    UrlRow("https://developer.mozilla.org/en-US/docs/Web/API/Fetch_API", "Fetch API - MDN",
           ["2026-01-05T12:00:00Z", "2026-01-06T12:00:00Z"]),
    UrlRow("https://github.com/login/oauth/callback?code=EXAMPLEcode123&state=abc", "GitHub", ["2026-01-05T13:00:00Z"]),
    UrlRow("about:config", "about:config", ["2026-01-05T13:30:00Z"]),
    UrlRow("moz-extension://1234/options.html", "Options", ["2026-01-05T13:31:00Z"]),
    UrlRow("place:sort=8&maxResults=10", None, ["2026-01-05T13:32:00Z"]),
]
FIREFOX_WAL_ROWS = [
    UrlRow("https://news.ycombinator.com/item?id=1", "Show HN: the brain", ["2026-01-07T08:00:00Z"]),
    UrlRow("https://example.org/callback#access_token=EXAMPLEtok987&token_type=bearer", "Callback",
           ["2026-01-07T08:05:00Z"]),
]


def add_firefox_rows(conn: sqlite3.Connection, rows: list[UrlRow]) -> None:
    for r in rows:
        times = [0 if v == "0" else unix_us(v) for v in r.visits]
        cur = conn.execute("INSERT INTO moz_places(url, title, rev_host, visit_count, hidden, typed, frecency, "
                           "last_visit_date, guid) VALUES (?, ?, ?, ?, ?, ?, 100, ?, ?)",
                           (r.url, r.title, "", len(times), r.hidden, r.typed, max(times), r.url[-12:]))
        for t in times:
            conn.execute("INSERT INTO moz_historyvisits(place_id, visit_date, visit_type, session) "
                         "VALUES (?, ?, 1, 0)", (cur.lastrowid, t))


def add_bookmark_only_place(conn: sqlite3.Connection) -> None:
    """A place that was bookmarked but never visited: NULL ``last_visit_date``."""
    conn.execute("INSERT INTO moz_places(url, title, rev_host, foreign_count, frecency, guid) "
                 "VALUES ('https://bookmark.example/', 'only bookmarked', '', 1, 0, 'bkmk00000001')")


def write_profiles_ini(base: Path, profiles: dict[str, Path | str], default: str = "") -> None:
    """``profiles.ini`` with relative (``IsRelative=1``) and absolute profile paths."""
    lines = ["[General]", "StartWithLastProfile=1", "Version=2", ""]
    for n, (name, path) in enumerate(profiles.items()):
        relative = not Path(path).is_absolute()
        lines += [f"[Profile{n}]", f"Name={name}", f"IsRelative={1 if relative else 0}", f"Path={path}",
                  *(["Default=1"] if n == 0 else []), ""]
    if default:
        lines += ["[Install4F96D1932A9F858E]", f"Default={default}", "Locked=1", ""]
    base.mkdir(parents=True, exist_ok=True)
    (base / "profiles.ini").write_text("\n".join(lines))


class LiveFirefox:
    """A places.sqlite held open like a running Firefox: WAL mode, exclusive lock, newest rows
    only in ``places.sqlite-wal`` (never checkpointed while "Firefox" runs)."""

    def __init__(self, profile_dir: Path):
        profile_dir.mkdir(parents=True, exist_ok=True)
        self.path = profile_dir / "places.sqlite"
        setup = sqlite3.connect(self.path)
        setup.execute("PRAGMA journal_mode=WAL")
        setup.executescript(FIREFOX_SCHEMA)
        add_firefox_rows(setup, FIREFOX_ROWS)
        add_bookmark_only_place(setup)
        setup.commit()
        setup.close()  # last connection closed: everything so far is checkpointed into the main file
        self.conn = sqlite3.connect(self.path)
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self.conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        add_firefox_rows(self.conn, FIREFOX_WAL_ROWS)
        self.conn.commit()

    def add(self, rows: list[UrlRow]) -> None:
        add_firefox_rows(self.conn, rows)
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()
