"""Gemini CLI sessions, in the shape Gemini CLI writes them (see ``brain.collect.gemini``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from brain.collect import agents, coding_agents

from .agent_homes import GEMINI_ROOT, GEMINI_SID, gemini_session, gm, write_gemini, write_lines
from .conftest import RecordingSink

ID = f"agent:gemini:{GEMINI_SID}"


def run(cfg, state, redactor) -> tuple[RecordingSink, agents.RunStats]:
    sink = RecordingSink(state)
    return sink, coding_agents.collect(cfg, state, sink, redactor, None, only=("gemini",))


def test_a_rewound_session_keeps_what_survived_the_rewind(home: Path, make_cfg, state, redactor) -> None:
    write_gemini(home)
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.name == "agents [gemini]" and stats.dropped == [] and stats.errors == []
    it = sink.items[ID]
    c = it["content"]
    # m3 and m4 were rewound: gone; m2 was written twice: once, in its place, as last written
    assert "also run the tests" not in c and "npm test" not in c
    assert c.count("assistant: Reading the page first.") == 1
    assert c.index("user: rename the page title") < c.index("tool read_file: /home/dev/site/index.html") < \
        c.index("result (read_file): <html><title>Old</title></html>") < c.index("user: just the title")
    assert "session_context" not in c and "Request cancelled" not in c
    assert "error: Quota exceeded for gemini-2.5-pro" in c
    assert it["title"] == "Rename the page title"  # the $set summary
    assert it["project"] == GEMINI_ROOT and it["uri"] == f"gemini://session/{GEMINI_SID}"
    assert it["created_at"] == "2026-05-04T10:00:00.000Z" and it["updated_at"] == "2026-05-04T10:01:04.000Z"
    m = it["meta"]
    assert m["resume"] == f"cd {GEMINI_ROOT} && gemini --resume {GEMINI_SID}"
    assert m["user_messages"] == 2 and m["tool_calls"] == 1
    assert m["models"] == ["gemini-2.5-flash", "gemini-2.5-pro"] and m["model"] == "gemini-2.5-flash"


def test_a_failed_call_a_checkpoint_and_a_rewind_to_an_unknown_id(home: Path, make_cfg, state, redactor) -> None:
    path = write_gemini(home)
    records = [r for r in gemini_session() if r.get("$rewindTo") is None]
    write_lines(path, records)
    sink, _ = run(make_cfg(), state, redactor)
    assert "result (run_shell_command, error): npm: command not found" in sink.items[ID]["content"]
    # a $set with messages replaces everything; a rewind to an unknown id clears the list
    write_lines(path, records + [{"$set": {"messages": [gm("k1", "2026-05-04T11:00:00.000Z", "user", "checkpointed")]}},
                                 gm("k2", "2026-05-04T11:00:01.000Z", "gemini", "after the checkpoint")])
    sink, _ = run(make_cfg(), state, redactor)
    assert sink.items[ID]["content"] == "user: checkpointed\nassistant: after the checkpoint"
    write_lines(path, records + [{"$rewindTo": "no-such-id"}, gm("z1", "2026-05-04T12:00:00.000Z", "user", "fresh")])
    sink, _ = run(make_cfg(), state, redactor)
    assert sink.items[ID]["content"] == "user: fresh"


def test_subagents_legacy_json_and_hash_folders(home: Path, make_cfg, state, redactor) -> None:
    path = write_gemini(home)
    sub = path.parent / GEMINI_SID / "7c1d.jsonl"
    write_lines(sub, [{"sessionId": "7c1d", "projectHash": "site", "kind": "subagent"},
                      gm("s1", "2026-05-04T10:00:02.100Z", "user", "find the title tag"),
                      gm("s2", "2026-05-04T10:00:02.200Z", "gemini", "line 1")])
    legacy_dir = home / ".gemini" / "tmp" / hashlib.sha256(GEMINI_ROOT.encode()).hexdigest() / "chats"
    legacy_dir.mkdir(parents=True)
    (legacy_dir / "session-2025-10-01T09-00-aaaa1111.json").write_text(json.dumps({
        "sessionId": "aaaa1111-0000-4000-8000-000000000000", "projectHash": "x", "startTime": "2025-10-01T09:00:00Z",
        "lastUpdated": "2025-10-01T09:05:00Z",
        "messages": [gm("o1", "2025-10-01T09:00:01Z", "user", "old format prompt"),
                     gm("o2", "2025-10-01T09:00:02Z", "gemini", "old format answer")]}, indent=2))
    sink, _ = run(make_cfg(), state, redactor)
    c = sink.items[ID]["content"]
    assert c.index("user: just the title") < c.index("=== subagent 7c1d ===") < c.index("user: find the title tag")
    assert sink.items[ID]["meta"]["files"][1] == f"site/chats/{GEMINI_SID}/7c1d.jsonl"
    old = sink.items["agent:gemini:aaaa1111-0000-4000-8000-000000000000"]
    assert old["content"] == "user: old format prompt\nassistant: old format answer"
    assert old["project"] == GEMINI_ROOT  # the old sha256(root) folder name, mapped through projects.json


def test_bad_records_are_named_and_the_rest_collected(home: Path, make_cfg, state, redactor) -> None:
    path = write_gemini(home)
    data = path.read_bytes().replace(b"just the title, thanks", b"just the title, \xff thanks")
    data += b'{"id": "m10", broken\n[]\n{"id":"m11","timestamp":"2026-05-04T10:02:00Z","type":"user",'
    data += b'"content":"half \\ud83d"}\n{"unknown":"record"}\n'
    data += b'{"id":"m12","timestamp":"2026-05-04T10:02:01Z","type":"gemini","content":{"text":"tail"},'
    data += b'"toolCalls":["not a call",{"name":"glob","args":"*.py","result":null}]}\n{"id":"m13"'
    path.write_bytes(data)
    sink, stats = run(make_cfg(), state, redactor)
    c = sink.items[ID]["content"]
    assert "user: just the title, \ufffd thanks" in c and "user: half \ufffd" in c and "assistant: tail" in c
    assert "tool glob: *.py" in c
    assert [why for _, why in stats.dropped] == ["not valid JSON", "not a JSON object"]
    assert [why for _, why in stats.repaired] == ["invalid UTF-8 replaced with U+FFFD",
                                                   "1 lone surrogates replaced with U+FFFD"]
    assert sink.items[ID]["meta"]["skipped_lines"] == 4  # broken, [], unknown record, unfinished tail


def test_gemini_cli_home_and_a_session_without_id(home: Path, make_cfg, state, redactor, monkeypatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "gh"))
    write_gemini(tmp_path / "gh")
    write_lines(tmp_path / "gh" / ".gemini" / "tmp" / "site" / "chats" / "session-x.jsonl", [{"kind": "main"}])
    sink, stats = run(make_cfg(), state, redactor)
    assert set(sink.items) == {ID} and stats.skipped["empty"] == 1


def test_a_long_error_is_cut_between_tokens_never_through_a_secret(home: Path, make_cfg, state, redactor) -> None:
    """Issue 12: an error message was cut to 500 characters before it was redacted; a token
    across the cut lost its tail, and what was left no detector recognised."""
    token = "AIzaSy" + "FAKEa1B2c3D4e5F6g7H8i9J0k1L2m3N4o"
    lines = gemini_session()
    lines[11]["content"] = "x" * 470 + " key " + token + " exceeded its quota"  # the token across character 500
    write_gemini(home)
    write_lines(next((home / ".gemini" / "tmp").rglob("session-*.jsonl")), lines)
    sink, _ = run(make_cfg(), state, redactor)
    c = sink.items[ID]["content"]
    assert "FAKE" not in c and f"error: {'x' * 470} key [... " in c
