"""Codex CLI rollouts, in the shape Codex writes them (see ``brain.collect.codex``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from brain.collect import agents, coding_agents
from brain.collect.archive import Archive
from brain.collect.outbox import OutboxSink

from .agent_homes import CODEX_CWD, CODEX_FORK, CODEX_SID, codex_path, codex_session, write_codex, write_lines
from .conftest import RecordingSink

ID = f"agent:codex:{CODEX_SID}"


def run(cfg, state, redactor, archive=None) -> tuple[RecordingSink, agents.RunStats]:
    sink = RecordingSink(state)
    return sink, coding_agents.collect(cfg, state, sink, redactor, archive, only=("codex",))


def test_a_compacted_resumed_session_is_one_item_read_like_a_claude_session(home: Path, make_cfg, state,
                                                                           redactor) -> None:
    write_codex(home)
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.name == "agents [codex]" and stats.errors == [] and stats.dropped == []
    it = sink.items[ID]
    c = it["content"]
    assert it["source"] == "agent" and it["uri"] == f"codex://session/{CODEX_SID}"
    assert it["title"] == "refunds over 100 EUR fail, find out why" and it["project"] == CODEX_CWD
    assert it["created_at"] == "2026-05-02T08:00:00.100Z" and it["updated_at"] == "2026-05-03T09:00:04.000Z"
    # the user's words once each (message item and event), harness messages never
    assert c.count("user: refunds over 100 EUR fail") == 1 and c.count("user: now add a test") == 1
    assert "AGENTS.md" not in c and "environment_context" not in c and "permissions" not in c
    assert c.count("assistant: The cap was 100") == 1
    # tool calls with their outputs, joined by call_id; arguments parsed from their JSON string
    assert "tool shell: bash -lc 'rg -n '\"'\"'MAX_REFUND'\"'\"' src'" in c
    assert "result (shell): src/refund.py:12:MAX_REFUND = 100" in c
    assert "tool apply_patch: *** Begin Patch" in c and "result (apply_patch): Success." in c
    assert "tool shell: pytest -q" in c and "result (shell, error): 1 failed" in c
    assert "tool web_search: pytest approx" in c
    # compaction: the boundary and the summary, the replacement history not repeated
    assert c.index("assistant: The cap was 100") < c.index("--- context compacted ---") < \
        c.index("[summary of the conversation so far] Summary: the refund cap") < c.index("user: now add a test")
    assert "Looking at the refund path" not in c  # reasoning only with collect.include_thinking
    m = it["meta"]
    assert m["agent"] == "codex" and m["resume"] == f"codex resume {CODEX_SID}"
    assert m["user_messages"] == 2 and m["tool_calls"] == 4 and m["git_branch"] == "fix/refunds"
    assert m["cwds"] == [CODEX_CWD, CODEX_CWD + "/api"] and m["models"] == ["gpt-5-codex", "gpt-5.1-codex"]
    assert m["agent_version"] == "0.61.0" and "skipped_lines" not in m


def test_old_files_without_events_show_the_message_items(home: Path, make_cfg, state, redactor) -> None:
    lines = [r for r in codex_session() if r["type"] != "event_msg"]
    write_lines(codex_path(home), lines)
    sink, _ = run(make_cfg(include_thinking=True), state, redactor)
    c = sink.items[ID]["content"]
    assert c.count("user: refunds over 100 EUR fail") == 1 and c.count("assistant: The cap was 100") == 1
    assert "environment_context" not in c and "thinking: **Looking at the refund path**" in c


def test_a_fork_is_its_own_session_and_keeps_only_its_own_meta(home: Path, make_cfg, state, redactor) -> None:
    write_codex(home)
    parent = codex_session()
    fork = codex_session(CODEX_FORK, forked_from=CODEX_SID)[:1] + parent  # the parent's lines copied after
    write_lines(codex_path(home, CODEX_FORK, "2026/05/04"), fork)
    sink, _ = run(make_cfg(), state, redactor)
    assert set(sink.items) == {ID, f"agent:codex:{CODEX_FORK}"}
    assert sink.items[f"agent:codex:{CODEX_FORK}"]["meta"]["forked_from"] == CODEX_SID


def test_incremental_idempotent_and_resume_appends(home: Path, make_cfg, state, redactor) -> None:
    path = write_codex(home)
    cfg = make_cfg()

    def outbox() -> agents.RunStats:
        return coding_agents.collect(cfg, state, OutboxSink(state), redactor, None, only=("codex",))

    assert outbox().queued == 1
    stats = outbox()
    assert stats.unchanged == 1 and stats.scanned == 0
    with path.open("ab") as fh:  # `codex resume` appends
        fh.write(json.dumps({"timestamp": "2026-05-07T10:00:00.000Z", "type": "event_msg",
                             "payload": {"type": "user_message", "message": "one more thing"}}).encode() + b"\n")
    assert outbox().queued == 1
    assert "user: one more thing" in state.conn.execute("SELECT body FROM outbox").fetchone()[0]
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # same bytes, newer mtime
    stats = outbox()
    assert stats.scanned == 1 and stats.queued == 0 and stats.unchanged == 1  # read again, the same item


def test_bad_lines_are_named_and_the_rest_collected(home: Path, make_cfg, state, redactor) -> None:
    good = codex_session()
    data = b"".join(json.dumps(r).encode() + b"\n" for r in good[:6])
    data += b'{"timestamp":"2026-05-02T08:00:01.200Z","type":"event_msg","payload":{"type":"user_message",'
    data += b'"message":"caf\xe9 \xff bytes"}}\n'  # invalid UTF-8
    data += b'{"timestamp":"x","type":"event_msg","payload":{"type":"user_message","message":"half \\ud83d"}}\n'
    data += b'{"timestamp": broken\n[1, 2]\n"text"\n'
    data += b'{"timestamp":"x","type":"response_item","payload":"not an object"}\n'
    data += b'{"timestamp":"x","type":"some_future_type","payload":{}}\n'
    data += b"".join(json.dumps(r).encode() + b"\n" for r in good[6:])
    data += b'{"timestamp":"2026-05-03T09:00:05.000Z","type":"event_m'  # being written
    path = codex_path(home)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    sink, stats = run(make_cfg(), state, redactor)
    c = sink.items[ID]["content"]
    assert "user: caf\ufffd \ufffd bytes" in c and "user: half \ufffd" in c and "user: now add a test" in c
    rel = f"2026/05/02/{path.name}"
    assert [w for w, _ in stats.dropped] == [f"{rel} line 9", f"{rel} line 10", f"{rel} line 11"]
    assert [w for w, _ in stats.repaired] == [f"{rel} line 7", f"{rel} line 8"]
    assert sink.items[ID]["meta"]["skipped_lines"] == 5  # 3 broken, 1 unknown type, 1 unfinished tail


def test_one_unreadable_session_does_not_stop_the_others(home: Path, make_cfg, state, redactor,
                                                        monkeypatch) -> None:
    write_codex(home)
    write_lines(codex_path(home, CODEX_FORK, "2026/05/04"), codex_session(CODEX_FORK))
    from brain.collect import codex

    real = codex.parse

    def parse(data, rel, cfg):
        if CODEX_SID in rel:
            raise RecursionError("pathological")
        return real(data, rel, cfg)

    monkeypatch.setattr(codex, "parse", parse)
    sink, stats = run(make_cfg(), state, redactor)
    assert set(sink.items) == {f"agent:codex:{CODEX_FORK}"}
    assert stats.dropped == [(f"codex 2026/05/02/{codex_path(home).name}", "cannot be read: RecursionError")]


def test_secrets_are_redacted_and_the_rollout_archived_redacted(home: Path, make_cfg, state, redactor,
                                                                tmp_path: Path) -> None:
    secret = "ghp_" + "Zq9Xw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0EdCbA9"
    lines = codex_session()
    lines[6]["payload"]["message"] = f"use the token {secret} for the API"
    write_lines(codex_path(home), lines)
    archive = Archive(tmp_path / "archive")
    sink, _ = run(make_cfg(), state, redactor, archive)
    assert secret not in json.dumps(sink.items[ID]) and "[REDACTED:" in sink.items[ID]["content"]
    (key, rel), = archive.files()
    assert rel == f"2026/05/02/{codex_path(home).name}"
    stored = archive.read(key, rel)
    archive.close()
    assert secret.encode() not in stored and b"refunds over 100 EUR" in stored


def test_a_secret_in_the_first_prompt_or_a_command_leaves_no_piece_in_the_title_or_the_archive(
        home: Path, make_cfg, state, redactor, tmp_path: Path) -> None:
    """Issue 12: the title (the first prompt) was cut to 120 characters before it was redacted,
    through the middle of a long token; a command's token followed the ``\\n`` escape of the
    JSON string ``function_call.arguments`` is, which hid where the token starts."""
    token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ" + "FAKEa1B2c3D4" * 5 + ".FAKE" + "s1G2n3A4t5" * 4
    hf = "hf_FAKEa1B2c3D4e5F6g7H8i9J0k1L2m3N4o5"
    lines = codex_session()
    lines[5]["payload"]["content"][0]["text"] = lines[6]["payload"]["message"] = f"Why does this fail? {token} please"
    lines[8]["payload"]["arguments"] = json.dumps({"command": ["bash", "-lc", f"cat > .env <<'EOF'\n{hf}\nEOF"]})
    write_lines(codex_path(home), lines)
    archive = Archive(tmp_path / "archive")
    sink, _ = run(make_cfg(), state, redactor, archive)
    it = sink.items[ID]
    assert "FAKE" not in json.dumps(it), it["title"]
    assert it["title"] == "Why does this fail? [REDACTED:jwt] please" and "tool shell: bash -lc" in it["content"]
    (key, rel), = archive.files()
    stored = archive.read(key, rel)
    archive.close()
    assert b"FAKE" not in stored and b"[REDACTED:huggingface]" in stored


def test_codex_home_is_honoured_and_nothing_found_says_so(home: Path, make_cfg, state, redactor,
                                                         monkeypatch, tmp_path: Path) -> None:
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.name == "agents [none found]" and sink.items == {}
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "elsewhere"))
    write_lines(tmp_path / "elsewhere" / "sessions" / "2026" / "05" / "02" / codex_path(home).name, codex_session())
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.name == "agents [codex]" and ID in sink.items
