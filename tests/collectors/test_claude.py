"""Claude Code collector on real transcripts and on synthetic ones for the ugly cases."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from brain.collect import claude
from brain.collect.archive import Archive, ArchiveCorrupt, root_key

from .conftest import RecordingSink
from .fakehome import (
    LEGACY_SID,
    MAIN_SID,
    OLD_SID,
    SYN_CWD,
    SYN_DIR,
    jsonl,
    user,
)

SHORT = "claude:55604662-cf2a-4331-851a-ec234028f8ca"
TOOLS = "claude:d6e0bada-1959-4eec-a9d2-0bfade768d8f"
ORPHAN = "claude:ae4a77f8-aedd-4bc1-888f-c94edc91af04"


def run(cfg, state, redactor, archive=None, since=None) -> tuple[RecordingSink, claude.RunStats]:
    sink = RecordingSink(state)
    stats = claude.collect(cfg, state, sink, redactor, archive, since)
    return sink, stats


def test_real_transcripts_become_one_item_per_session(projects, make_cfg, state, redactor) -> None:
    sink, stats = run(make_cfg(), state, redactor)
    assert {SHORT, TOOLS, ORPHAN} <= set(sink.items)
    it = sink.items[SHORT]
    assert it["source"] == "claude" and it["uri"] == "claude://session/55604662-cf2a-4331-851a-ec234028f8ca"
    assert it["title"] == "mix phx.server doesnt seem to start"
    assert it["project"] == "/home/marco/projects/spotter"
    assert it["meta"]["resume"] == "claude --resume 55604662-cf2a-4331-851a-ec234028f8ca"
    assert it["meta"]["cwd"] == "/home/marco/projects/spotter"
    assert (it["meta"]["git_branch"], it["meta"]["model"]) == ("master", "claude-opus-4-6")
    assert (it["created_at"], it["updated_at"]) == ("2026-02-10T21:11:56.846Z", "2026-02-10T21:16:12.381Z")
    c = it["content"]
    # five assistant lines of one API message are merged: each block once, in order
    assert c.count("Let me check the project structure") == 1
    assert c.index("tool Bash: mix phx.server 2>&1 | head -80") < c.index("tool Glob: mix.exs")
    assert "result (Bash, error): The user doesn't want to proceed" in c
    assert "The user is having trouble starting" not in c  # thinking is off by default
    assert "user: /model" in c and "output: Kept model as Default (recommended)" in c  # ANSI stripped
    assert "file-history-snapshot" not in c and "SessionStart" not in c
    assert stats.errors == []


def test_tool_heavy_session_shows_calls_and_results_in_order(projects, make_cfg, state, redactor) -> None:
    sink, _ = run(make_cfg(), state, redactor)
    c = sink.items[TOOLS]["content"]
    assert sink.items[TOOLS]["title"] == "start phoenix in background"
    assert "tool WebSearch: xterm.js scroll not working" in c
    assert "user: /mcp" in c and "output: Reconnected to tidewave." in c
    assert "Caveat:" not in c  # harness meta lines are dropped
    assert c.index("user: start phoenix in background") < c.index("tool Bash: mix phx.server") < \
        c.index("result (Bash): Command running in background")


def test_orphan_subagent_still_becomes_its_parent_session(projects, make_cfg, state, redactor) -> None:
    sink, _ = run(make_cfg(), state, redactor)
    it = sink.items[ORPHAN]
    assert it["meta"]["parent_missing"] is True
    assert it["meta"]["subagents"] == ["aac57f5"]
    assert it["project"] == "/home/USER/projects/spotter-worktrees/spotter-4te"  # from cwd, not the folder name
    assert it["title"].startswith("Search hex.pm for the latest versions")
    assert "=== subagent aac57f5 ===" in it["content"]


def test_synthetic_session_covers_the_ugly_cases(projects, make_cfg, state, redactor) -> None:
    sink, stats = run(make_cfg(tool_result_chars=100), state, redactor)
    it = sink.items[f"claude:{MAIN_SID}"]
    c = it["content"]
    assert it["title"] == "Fix flaky upload test"  # ai-title wins over the first prompt
    assert it["project"] == SYN_CWD  # never decoded from -home-dev-my-app-v2
    assert "[REDACTED:openai]" in c and "sk-proj-AbCdEf" not in c
    assert c.count("assistant: Looking at the test.") == 1  # same block written twice
    assert "tool Task: search docs subagent_type=\"general-purpose\"" in c
    assert "result (Bash, error): " + "E" * 100 + " [... 4900 more chars]" in c
    assert "result (Task): Docs say: use backoff.\n[image]" in c
    assert "--- context compacted ---" in c and "[summary of the conversation so far]" in c
    assert "SECRET-THOUGHT" not in c
    assert "user: crlf line here" in c  # a CRLF line is valid JSON: kept
    # subagents attached, ordered by time; the .meta.json agent type shown; journal.jsonl ignored
    assert c.index("=== subagent a1b2c3d (general-purpose) ===") < c.index("=== subagent w9 ===")
    assert "workflow step one" in c and "started" not in c
    assert it["meta"]["models"] == ["claude-haiku-4-5", "claude-opus-4-6"]
    assert it["meta"]["skipped_lines"] == {"malformed": 1, "truncated": 1, "non_object": 2, "unknown_type": 1}
    assert stats.skipped["truncated lines"] == 1 and stats.errors == []


def test_thinking_can_be_included(projects, make_cfg, state, redactor) -> None:
    sink, _ = run(make_cfg(include_thinking=True), state, redactor)
    assert "assistant (thinking): SECRET-THOUGHT: consider retries" in sink.items[f"claude:{MAIN_SID}"]["content"]


def test_legacy_agent_file_and_inline_sidechains_attach_to_their_parent(projects, make_cfg, state, redactor) -> None:
    sink, _ = run(make_cfg(), state, redactor)
    legacy = sink.items[f"claude:{LEGACY_SID}"]
    assert "=== subagent a123456 ===" in legacy["content"] and "It lists 3 fixes." in legacy["content"]
    assert not any(i.startswith("claude:orphan-") for i in sink.items)
    old = sink.items[f"claude:{OLD_SID}"]
    assert old["title"] == "Rust parser port"  # from the summary line
    assert old["project"] == "e:\\Workspace\\src\\tool"
    assert "git_branch" not in old["meta"]
    assert "=== subagent sidechain ===" in old["content"] and "sidechain answer" in old["content"]
    assert old["content"].index("assistant: Spawning a task.") < old["content"].index("=== subagent sidechain")


def test_every_projects_root_is_read(home: Path, make_cfg, state, redactor, monkeypatch) -> None:
    a, b = home / "cfg-a", home / "cfg-b"
    for base, sid in ((a, "aaaaaaaa-0000-4000-8000-000000000001"), (b, "bbbbbbbb-0000-4000-8000-000000000002"),
                      (home / ".config" / "claude", "cccccccc-0000-4000-8000-000000000003")):
        jsonl(base / "projects" / "-p" / f"{sid}.jsonl", [user(sid, "2026-01-01T00:00:00Z", "/p", "u", "hi " + sid)])
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{a}, {b},{a}")
    roots = claude.claude_roots(make_cfg())
    assert roots == [a / "projects", b / "projects", home / ".config" / "claude" / "projects"]
    sink, _ = run(make_cfg(), state, redactor)
    assert len(sink.items) == 3
    # an explicit setting replaces the defaults
    assert claude.claude_roots(make_cfg(collect__claude_roots=[str(b)])) == [b / "projects"]


def test_incremental_growing_session_is_resent(projects, make_cfg, state, redactor) -> None:
    cfg = make_cfg()
    run(cfg, state, redactor)
    sink, stats = run(cfg, state, redactor)
    assert sink.items == {} and stats.unchanged >= 6
    path = projects / "-home-marco-projects-spotter" / "55604662-cf2a-4331-851a-ec234028f8ca.jsonl"
    with open(path, "ab") as fh:
        line = user("55604662-cf2a-4331-851a-ec234028f8ca", "2026-02-11T08:00:00.000Z", "/home/marco/projects/spotter",
                    "new", "one more question about the server")
        fh.write(json.dumps(line).encode() + b"\n")
    sink, _ = run(cfg, state, redactor)
    assert list(sink.items) == [SHORT]
    assert sink.items[SHORT]["content"].endswith("user: one more question about the server")
    assert sink.items[SHORT]["updated_at"] == "2026-02-11T08:00:00.000Z"


def test_since_skips_older_sessions(projects, make_cfg, state, redactor) -> None:
    from brain.shared import timeutil

    sink, stats = run(make_cfg(), state, redactor, since=timeutil.parse("2026-02-11"))
    assert set(sink.items) == {ORPHAN, f"claude:{MAIN_SID}"}
    assert stats.skipped["before --since"] == 4


# ---------------------------------------------------------------------- archive


def test_archive_keeps_sessions_after_claude_deletes_them(projects, make_cfg, state, redactor, tmp_path) -> None:
    archive = Archive(tmp_path / "archive")
    cfg = make_cfg()
    live, _ = run(cfg, state, redactor, archive)
    assert archive.verify() == []
    # Claude Code's cleanupPeriodDays removes the files
    for f in list(projects.rglob("*.jsonl")):
        f.unlink()
    rebuilt = RecordingSink(state)
    stats = claude.collect_from_archive(cfg, state, rebuilt, redactor, archive)
    assert stats.errors == []
    assert rebuilt.items == live.items
    archive.close()


def test_archive_appends_growth_as_gzip_members_and_versions_rewrites(tmp_path: Path) -> None:
    arch = Archive(tmp_path / "a")
    root = tmp_path / "projects"
    assert arch.add(root, "-p/s.jsonl", b"line1\n") == "new"
    assert arch.add(root, "-p/s.jsonl", b"line1\n") == "unchanged"
    assert arch.add(root, "-p/s.jsonl", b"line1\nline2\n") == "appended"
    blob = tmp_path / "a" / root_key(root) / "-p/s.jsonl.gz"
    assert gzip.decompress(blob.read_bytes()) == b"line1\nline2\n"
    assert arch.add(root, "-p/s.jsonl", b"rewritten\n") == "version"  # the start changed: keep both
    assert arch.read(root_key(root), "-p/s.jsonl") == b"rewritten\n"
    assert arch.read(root_key(root), "-p/s.jsonl", version=1) == b"line1\nline2\n"
    assert list(arch.files()) == [(root_key(root), "-p/s.jsonl")]


def test_archive_ignores_a_member_left_by_a_crash(tmp_path: Path) -> None:
    arch = Archive(tmp_path / "a")
    root = tmp_path / "projects"
    arch.add(root, "-p/s.jsonl", b"one\n")
    blob = tmp_path / "a" / root_key(root) / "-p/s.jsonl.gz"
    with open(blob, "ab") as fh:  # written, then killed before the manifest was updated
        fh.write(gzip.compress(b"two\n"))
    assert arch.read(root_key(root), "-p/s.jsonl") == b"one\n"
    assert arch.add(root, "-p/s.jsonl", b"one\ntwo\n") == "appended"
    assert arch.read(root_key(root), "-p/s.jsonl") == b"one\ntwo\n"  # not "one two two"
    assert gzip.decompress(blob.read_bytes()) == b"one\ntwo\n"


def test_a_corrupt_archived_copy_is_reported_not_used(projects, make_cfg, state, redactor, tmp_path) -> None:
    archive = Archive(tmp_path / "archive")
    run(make_cfg(), state, redactor, archive)
    blob = next((tmp_path / "archive").rglob("55604662-*.jsonl.gz"))
    data = bytearray(gzip.decompress(blob.read_bytes()))
    data[100:110] = b"XXXXXXXXXX"
    blob.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(ArchiveCorrupt):
        archive.read(root_key(projects), "-home-marco-projects-spotter/55604662-cf2a-4331-851a-ec234028f8ca.jsonl")
    assert len(archive.verify()) == 1
    sink = RecordingSink(state)
    stats = claude.collect_from_archive(make_cfg(), state, sink, redactor, archive)
    assert SHORT not in sink.items and TOOLS in sink.items
    assert any("does not match its checksum" in e for e in stats.errors)


def test_unreadable_bytes_and_garbage_files_are_never_fatal(home: Path, make_cfg, state, redactor) -> None:
    d = home / ".claude" / "projects" / SYN_DIR
    d.mkdir(parents=True)
    (d / "99999999-0000-4000-8000-000000000009.jsonl").write_bytes(b"\xff\xfe garbage\n\x00\x01\n{}\n[]\n")
    (d / "88888888-0000-4000-8000-000000000008.jsonl").write_bytes(b"")
    sink, stats = run(make_cfg(), state, redactor)
    assert sink.items == {} and stats.errors == []
    assert stats.skipped["empty"] == 2


# ---------------------------------------------------------------------- one bad record stops nothing

BAD_SID = "44444444-5555-4666-8777-888888888888"
GOOD_SID = "55555555-6666-4777-8888-999999999999"


def write_poisoned_sessions(projects: Path) -> tuple[Path, Path]:
    """A session whose tool_result holds ``"PASSED \\ud83d"`` (a split emoji's escape), an
    invalid UTF-8 line and a broken line; and a good session beside it."""
    d = projects / "-home-dev-poison"
    d.mkdir(parents=True, exist_ok=True)
    bad = [
        user(BAD_SID, "2026-04-01T10:00:00.000Z", "/home/dev/poison", "b1", "run the tests"),
        user(BAD_SID, "2026-04-01T10:00:01.000Z", "/home/dev/poison", "b2",
             [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "PASSED \ud83d"}]),
    ]
    # json.dumps escapes the lone surrogate as \ud83d, exactly as Claude Code wrote it
    raw = b"".join(json.dumps(e).encode() + b"\n" for e in bad)
    raw += json.dumps(user(BAD_SID, "2026-04-01T10:00:02.000Z", "/home/dev/poison", "b3", "caf-PLACEHOLDER")).encode() \
        .replace(b"PLACEHOLDER", b"\xe9\xff") + b"\n"  # invalid UTF-8
    raw += b'{"type":"user", this is not json\n'
    raw += json.dumps(user(BAD_SID, "2026-04-01T10:00:03.000Z", "/home/dev/poison", "b4", "thanks")).encode() + b"\n"
    (d / f"{BAD_SID}.jsonl").write_bytes(raw)
    good = jsonl(d / f"{GOOD_SID}.jsonl", [user(GOOD_SID, "2026-04-01T11:00:00.000Z", "/home/dev/poison", "g1",
                                                 "a perfectly normal session")])
    return d / f"{BAD_SID}.jsonl", good


def test_a_lone_surrogate_and_bad_lines_are_repaired_or_named_and_the_rest_collected(home: Path, make_cfg, state,
                                                                                      redactor) -> None:
    bad_file, _ = write_poisoned_sessions(home / ".claude" / "projects")
    sink, stats = run(make_cfg(), state, redactor)
    assert set(sink.items) == {f"claude:{BAD_SID}", f"claude:{GOOD_SID}"}
    content = sink.items[f"claude:{BAD_SID}"]["content"]
    assert "result (tool): PASSED \ufffd" in content and "user: caf-\ufffd\ufffd" in content and "user: thanks" in content
    content.encode("utf-8")  # what the outbox needs
    rel = f"-home-dev-poison/{bad_file.name}"
    assert stats.repaired == [(f"{rel} line 2", "1 lone surrogates replaced with U+FFFD"),
                              (f"{rel} line 3", "invalid UTF-8 replaced with U+FFFD")]
    assert stats.dropped == [(f"{rel} line 4", "not valid JSON")]
    assert stats.errors == []
    summary = stats.summary()
    assert "repaired 2 (" in summary and f"{rel} line 2: 1 lone surrogates" in summary and "dropped 1 (" in summary


def test_the_real_run_and_the_dry_run_both_get_past_the_poisoned_transcript(home: Path, runner, standin) -> None:
    from brain.cli.main import main

    write_poisoned_sessions(home / ".claude" / "projects")
    env = {"BRAIN_API_URL": standin.url, "BRAIN_TOKEN": standin.token, "BRAIN_CLIENT_MAX_RETRIES": "1"}
    dry = runner.invoke(main, ["collect", "claude", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "claude: 2 scanned, 2 queued" in dry.stdout and "repaired 2 (" in dry.stdout
    real = runner.invoke(main, ["collect", "claude"], env=env)
    assert real.exit_code == 0, real.output
    assert "claude: 2 scanned, 2 queued" in real.stdout and "repaired 2 (" in real.stdout
    assert set(standin.items) == {f"claude:{BAD_SID}", f"claude:{GOOD_SID}"}
    assert "PASSED \ufffd" in standin.items[f"claude:{BAD_SID}"]["content"]
    # `brain collect status` names every bad record of the last real run (the dry run records nothing)
    status = runner.invoke(main, ["collect", "status"], env=env)
    assert status.exit_code == 0, status.output
    rel = f"-home-dev-poison/{BAD_SID}.jsonl"
    lines = status.stdout.splitlines()
    assert any(ln.startswith("  claude at ") and "2 scanned, 2 queued" in ln for ln in lines), status.stdout
    assert f"    repaired {rel} line 2: 1 lone surrogates replaced with U+FFFD" in lines
    assert f"    repaired {rel} line 3: invalid UTF-8 replaced with U+FFFD" in lines
    assert f"    dropped {rel} line 4: not valid JSON" in lines
    # a clean run replaces the record: nothing bad is left to show
    bad = Path(rel)
    (home / ".claude" / "projects" / bad).unlink()
    assert runner.invoke(main, ["collect", "claude"], env=env).exit_code == 0
    status = runner.invoke(main, ["collect", "status"], env=env).stdout
    assert "repaired" not in status and "dropped" not in status and "  claude at " in status


def test_a_session_that_breaks_the_renderer_is_named_and_the_others_collected(home: Path, make_cfg, state, redactor,
                                                                             monkeypatch) -> None:
    write_poisoned_sessions(home / ".claude" / "projects")
    real = claude.Renderer.render

    def render(self, entries, outputs=None):
        if any(e.get("sessionId") == GOOD_SID for e in entries):
            raise RecursionError("a pathological transcript")
        return real(self, entries, outputs)

    monkeypatch.setattr(claude.Renderer, "render", render)
    sink, stats = run(make_cfg(), state, redactor)
    assert set(sink.items) == {f"claude:{BAD_SID}"}
    assert (f"claude session {GOOD_SID}", "cannot be read: RecursionError") in stats.dropped


def test_a_private_key_in_the_first_prompt_leaves_no_line_of_it_in_the_title(home: Path, make_cfg, state,
                                                                              redactor) -> None:
    """Issue 12: the first prompt was made one line and cut to 120 characters before it was
    redacted: the key lost its END line and its line breaks, and its first lines were sent."""
    sid = "44444444-5555-4666-8777-888888888888"
    body = ["MIIEpAIBAAKCAQEAfakeFAKEfake0123456789abcdefFAKEfakeFAKEfake0123456"] * 20
    key = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END RSA PRIVATE KEY-----"
    jsonl(home / ".claude" / "projects" / SYN_DIR / f"{sid}.jsonl",
          [user(sid, "2026-03-01T10:00:00.000Z", SYN_CWD, "u1", f"Why does this fail?\n{key}\nplease check")])
    sink, _ = run(make_cfg(), state, redactor)
    title = sink.items[f"claude:{sid}"]["title"]
    assert title == "Why does this fail? [REDACTED:private_key] please check"


def test_clipping_never_cuts_through_a_token() -> None:
    token = "ghp_" + "A1b2C3d4" * 5
    text = "x " * 990 + token + " tail"
    clipped = claude._clip(text, 2000)
    assert token not in clipped and "ghp_" not in clipped and clipped.endswith("more chars]")
    assert claude._clip("y" * 3000, 2000).startswith("y" * 2000)  # no boundary nearby: a hard cut


def test_one_transcript_is_collected_as_the_full_run_collects_it(projects, make_cfg, state, redactor,
                                                                 tmp_path) -> None:
    from brain.collect.outbox import State

    cfg = make_cfg()
    other = State(tmp_path / "full.db")
    full, _ = run(cfg, other, redactor)
    other.close()
    archive = Archive(tmp_path / "archive")
    for sid in (MAIN_SID, LEGACY_SID):  # subagents/ with sidecars; a legacy agent-*.jsonl beside the session
        sink = RecordingSink(state)
        stats = claude.collect_transcript(cfg, state, sink, redactor, archive, projects / SYN_DIR / f"{sid}.jsonl")
        assert (stats.scanned, stats.errors) == (1, []) and list(sink.items) == [f"claude:{sid}"]
        assert sink.items[f"claude:{sid}"] == full.items[f"claude:{sid}"]
    assert {rel for _, rel in archive.files()} >= {f"{SYN_DIR}/{MAIN_SID}.jsonl",
                                                    f"{SYN_DIR}/{MAIN_SID}/subagents/agent-a1b2c3d.jsonl"}
    archive.close()
    again = claude.collect_transcript(cfg, state, RecordingSink(state), redactor, None,
                                      projects / SYN_DIR / f"{MAIN_SID}.jsonl")
    assert (again.scanned, again.unchanged) == (0, 1)
    later, stats = run(cfg, state, redactor)  # the next cron run finds both unchanged
    assert f"claude:{MAIN_SID}" not in later.items and f"claude:{LEGACY_SID}" not in later.items
    assert SHORT in later.items

    agent = claude.collect_transcript(cfg, state, RecordingSink(state), redactor, None,
                                      projects / SYN_DIR / "agent-a123456.jsonl")
    assert "is not a session transcript" in agent.errors[0]
    for gone in (projects / SYN_DIR / "x.jsonl", projects / "no-such-folder" / "x.jsonl"):
        stats = claude.collect_transcript(cfg, state, RecordingSink(state), redactor, None, gone)
        assert stats.errors == [] and stats.warnings == [f"claude: no transcript at {gone} (nothing written yet?)"]
