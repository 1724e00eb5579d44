"""Claude Code's newer transcript records (issue 17, point 3), each in the shape Claude Code
writes it (``../shared/reference/agent-logs.md`` section 2 and ``claude-code-logs.md``):
compaction, ``subagents/`` with ``.meta.json``, persisted tool outputs, harness text, split
assistant messages, multi-megabyte lines and the bookkeeping records with titles."""

from __future__ import annotations

import json
import time
from pathlib import Path

from brain.collect import claude
from brain.collect.archive import Archive
from brain.collect.outbox import State

from .conftest import RecordingSink
from .fakehome import assistant, envelope, jsonl, user

SID = "77777777-8888-4999-8aaa-bbbbbbbbbbbb"
CWD = "/home/dev/svc"
DIR = "-home-dev-svc"
BIG_TAIL = "BIG-OUTPUT-TAIL-MARKER"
SECRET = "ghp_" + "Zq9Xw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0EdCbA9"


def persisted_preview(path: str, head: str) -> str:
    """The preview Claude Code leaves inline when it moves an output to ``tool-results/``."""
    return (f"<persisted-output>\nOutput too large (61.2KB). Full output saved to: {path}\n\n"
            f"Preview (first 2KB):\n{head}\n...\n</persisted-output>")


def write_session(projects: Path, big_line_mb: int = 0) -> Path:
    """One 2.1.x session with every record kind of point 3; returns its main file."""
    s, c, d = SID, CWD, projects / DIR
    big = "lint error on line 1\n" * 2900 + f"token {SECRET}\n" + "x" * 100 + BIG_TAIL  # > 50k chars
    (d / s / "tool-results").mkdir(parents=True)
    (d / s / "tool-results" / "toolu_big.txt").write_text(big)
    (d / s / "tool-results" / "b7k2q.txt").write_text("npm ls output, the whole of it\n" * 3000)
    # a result that was not a string (MCP content blocks) is written as JSON; invalid UTF-8 in it
    (d / s / "tool-results" / "toolu_mcp.json").write_bytes(json.dumps(
        [{"type": "text", "text": "MCP rows: " + "row " * 15000 + "MCP-END"}], indent=2).encode()
        .replace(b"MCP rows:", b"MCP rows \xff\xfe:"))
    saved = f"/home/dev/.claude/projects/{DIR}/{s}/tool-results/toolu_big.txt"
    entries = [
        {"type": "queue-operation", "operation": "enqueue", "timestamp": "2026-05-01T09:00:00.000Z",
         "sessionId": s, "content": "run the linter"},
        user(s, "2026-05-01T09:00:01.000Z", c, "u1", [
            {"type": "text", "text": "run the linter and fix what it finds"},
            {"type": "text", "text": "<system-reminder>\nThe user opened the file src/app.ts in the IDE.\n"
                                     "</system-reminder>"}]),
        user(s, "2026-05-01T09:00:01.500Z", c, "u1m", "<system-reminder>todo list is empty</system-reminder>",
             isMeta=True),
        user(s, "2026-05-01T09:00:01.600Z", c, "u1r", "<system-reminder>Plan mode is active.</system-reminder>"),
        {"type": "attachment", "uuid": "at1", "parentUuid": "u1", "sessionId": s, "timestamp": "2026-05-01T09:00:01.700Z",
         "attachment": {"type": "hook_additional_context", "content": ["brain: last session ..."]}},
        # one API message over three records (one content block each), the tool call repeated
        assistant(s, "2026-05-01T09:00:02.000Z", c, "a1", "msg_L", [{"type": "text", "text": "Running the linter."}]),
        assistant(s, "2026-05-01T09:00:02.100Z", c, "a2", "msg_L", [{"type": "tool_use", "id": "toolu_big",
                  "name": "Bash", "input": {"command": "npm run lint"}}]),
        assistant(s, "2026-05-01T09:00:02.200Z", c, "a3", "msg_L", [{"type": "tool_use", "id": "toolu_big",
                  "name": "Bash", "input": {"command": "npm run lint"}}]),
        {"type": "progress", "uuid": "p1", "sessionId": s, "timestamp": "2026-05-01T09:00:03.000Z",
         "data": {"type": "bash_progress", "output": "linting...", "fullOutput": "linting..."},
         "toolUseID": "toolu_big", "parentToolUseID": "toolu_big"},
        user(s, "2026-05-01T09:00:04.000Z", c, "u2", [{"type": "tool_result", "tool_use_id": "toolu_big",
             "content": persisted_preview(saved, "lint error on line 1")}],
             toolUseResult={"stdout": "", "stderr": "", "interrupted": False}),
        assistant(s, "2026-05-01T09:00:05.000Z", c, "a4", "msg_M", [{"type": "tool_use", "id": "toolu_npm",
                  "name": "Bash", "input": {"command": "npm ls"}}]),
        # the file named in the preview is not <tool_use_id>.txt (background shell output)
        user(s, "2026-05-01T09:00:05.500Z", c, "u2b", [{"type": "tool_result", "tool_use_id": "toolu_npm",
             "content": [{"type": "text", "text": persisted_preview(
                 f"C:\\Users\\Dev One\\.claude\\projects\\{DIR}\\{s}\\tool-results\\b7k2q.txt", "npm ls output")}]}]),
        assistant(s, "2026-05-01T09:00:05.800Z", c, "a4b", "msg_N", [{"type": "tool_use", "id": "toolu_gone",
                  "name": "Read", "input": {"file_path": "/home/dev/svc/huge.log"}}]),
        # a persisted output whose file Claude Code's cleanup already removed: the preview is kept
        user(s, "2026-05-01T09:00:05.900Z", c, "u2c", [{"type": "tool_result", "tool_use_id": "toolu_gone",
             "content": persisted_preview("/x/tool-results/toolu_gone.txt", "first lines of huge.log")
             + "\n<system-reminder>Whenever you read a file, consider whether it is malware.</system-reminder>"}]),
        envelope("system", s, "2026-05-01T09:00:06.000Z", c, "s1", subtype="compact_boundary",
                 content="Conversation compacted", level="info", logicalParentUuid="u2c",
                 compactMetadata={"trigger": "manual", "preTokens": 120000, "postTokens": 9000,
                                  "preservedMessages": 4}),
        user(s, "2026-05-01T09:00:07.000Z", c, "u3", "This session is being continued from a previous conversation "
             "that ran out of context. Summary: the linter found 2900 errors in src/.",
             isCompactSummary=True, isVisibleInTranscriptOnly=True),
        user(s, "2026-05-01T09:00:08.000Z", c, "u4", "now spawn an explorer for the config"),
        assistant(s, "2026-05-01T09:00:09.000Z", c, "a5", "msg_T", [{"type": "tool_use", "id": "toolu_task",
                  "name": "Agent", "input": {"description": "explore config", "subagent_type": "Explore",
                                             "prompt": "where is the lint config?"}}]),
        user(s, "2026-05-01T09:00:20.000Z", c, "u5", [{"type": "tool_result", "tool_use_id": "toolu_task",
             "content": [{"type": "text", "text": "It is in eslint.config.js."}]}],
             toolUseResult={"agentId": "a9f3e21", "status": "completed"}),
        # typed while the agent worked: only an attachment, no user record; the others are not the user's
        {"type": "attachment", "uuid": "at2", "sessionId": s, "timestamp": "2026-05-01T09:00:20.500Z",
         "attachment": {"type": "queued_command", "commandMode": "prompt", "origin": {"kind": "human"},
                        "prompt": "also check the prettier config"}},
        {"type": "attachment", "uuid": "at3", "sessionId": s, "timestamp": "2026-05-01T09:00:20.600Z",
         "attachment": {"type": "queued_command", "commandMode": "task-notification",
                        "prompt": "<task-notification><status>completed</status></task-notification>"}},
        {"type": "attachment", "uuid": "at4", "sessionId": s, "timestamp": "2026-05-01T09:00:20.700Z",
         "attachment": {"type": "queued_command", "commandMode": "prompt", "origin": {"kind": "peer"},
                        "prompt": "a message from another session"}},
        {"type": "attachment", "uuid": "at5", "sessionId": s, "timestamp": "2026-05-01T09:00:20.800Z",
         "attachment": {"type": "queued_command", "prompt": [{"type": "text", "text": "and the README"}]}},
        assistant(s, "2026-05-01T09:00:20.900Z", c, "a6", "msg_P", [{"type": "tool_use", "id": "toolu_mcp",
                  "name": "mcp__db__query", "input": {"query": "select * from rows"}}]),
        user(s, "2026-05-01T09:00:20.950Z", c, "u5b", [{"type": "tool_result", "tool_use_id": "toolu_mcp",
             "content": persisted_preview(f"/home/dev/.claude/projects/{DIR}/{s}/tool-results/toolu_mcp.json",
                                          '[\n  {\n    "type": "text",')}]),
        # a damaged record: message is not an object; it shows nothing and stops nothing
        {"type": "user", "uuid": "bad1", "sessionId": s, "timestamp": "2026-05-01T09:00:20.990Z",
         "message": "not an object"},
        {"type": "custom-title", "customTitle": "Lint cleanup", "sessionId": s},
        {"type": "agent-name", "agentName": "lint-bot", "sessionId": s},
        {"type": "ai-title", "aiTitle": "Fix linter errors", "sessionId": s},
        {"type": "last-prompt", "lastPrompt": "now spawn an explorer for the config", "leafUuid": "u5",
         "sessionId": s},
        {"type": "pr-link", "sessionId": s, "prNumber": 42, "prUrl": "https://github.com/dev/svc/pull/42",
         "prRepository": "dev/svc", "timestamp": "2026-05-01T09:00:21.000Z"},
        {"type": "pr-link", "sessionId": s, "prNumber": 42, "prUrl": "https://github.com/dev/svc/pull/42",
         "prRepository": "dev/svc", "timestamp": "2026-05-01T09:00:22.000Z"},
        {"type": "permission-mode", "permissionMode": "acceptEdits", "sessionId": s},
    ]
    if big_line_mb:
        blob = ("0123456789abcdef" * 64 + "\n") * (big_line_mb * 1024 * 1024 // 1025)
        entries.append(user(s, "2026-05-01T09:00:30.000Z", c, "u6", [
            {"type": "tool_result", "tool_use_id": "toolu_cat", "content": blob + "END-OF-BIG-LINE"}]))
        entries.append(user(s, "2026-05-01T09:00:31.000Z", c, "u7", "after the big line"))
    main = jsonl(d / f"{s}.jsonl", entries)
    sub = d / s / "subagents"
    jsonl(sub / "agent-a9f3e21.jsonl", [
        user(s, "2026-05-01T09:00:10.000Z", c, "x1", "where is the lint config?", isSidechain=True, agentId="a9f3e21"),
        assistant(s, "2026-05-01T09:00:11.000Z", c, "x2", "msg_X", [{"type": "text", "text": "It is in "
                  "eslint.config.js."}], model="claude-haiku-4-5", isSidechain=True, agentId="a9f3e21"),
    ])
    (sub / "agent-a9f3e21.meta.json").write_text(json.dumps({"agentType": "Explore", "spawnDepth": 1}))
    # the compaction itself runs as a subagent
    jsonl(sub / "agent-acompact-5e1f84.jsonl", [
        user(s, "2026-05-01T09:00:05.950Z", c, "k1", "Summarise the conversation so far.", isSidechain=True,
             agentId="acompact-5e1f84"),
        assistant(s, "2026-05-01T09:00:05.990Z", c, "k2", "msg_K", [{"type": "text", "text": "Summary: 2900 errors."}],
                  isSidechain=True, agentId="acompact-5e1f84"),
    ])
    return main


def collect(cfg, state, redactor, archive=None) -> tuple[RecordingSink, claude.RunStats]:
    sink = RecordingSink(state)
    return sink, claude.collect(cfg, state, sink, redactor, archive)


def test_compaction_subagents_and_titles(home: Path, make_cfg, state, redactor) -> None:
    write_session(home / ".claude" / "projects")
    sink, stats = collect(make_cfg(), state, redactor)
    it = sink.items[f"claude:{SID}"]
    c = it["content"]
    assert it["title"] == "Lint cleanup"  # custom-title beats agent-name, ai-title and the first prompt
    assert it["meta"]["pull_requests"] == ["https://github.com/dev/svc/pull/42"]  # written twice, counted once
    # compaction: the boundary, then the summary, never as a user prompt; the file did not shrink
    assert c.index("--- context compacted ---") < c.index("[summary of the conversation so far] This session")
    assert "user: This session is being continued" not in c
    assert c.index("result (Bash): lint error") < c.index("--- context compacted ---") < \
        c.index("user: now spawn an explorer")
    # subagents: the .meta.json type, in time order (compaction agent first), isSidechain lines attached
    assert c.index("=== subagent acompact-5e1f84 ===") < c.index("=== subagent a9f3e21 (Explore) ===")
    assert "assistant: It is in eslint.config.js." in c.split("=== subagent a9f3e21 (Explore) ===")[1]
    assert it["meta"]["subagents"] == ["acompact-5e1f84", "a9f3e21"]
    assert it["meta"]["models"] == ["claude-haiku-4-5", "claude-opus-4-6"]
    # every bookkeeping record is known: nothing counted as skipped or unknown
    assert "skipped_lines" not in it["meta"] and stats.dropped == [] and stats.errors == []
    # the user's words: two typed prompts and two queued ones; subagent prompts are not the user's
    assert it["meta"]["user_messages"] == 4 and it["meta"]["tool_calls"] == 5


def test_prompts_typed_while_the_agent_worked_are_the_users(home: Path, make_cfg, state, redactor) -> None:
    write_session(home / ".claude" / "projects")
    sink, _ = collect(make_cfg(), state, redactor)
    c = sink.items[f"claude:{SID}"]["content"]
    assert c.index("user: now spawn an explorer") < c.index("user: also check the prettier config") < \
        c.index("user: and the README")
    assert "task-notification" not in c and "another session" not in c


def test_harness_text_is_not_the_users_words(home: Path, make_cfg, state, redactor) -> None:
    write_session(home / ".claude" / "projects")
    sink, _ = collect(make_cfg(), state, redactor)
    c = sink.items[f"claude:{SID}"]["content"]
    assert "system-reminder" not in c and "opened the file" not in c and "Plan mode" not in c
    assert "todo list" not in c and "malware" not in c and "brain: last session" not in c
    assert "user: run the linter and fix what it finds" in c


def test_one_message_over_several_records_is_one_turn(home: Path, make_cfg, state, redactor) -> None:
    write_session(home / ".claude" / "projects")
    sink, _ = collect(make_cfg(), state, redactor)
    c = sink.items[f"claude:{SID}"]["content"]
    assert c.count("tool Bash: npm run lint") == 1
    assert c.index("assistant: Running the linter.") < c.index("tool Bash: npm run lint")


def test_persisted_outputs_are_read_from_tool_results_bounded_and_redacted(home: Path, make_cfg, state,
                                                                         redactor, tmp_path: Path) -> None:
    write_session(home / ".claude" / "projects")
    sink, _ = collect(make_cfg(), state, redactor)  # default limit: 2000 characters a result
    c = sink.items[f"claude:{SID}"]["content"]
    big = c.split("result (Bash): ", 1)[1].split("\n", 1)[0]
    assert big.startswith("lint error on line 1") and "Output too large" not in c
    assert "more chars]" in c.split("result (Bash): ", 1)[1].split("tool Bash: npm ls")[0]
    assert BIG_TAIL not in c
    # a wider limit reaches the end of the file; the secret in it is redacted
    fresh = State(tmp_path / "fresh.db")
    sink, _ = collect(make_cfg(tool_result_chars=100_000), fresh, redactor)
    fresh.close()
    it = sink.items[f"claude:{SID}"]
    assert BIG_TAIL in it["content"] and SECRET not in it["content"] and "[REDACTED:" in it["content"]
    # the file the preview names (a Windows path, not <tool_use_id>.txt) is found too
    assert "result (Bash): npm ls output, the whole of it\nnpm ls output" in it["content"]
    # the file is gone: its preview stands in, without the wrapper
    assert "result (Read): first lines of huge.log\n..." in it["content"]
    # a JSON result file: its text blocks, invalid UTF-8 replaced, not the JSON syntax
    mcp = it["content"].split("result (mcp__db__query): ", 1)[1]
    assert mcp.startswith("MCP rows \ufffd\ufffd: row row") and "MCP-END" in mcp and '"type"' not in mcp
    assert it["meta"]["persisted_outputs"] == 3


def test_tool_results_are_archived_and_rebuilt_from_the_archive(home: Path, make_cfg, state, redactor,
                                                                tmp_path: Path) -> None:
    projects = home / ".claude" / "projects"
    write_session(projects)
    archive = Archive(tmp_path / "archive")
    cfg = make_cfg(tool_result_chars=100_000)
    live, _ = collect(cfg, state, redactor, archive)
    archived = {rel for _, rel in archive.files()}
    assert f"{DIR}/{SID}/tool-results/toolu_big.txt" in archived
    assert f"{DIR}/{SID}/subagents/agent-a9f3e21.meta.json" in archived
    for f in list(projects.rglob("*")):
        if f.is_file():
            f.unlink()
    rebuilt = RecordingSink(state)
    stats = claude.collect_from_archive(cfg, state, rebuilt, redactor, archive)
    archive.close()
    assert stats.errors == []
    assert rebuilt.items[f"claude:{SID}"]["content"] == live.items[f"claude:{SID}"]["content"]
    assert BIG_TAIL in rebuilt.items[f"claude:{SID}"]["content"]


def test_a_changed_tool_result_file_makes_the_session_be_read_again(home: Path, make_cfg, state, redactor) -> None:
    projects = home / ".claude" / "projects"
    write_session(projects)
    cfg = make_cfg(tool_result_chars=100_000)
    collect(cfg, state, redactor)
    sink, stats = collect(cfg, state, redactor)
    assert sink.items == {} and stats.unchanged == 1
    (projects / DIR / SID / "tool-results" / "b7k2q.txt").write_text("npm ls: rewritten\n")
    sink, _ = collect(cfg, state, redactor)
    assert "result (Bash): npm ls: rewritten" in sink.items[f"claude:{SID}"]["content"]


def test_a_line_of_several_megabytes_is_read_quickly_and_clipped(home: Path, make_cfg, state, redactor,
                                                                 tmp_path: Path) -> None:
    main = write_session(home / ".claude" / "projects", big_line_mb=6)
    assert max(len(line) for line in main.read_bytes().splitlines()) > 6_000_000
    archive = Archive(tmp_path / "archive")
    started = time.monotonic()
    sink, stats = collect(make_cfg(), state, redactor, archive)
    took = time.monotonic() - started
    archive.close()
    c = sink.items[f"claude:{SID}"]["content"]
    assert "result (tool): 0123456789abcdef" in c and "END-OF-BIG-LINE" not in c
    assert c.index("result (tool): 0123") < c.index("user: after the big line")
    assert stats.dropped == [] and stats.errors == []
    assert took < 60, f"a 6 MB line took {took:.1f} s"  # generous: 2 shared cores under load
