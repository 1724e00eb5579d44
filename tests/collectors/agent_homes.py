"""Other coding agents' session files, laid out and shaped as each agent writes them (the
upstream source files are named in each collector module's docstring).

* Codex CLI: ``~/.codex/sessions/YYYY/MM/DD/rollout-<ts>-<uuid>.jsonl``, compact JSON lines
  ``{timestamp, type, payload}`` (serde_json output).
* Gemini CLI: ``~/.gemini/tmp/<slug>/chats/session-<minute>-<sid8>.jsonl`` plus
  ``~/.gemini/projects.json``; JSON lines as ``JSON.stringify`` writes them.
* Aider: ``<repo>/.aider.chat.history.md`` as ``aider/io.py`` appends to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
