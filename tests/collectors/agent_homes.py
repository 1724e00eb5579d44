"""Other coding agents' session files, laid out and shaped as each agent writes them (the
upstream source files are named in each collector module's docstring).

* Codex CLI: ``~/.codex/sessions/YYYY/MM/DD/rollout-<ts>-<uuid>.jsonl``, compact JSON lines
  ``{timestamp, type, payload}`` (serde_json output).
* Gemini CLI: ``~/.gemini/tmp/<slug>/chats/session-<minute>-<sid8>.jsonl`` plus
  ``~/.gemini/projects.json``; JSON lines as ``JSON.stringify`` writes them.
* Aider: ``<repo>/.aider.chat.history.md`` as ``aider/io.py`` appends to it.
* opencode: ``~/.local/share/opencode/opencode.db`` (its tables and JSON columns), and the JSON
  files under ``storage/`` it wrote before v1.2.
* Cursor: ``~/.config/Cursor/User/{globalStorage,workspaceStorage/<id>}/state.vscdb`` (``ItemTable``,
  ``cursorDiskKV``) as its open readers document them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

CODEX_SID = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
CODEX_FORK = "0199a1b2-ffff-7e5f-8a9b-0c1d2e3f4a5b"
CODEX_CWD = "/home/dev/payments"


def write_lines(path: Path, records: list[Any], tail: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" for r in records)
    path.write_bytes(data + tail)
    return path


def cx(ts: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"timestamp": ts, "type": kind, "payload": payload}


def cx_msg(ts: str, role: str, text: str) -> dict[str, Any]:
    part = "input_text" if role in ("user", "developer") else "output_text"
    return cx(ts, "response_item", {"type": "message", "role": role, "content": [{"type": part, "text": text}]})


def codex_session(sid: str = CODEX_SID, forked_from: str | None = None) -> list[dict[str, Any]]:
    """A session with harness messages, both user channels, three kinds of tool call, a
    reasoning summary, a compaction, a second turn in another folder (a resume)."""
    meta = {"id": sid, "timestamp": "2026-05-02T08:00:00.000Z", "cwd": CODEX_CWD, "originator": "codex_cli_rs",
            "cli_version": "0.61.0", "instructions": None, "source": "cli", "model_provider": "openai",
            "git": {"commit_hash": "a1b2c3", "branch": "fix/refunds", "repository_url": "git@example.org:dev/pay.git"}}
    if forked_from:
        meta["forked_from_id"] = forked_from
    return [
        cx("2026-05-02T08:00:00.100Z", "session_meta", meta),
        cx_msg("2026-05-02T08:00:00.200Z", "developer", "<permissions instructions>sandbox: workspace-write"),
        cx_msg("2026-05-02T08:00:00.300Z", "user", "# AGENTS.md instructions for /home/dev/payments\n\nUse pytest."),
        cx_msg("2026-05-02T08:00:00.400Z", "user", "<environment_context>\n  <cwd>/home/dev/payments</cwd>\n"
               "</environment_context>"),
        cx("2026-05-02T08:00:01.000Z", "turn_context", {"cwd": CODEX_CWD, "approval_policy": "on-request",
                                                        "model": "gpt-5-codex", "summary": "auto"}),
        cx_msg("2026-05-02T08:00:01.100Z", "user", "refunds over 100 EUR fail, find out why"),
        cx("2026-05-02T08:00:01.110Z", "event_msg", {"type": "user_message",
                                                     "message": "refunds over 100 EUR fail, find out why",
                                                     "images": None}),
        cx("2026-05-02T08:00:02.000Z", "response_item", {"type": "reasoning", "summary": [
            {"type": "summary_text", "text": "**Looking at the refund path**"}], "encrypted_content": "gAAAA"}),
        cx("2026-05-02T08:00:03.000Z", "response_item", {
            "type": "function_call", "name": "shell", "call_id": "call_1",
            "arguments": json.dumps({"command": ["bash", "-lc", "rg -n 'MAX_REFUND' src"], "workdir": CODEX_CWD})}),
        cx("2026-05-02T08:00:04.000Z", "response_item", {
            "type": "function_call_output", "call_id": "call_1",
            "output": json.dumps({"output": "src/refund.py:12:MAX_REFUND = 100\n",
                                  "metadata": {"exit_code": 0, "duration_seconds": 0.1}})}),
        cx("2026-05-02T08:00:05.000Z", "response_item", {
            "type": "custom_tool_call", "name": "apply_patch", "call_id": "call_2", "status": "completed",
            "input": "*** Begin Patch\n*** Update File: src/refund.py\n-MAX_REFUND = 100\n+MAX_REFUND = 10_000\n"
                     "*** End Patch"}),
        cx("2026-05-02T08:00:05.500Z", "response_item", {"type": "custom_tool_call_output", "call_id": "call_2",
                                                         "output": "Success. Updated src/refund.py"}),
        cx("2026-05-02T08:00:06.000Z", "event_msg", {"type": "token_count", "info": None}),
        cx_msg("2026-05-02T08:00:07.000Z", "assistant", "The cap was 100; I raised it to 10 000."),
        cx("2026-05-02T08:00:07.010Z", "event_msg", {"type": "agent_message",
                                                     "message": "The cap was 100; I raised it to 10 000."}),
        cx("2026-05-02T08:10:00.000Z", "compacted", {
            "message": "Summary: the refund cap in src/refund.py was raised from 100 to 10 000.",
            "replacement_history": [{"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "refunds over 100 EUR fail, find out why"}]}]}),
        cx("2026-05-02T08:10:00.100Z", "world_state", {"agents_md": "Use pytest."}),
        # resumed later, from a sub-folder: appended to the same file
        cx("2026-05-03T09:00:00.000Z", "turn_context", {"cwd": CODEX_CWD + "/api", "model": "gpt-5.1-codex"}),
        cx_msg("2026-05-03T09:00:00.100Z", "user", "now add a test"),
        cx("2026-05-03T09:00:00.110Z", "event_msg", {"type": "user_message", "message": "now add a test"}),
        cx("2026-05-03T09:00:01.000Z", "response_item", {"type": "local_shell_call", "call_id": "call_3",
                                                         "status": "completed", "action": {
                                                             "type": "exec", "command": ["pytest", "-q"]}}),
        cx("2026-05-03T09:00:02.000Z", "response_item", {"type": "function_call_output", "call_id": "call_3",
                                                         "output": {"content": "1 failed", "success": False}}),
        cx("2026-05-03T09:00:03.000Z", "response_item", {"type": "web_search_call", "status": "completed",
                                                         "action": {"type": "search", "query": "pytest approx"}}),
        cx_msg("2026-05-03T09:00:04.000Z", "assistant", "Added tests/test_refund.py."),
    ]


def codex_path(home: Path, sid: str = CODEX_SID, day: str = "2026/05/02") -> Path:
    return home / ".codex" / "sessions" / day / f"rollout-2026-05-02T08-00-00-{sid}.jsonl"


def write_codex(home: Path) -> Path:
    return write_lines(codex_path(home), codex_session())


# ---------------------------------------------------------------------- Gemini CLI

GEMINI_SID = "5f0c1d2e-3a4b-4c5d-9e6f-7a8b9c0d1e2f"
GEMINI_ROOT = "/home/dev/site"


def gm(mid: str, ts: str, kind: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {"id": mid, "timestamp": ts, "type": kind, "content": content, **extra}


def gemini_session(sid: str = GEMINI_SID) -> list[dict[str, Any]]:
    """Metadata, messages, a message written again with its tool calls done, a rewind that
    drops two messages, ``$set`` patches (a summary)."""
    call = {"id": "read_file-1", "name": "read_file", "args": {"absolute_path": "/home/dev/site/index.html"},
            "status": "success", "timestamp": "2026-05-04T10:00:03.000Z",
            "result": [{"functionResponse": {"id": "read_file-1", "name": "read_file",
                                             "response": {"output": "<html><title>Old</title></html>"}}}]}
    failed = {"id": "run_shell_command-2", "name": "run_shell_command", "args": {"command": "npm test"},
              "status": "error", "timestamp": "2026-05-04T10:00:05.000Z",
              "result": [{"functionResponse": {"id": "run_shell_command-2", "name": "run_shell_command",
                                               "response": {"error": "npm: command not found"}}}]}
    return [
        {"sessionId": sid, "projectHash": "site", "startTime": "2026-05-04T10:00:00.000Z",
         "lastUpdated": "2026-05-04T10:00:00.000Z", "kind": "main"},
        gm("m1", "2026-05-04T10:00:01.000Z", "user", [{"text": "rename the page title to Shop"}]),
        gm("m2", "2026-05-04T10:00:02.000Z", "gemini", "", model="gemini-2.5-pro", toolCalls=[]),
        gm("m2", "2026-05-04T10:00:04.000Z", "gemini", "Reading the page first.", model="gemini-2.5-pro",
           toolCalls=[call], thoughts=[{"subject": "Plan", "description": "read then edit",
                                        "timestamp": "2026-05-04T10:00:02.500Z"}],
           tokens={"input": 10, "output": 5, "cached": 0, "total": 15}),
        gm("m3", "2026-05-04T10:00:06.000Z", "user", "actually also run the tests"),
        gm("m4", "2026-05-04T10:00:07.000Z", "gemini", "Running them.", model="gemini-2.5-pro", toolCalls=[failed]),
        {"$rewindTo": "m3"},
        gm("m5", "2026-05-04T10:01:00.000Z", "user", "<session_context>cwd: /home/dev/site</session_context>"),
        gm("m6", "2026-05-04T10:01:01.000Z", "user", "just the title, thanks"),
        gm("m7", "2026-05-04T10:01:02.000Z", "gemini", [{"text": "Done: the title is now Shop."}],
           model="gemini-2.5-flash"),
        gm("m8", "2026-05-04T10:01:03.000Z", "info", "Request cancelled."),
        gm("m9", "2026-05-04T10:01:04.000Z", "error", "Quota exceeded for gemini-2.5-pro"),
        {"$set": {"lastUpdated": "2026-05-04T10:01:04.000Z", "summary": "Rename the page title"}},
    ]


def write_gemini(home: Path) -> Path:
    gem = home / ".gemini"
    gem.mkdir(parents=True, exist_ok=True)
    (gem / "projects.json").write_text(json.dumps({"projects": {GEMINI_ROOT: "site"}}, indent=2))
    return write_lines(gem / "tmp" / "site" / "chats" / f"session-2026-05-04T10-00-{GEMINI_SID[:8]}.jsonl",
                       gemini_session())


# ---------------------------------------------------------------------- Aider

# Aider ends each written line with two spaces (a Markdown line break); "|" marks them here.
AIDER_HISTORY = """
# aider chat started at 2026-05-05 14:03:11

> /home/dev/.local/bin/aider --model sonnet|
> Aider v0.86.1|
> Git repo: .git with 42 files|

#### add a --verbose flag to cli.py|
#### and document it in the README|

I'll add the flag and a README line.

cli.py
```python
parser.add_argument("--verbose", action="store_true")
```

> Tokens: 2.1k sent, 120 received. Cost: $0.01 message, $0.01 session.|
> Applied edit to cli.py|
> Commit 3f2a1b0 feat: add --verbose flag|

#### /run pytest -q|

> Add command output to the chat? (Y)es/(N)o [Yes]: y|

# aider chat started at 2026-05-06 09:15:00

#### why does the test for --verbose fail?|

Because `main()` never reads the flag.
""".replace("|\n", "  \n")


# ---------------------------------------------------------------------- opencode

OC_SID = "ses_5f2a9c1e7ffeKq3Zr8LmNpQwXy"
OC_CHILD = "ses_5f2a9c2b0001Tt6Uv7Ww8Xx9Yy"
OC_OLD = "ses_4e1b8d0c3aaaOldJsonSession1"
OC_DIR = "/home/dev/shop"
OC_PROJECT = "8d3c7f2e1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d"
MS = 1_778_000_000_000  # 2026-05-05T16:53:20Z in Unix ms, opencode's unit

# The tables as opencode's migrations create them (packages/opencode/migration, session.sql.ts).
OPENCODE_SCHEMA = """
CREATE TABLE `project` (`id` text PRIMARY KEY, `worktree` text NOT NULL, `vcs` text, `name` text,
  `time_created` integer NOT NULL, `time_updated` integer NOT NULL, `time_initialized` integer,
  `sandboxes` text NOT NULL);
CREATE TABLE `session` (`id` text PRIMARY KEY, `project_id` text NOT NULL, `parent_id` text, `slug` text NOT NULL,
  `directory` text NOT NULL, `title` text NOT NULL, `version` text NOT NULL, `share_url` text,
  `summary_additions` integer, `summary_deletions` integer, `summary_files` integer, `summary_diffs` text,
  `revert` text, `permission` text, `time_created` integer NOT NULL, `time_updated` integer NOT NULL,
  `time_compacting` integer, `time_archived` integer,
  CONSTRAINT `fk_session_project_id_project_id_fk` FOREIGN KEY (`project_id`) REFERENCES `project`(`id`) ON DELETE CASCADE);
CREATE TABLE `message` (`id` text PRIMARY KEY, `session_id` text NOT NULL, `time_created` integer NOT NULL,
  `time_updated` integer NOT NULL, `data` text NOT NULL,
  CONSTRAINT `fk_message_session_id_session_id_fk` FOREIGN KEY (`session_id`) REFERENCES `session`(`id`) ON DELETE CASCADE);
CREATE TABLE `part` (`id` text PRIMARY KEY, `message_id` text NOT NULL, `session_id` text NOT NULL,
  `time_created` integer NOT NULL, `time_updated` integer NOT NULL, `data` text NOT NULL,
  CONSTRAINT `fk_part_message_id_message_id_fk` FOREIGN KEY (`message_id`) REFERENCES `message`(`id`) ON DELETE CASCADE);
CREATE INDEX `message_session_idx` ON `message` (`session_id`);
CREATE INDEX `part_message_idx` ON `part` (`message_id`);
CREATE INDEX `part_session_idx` ON `part` (`session_id`);
CREATE INDEX `session_project_idx` ON `session` (`project_id`);
"""


def oc_user(mid: str, sid: str, t: int) -> dict[str, Any]:
    return {"id": mid, "sessionID": sid, "role": "user", "time": {"created": t}, "agent": "build",
            "model": {"providerID": "anthropic", "modelID": "claude-sonnet-4-5"}}


def oc_assistant(mid: str, sid: str, t: int, parent: str, model: str = "claude-sonnet-4-5", **extra: Any) -> dict[str, Any]:
    return {"id": mid, "sessionID": sid, "role": "assistant", "time": {"created": t, "completed": t + 900},
            "parentID": parent, "modelID": model, "providerID": "anthropic", "mode": "build", "agent": "build",
            "path": {"cwd": OC_DIR, "root": OC_DIR}, "cost": 0.01,
            "tokens": {"input": 10, "output": 5, "reasoning": 0, "cache": {"read": 0, "write": 0}}, **extra}


def oc_part(pid: str, mid: str, sid: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": pid, "sessionID": sid, "messageID": mid, "type": kind, **fields}


def oc_tool(pid: str, mid: str, sid: str, tool: str, inp: dict[str, Any], status: str, t: int,
            output: str = "", error: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {"status": status, "input": inp, "time": {"start": t, "end": t + 100}}
    if status == "completed":
        state.update(output=output, title=tool, metadata={})
    elif status == "error":
        state.update(error=error)
    return oc_part(pid, mid, sid, "tool", callID=f"toolu_{pid}", tool=tool, state=state)


def opencode_messages(sid: str = OC_SID) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """A session with an @-mentioned file (opencode's synthetic text), reasoning, a finished and
    a failed tool call, a compaction with its summary, a sub-agent task and an aborted turn."""
    t = MS
    return [
        (oc_user("msg_01", sid, t), [
            oc_part("prt_01a", "msg_01", sid, "text", text="the cart total ignores discounts, see @src/cart.py"),
            oc_part("prt_01b", "msg_01", sid, "text", synthetic=True,
                    text='Called the Read tool with the following input: {"filePath":"/home/dev/shop/src/cart.py"}'),
            oc_part("prt_01c", "msg_01", sid, "file", mime="text/plain", filename="cart.py",
                    url="file:///home/dev/shop/src/cart.py")]),
        (oc_assistant("msg_02", sid, t + 1000, "msg_01"), [
            oc_part("prt_02a", "msg_02", sid, "step-start", snapshot="4b825dc6"),
            oc_part("prt_02b", "msg_02", sid, "reasoning", text="total() never calls apply_discount",
                    time={"start": t + 1000, "end": t + 1100}),
            oc_part("prt_02c", "msg_02", sid, "text", text="Reading the cart module first."),
            oc_tool("prt_02d", "msg_02", sid, "read", {"filePath": "/home/dev/shop/src/cart.py"}, "completed", t + 1200,
                    output="def total(items):\n    return sum(i.price for i in items)"),
            oc_tool("prt_02e", "msg_02", sid, "bash", {"command": "pytest -q tests/test_cart.py",
                                                       "description": "Run the cart tests"}, "error", t + 1400,
                    error="1 failed, 3 passed"),
            oc_part("prt_02f", "msg_02", sid, "step-finish", reason="tool-calls", cost=0.01,
                    tokens={"input": 10, "output": 5, "reasoning": 0, "cache": {"read": 0, "write": 0}})]),
        (oc_user("msg_03", sid, t + 60_000), [oc_part("prt_03a", "msg_03", sid, "compaction", auto=True)]),
        (oc_assistant("msg_04", sid, t + 61_000, "msg_03", summary=True), [
            oc_part("prt_04a", "msg_04", sid, "text", text="Summary: cart.total ignored discounts; tests fail.")]),
        (oc_user("msg_05", sid, t + 120_000), [
            oc_part("prt_05a", "msg_05", sid, "text", text="fix it and add a test"),
            oc_part("prt_05b", "msg_05", sid, "text", text="(ignored draft)", ignored=True)]),
        (oc_assistant("msg_06", sid, t + 121_000, "msg_05", model="claude-opus-4-1"), [
            oc_tool("prt_06a", "msg_06", sid, "task", {"description": "Write the discount test",
                                                       "prompt": "write tests/test_cart.py", "subagent_type": "general"},
                    "completed", t + 121_100, output="Wrote tests/test_cart.py"),
            oc_tool("prt_06b", "msg_06", sid, "edit", {"filePath": "/home/dev/shop/src/cart.py",
                                                       "oldString": "sum(", "newString": "apply_discount(sum("},
                    "running", t + 121_500),
            oc_part("prt_06c", "msg_06", sid, "text", text="Fixed total() and added a test.")]),
        (oc_assistant("msg_07", sid, t + 180_000, "msg_05",
                      error={"name": "MessageAbortedError", "data": {"message": "The operation was aborted."}}), []),
    ]


def child_messages() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    t = MS + 121_050
    return [(oc_user("msg_c1", OC_CHILD, t), [oc_part("prt_c1", "msg_c1", OC_CHILD, "text", text="write tests/test_cart.py")]),
            (oc_assistant("msg_c2", OC_CHILD, t + 10, "msg_c1"), [
                oc_part("prt_c2", "msg_c2", OC_CHILD, "text", text="Wrote tests/test_cart.py")])]


def oc_row(obj: dict[str, Any], *ids: str) -> str:
    """A message or part as opencode stores it in ``data``: the object without its ids."""
    return json.dumps({k: v for k, v in obj.items() if k not in ids}, separators=(",", ":"))


def insert_messages(conn: Any, sid: str, messages: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
    for info, parts in messages:
        t = info["time"]["created"]
        conn.execute("INSERT INTO message VALUES (?, ?, ?, ?, ?)", (info["id"], sid, t, t, oc_row(info, "id", "sessionID")))
        for p in parts:
            conn.execute("INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)",
                         (p["id"], p["messageID"], sid, t, t, oc_row(p, "id", "sessionID", "messageID")))


def write_opencode_db(home: Path) -> Path:
    """``~/.local/share/opencode/opencode.db`` (WAL, as opencode opens it) with a session and its
    sub-agent's session."""
    data = home / ".local" / "share" / "opencode"
    data.mkdir(parents=True, exist_ok=True)
    db = data / "opencode.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(OPENCODE_SCHEMA)
    conn.execute("INSERT INTO project VALUES (?, ?, 'git', NULL, ?, ?, NULL, '[]')", (OC_PROJECT, OC_DIR, MS, MS))
    conn.execute("INSERT INTO session (id, project_id, parent_id, slug, directory, title, version, time_created, "
                 "time_updated) VALUES (?, ?, NULL, 'brave-cart', ?, 'Fix the cart total', '1.2.6', ?, ?)",
                 (OC_SID, OC_PROJECT, OC_DIR, MS - 500, MS + 180_900))
    conn.execute("INSERT INTO session (id, project_id, parent_id, slug, directory, title, version, time_created, "
                 "time_updated) VALUES (?, ?, ?, 'quiet-test', ?, 'Child session - 2026-05-05T16:55:21.050Z', '1.2.6', ?, ?)",
                 (OC_CHILD, OC_PROJECT, OC_SID, OC_DIR, MS + 121_050, MS + 121_060))
    insert_messages(conn, OC_SID, opencode_messages())
    insert_messages(conn, OC_CHILD, child_messages())
    conn.commit()
    conn.close()
    return db


def write_opencode_json(home: Path, sid: str = OC_OLD) -> Path:
    """The JSON files opencode wrote before v1.2: ``storage/session/<projectID>/<sessionID>.json``,
    ``message/<sessionID>/<messageID>.json``, ``part/<messageID>/<partID>.json``, ``project/<projectID>.json``.
    The session has no ``directory`` (the project's worktree is its folder)."""
    storage = home / ".local" / "share" / "opencode" / "storage"
    (storage / "project").mkdir(parents=True, exist_ok=True)
    (storage / "project" / f"{OC_PROJECT}.json").write_text(json.dumps(
        {"id": OC_PROJECT, "worktree": "/home/dev/legacy", "vcs": "git", "time": {"created": MS - 10**8}}, indent=2))
    session = storage / "session" / OC_PROJECT / f"{sid}.json"
    session.parent.mkdir(parents=True, exist_ok=True)
    session.write_text(json.dumps({"id": sid, "projectID": OC_PROJECT, "title": "New session - 2025-11-02T08:00:00.000Z",
                                   "version": "0.15.2", "time": {"created": MS - 10**8, "updated": MS - 10**8 + 5000}},
                                  indent=2))
    t = MS - 10**8
    messages = [(oc_user("msg_o1", sid, t + 1000), [oc_part("prt_o1", "msg_o1", sid, "text", text="rename the legacy module")]),
                (oc_assistant("msg_o2", sid, t + 2000, "msg_o1"), [
                    oc_tool("prt_o2a", "msg_o2", sid, "glob", {"pattern": "**/legacy*.py"}, "completed", t + 2100,
                            output="src/legacy_io.py"),
                    oc_part("prt_o2b", "msg_o2", sid, "text", text="Renamed src/legacy_io.py to src/io_compat.py.")])]
    for info, parts in messages:
        mfile = storage / "message" / sid / f"{info['id']}.json"
        mfile.parent.mkdir(parents=True, exist_ok=True)
        mfile.write_text(json.dumps(info, indent=2))
        for p in parts:
            pfile = storage / "part" / info["id"] / f"{p['id']}.json"
            pfile.parent.mkdir(parents=True, exist_ok=True)
            pfile.write_text(json.dumps(p, indent=2))
    return storage


# ---------------------------------------------------------------------- Cursor

CURSOR_CID = "3f0c9a2e-1b7d-4c55-9e21-6a8b0d4f7c10"
CURSOR_NOHINT = "8e2d4b6a-0c1f-4a3b-8d9e-7f6a5b4c3d21"
CURSOR_INLINE = "b1a2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
CURSOR_TAB = "c9d8e7f6-a5b4-4c3d-2e1f-0a9b8c7d6e5f"
CURSOR_DIR = "/home/dev/webapp"
CURSOR_WS_DIR = "/home/dev/api server"
# VS Code's storage tables, as Cursor's state.vscdb has them
VSCDB_SCHEMA = """
CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
CREATE TABLE cursorDiskKV (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
"""


def cursor_user(home: Path) -> Path:
    return home / ".config" / "Cursor" / "User"


def bubble(bid: str, kind: int, text: str, at: str, **extra: Any) -> dict[str, Any]:
    return {"_v": 3, "type": kind, "bubbleId": bid, "text": text, "richText": "", "createdAt": at, "codeBlocks": [],
            "toolResults": [], "capabilities": [], "images": [], "tokenCount": {"inputTokens": 0, "outputTokens": 0},
            **extra}


def lexical(text: str) -> str:
    """A message's ``richText`` as Cursor's editor (Lexical) serialises it: a paragraph per line."""
    node = {"detail": 0, "format": 0, "mode": "normal", "style": "", "type": "text", "version": 1}
    paragraphs = [{"children": [{**node, "text": line}] if line else [], "direction": "ltr", "format": "", "indent": 0,
                   "type": "paragraph", "version": 1} for line in text.split("\n")]
    return json.dumps({"root": {"children": paragraphs, "direction": "ltr", "format": "", "indent": 0, "type": "root",
                                "version": 1}}, separators=(",", ":"))


def tool_bubble(bid: str, at: str, name: str, args: dict[str, Any], result: dict[str, Any] | None,
                status: str = "completed", **extra: Any) -> dict[str, Any]:
    tfd: dict[str, Any] = {"tool": 15 if name == "run_terminal_cmd" else 40, "toolCallId": f"toolu_{bid}",
                           "toolIndex": 0, "modelCallId": "mc1", "status": status, "name": name,
                           "rawArgs": json.dumps(args), "params": json.dumps(args), "additionalData": {}, **extra}
    if result is not None:
        tfd["result"] = json.dumps(result)
    return bubble(bid, 2, "", at, capabilityType=15, toolFormerData=tfd)


def cursor_chat() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A current agent chat: headers in composerData, each message its own row; thinking, a
    terminal command that failed, a file read, a header whose message Cursor pruned."""
    ws = {"workspaceUris": [f"file://{CURSOR_DIR}"], "workspaceProjectDir": CURSOR_DIR}
    bubbles = [
        bubble("u1", 1, "the login test is flaky, find out why", "2026-05-06T09:00:00.000Z",
               modelInfo={"modelName": "claude-4.5-sonnet-thinking"}, **ws),
        bubble("a1", 2, "Let me run it a few times.", "2026-05-06T09:00:02.000Z",
               thinking={"text": "probably a race on the session cookie"},
               modelInfo={"modelName": "claude-4.5-sonnet-thinking"}),
        tool_bubble("a2", "2026-05-06T09:00:03.000Z", "run_terminal_cmd",
                    {"command": "npm test -- login.spec.ts", "is_background": False},
                    {"output": "1 failing: expected 200, got 401", "exitCodeV2": 1, "rejected": False},
                    status="error"),
        tool_bubble("a3", "2026-05-06T09:00:04.000Z", "read_file", {"target_file": "src/auth/session.ts", "limit": 100},
                    {"contents": "export const COOKIE = 'sid'", "totalLinesInFile": 1}),
        bubble("a4", 2, "The cookie is set after the redirect; I moved it before.", "2026-05-06T09:00:05.000Z"),
        bubble("u2", 1, "great, commit it", "2026-05-06T09:05:00.000Z", **ws),
        tool_bubble("a5", "2026-05-06T09:05:01.000Z", "run_terminal_cmd", {"command": "git commit -am 'fix login'"},
                    None, status="cancelled", userDecision="rejected"),
    ]
    headers = [{"bubbleId": b["bubbleId"], "type": b["type"]} for b in bubbles]
    headers.insert(5, {"bubbleId": "pruned-1", "type": 2})
    composer = {"_v": 10, "composerId": CURSOR_CID, "name": "Flaky login test", "text": "", "richText": "",
                "createdAt": 1778058000000, "lastUpdatedAt": 1778058301000, "status": "completed",
                "unifiedMode": "agent", "modelConfig": {"modelName": "claude-4.5-sonnet-thinking", "maxMode": False},
                "fullConversationHeadersOnly": headers, "conversationMap": {}}
    return composer, bubbles


def write_cursor(home: Path) -> Path:
    """Cursor's global state.vscdb (a current chat, one whose folder only a workspace knows, and
    an older one with its messages inline) and two workspaces, one with the oldest chat panel."""
    user = cursor_user(home)
    (user / "globalStorage").mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(user / "globalStorage" / "state.vscdb")
    conn.executescript(VSCDB_SCHEMA)
    composer, bubbles = cursor_chat()
    put = "INSERT INTO cursorDiskKV VALUES (?, ?)"
    conn.execute(put, (f"composerData:{CURSOR_CID}", json.dumps(composer)))
    for b in bubbles:
        conn.execute(put, (f"bubbleId:{CURSOR_CID}:{b['bubbleId']}", json.dumps(b)))
    nohint = {"_v": 10, "composerId": CURSOR_NOHINT, "name": "Rate limiter", "createdAt": 1778140000000,
              "lastUpdatedAt": 1778140060000, "fullConversationHeadersOnly": [{"bubbleId": "n1", "type": 1},
                                                                              {"bubbleId": "n2", "type": 2}]}
    conn.execute(put, (f"composerData:{CURSOR_NOHINT}", json.dumps(nohint)))
    conn.execute(put, (f"bubbleId:{CURSOR_NOHINT}:n1", json.dumps(bubble("n1", 1, "add a rate limiter", "2026-05-07T08:00:00Z"))))
    conn.execute(put, (f"bubbleId:{CURSOR_NOHINT}:n2", json.dumps(bubble("n2", 2, "Added a token bucket.", "2026-05-07T08:01:00Z"))))
    inline = {"composerId": CURSOR_INLINE, "name": "Old composer chat", "createdAt": 1735725600000,
              "lastUpdatedAt": 1735725700000,
              "conversation": [{"bubbleId": "i1", "type": 1, "text": "explain the build script"},
                               {"bubbleId": "i2", "type": 2, "text": "It bundles src/ with esbuild."}]}
    conn.execute(put, (f"composerData:{CURSOR_INLINE}", json.dumps(inline)))
    conn.commit()
    conn.close()
    write_workspace(user, "a1b2c3d4e5f60718293a4b5c6d7e8f90", CURSOR_WS_DIR,
                    {"composer.composerData": {"allComposers": [{"composerId": CURSOR_NOHINT, "type": "head"}],
                                               "selectedComposerIds": [CURSOR_NOHINT]}})
    write_workspace(user, "0f9e8d7c6b5a49382716a5b4c3d2e1f0", "/home/dev/oldsite", {
        "workbench.panel.aichat.view.aichat.chatdata": {"tabs": [{
            "tabId": CURSOR_TAB, "chatTitle": "CSS grid question\nmore", "lastSendTime": 1704103200000,
            "bubbles": [{"type": "user", "id": "x1", "text": "how do I center a grid item?", "selections": []},
                        {"type": "ai", "id": "x2", "rawText": "Use place-self: center.", "modelType": "gpt-4"}]}]}})
    return user


def write_workspace(user: Path, wid: str, folder: str, items: dict[str, Any]) -> Path:
    ws = user / "workspaceStorage" / wid
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "workspace.json").write_text(json.dumps({"folder": "file://" + quote(folder)}))
    conn = sqlite3.connect(ws / "state.vscdb")
    conn.executescript(VSCDB_SCHEMA)
    for key, value in items.items():
        conn.execute("INSERT INTO ItemTable VALUES (?, ?)", (key, json.dumps(value)))
    conn.commit()
    conn.close()
    return ws / "state.vscdb"
