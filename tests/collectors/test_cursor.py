"""Cursor chats, in state.vscdb databases shaped as Cursor's open readers document them (see
``brain.collect.cursor``)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from brain.cli.main import main
from brain.client.http import ApiClient
from brain.collect import agents, coding_agents, cursor
from brain.collect.archive import Archive
from brain.collect.outbox import OutboxSink, State

from .agent_homes import (
    CURSOR_CID,
    CURSOR_DIR,
    CURSOR_INLINE,
    CURSOR_NOHINT,
    CURSOR_TAB,
    CURSOR_WS_DIR,
    OC_CHILD,
    OC_SID,
    bubble,
    cursor_chat,
    cursor_user,
    lexical,
    tool_bubble,
    write_cursor,
    write_opencode_db,
)
from .conftest import RecordingSink

ID = f"agent:cursor:{CURSOR_CID}"
SECRET = "ghp_" + "Zq9Xw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0EdCbA9"


@pytest.fixture
def state2(tmp_path: Path) -> Iterator[State]:
    """A second, fresh collectors' state."""
    st = State(tmp_path / "state2" / "collect.db")
    yield st
    st.close()


def run(cfg, state, redactor, archive=None) -> tuple[RecordingSink, agents.RunStats]:
    sink = RecordingSink(state)
    return sink, coding_agents.collect(cfg, state, sink, redactor, archive, only=("cursor",))


def global_db(home: Path) -> Path:
    return cursor_user(home) / "globalStorage" / "state.vscdb"


def put(db: Path, key: str, value: object) -> None:
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO cursorDiskKV VALUES (?, ?)", (key, value if isinstance(value, str | bytes) else json.dumps(value)))
    conn.commit()
    conn.close()


def add_message(home: Path, b: dict) -> None:
    """What Cursor does for a new message: its bubble row, and the chat's headers rewritten."""
    composer, bubbles = cursor_chat()
    composer["fullConversationHeadersOnly"].append({"bubbleId": b["bubbleId"], "type": b["type"]})
    composer["lastUpdatedAt"] += 60_000
    put(global_db(home), f"bubbleId:{CURSOR_CID}:{b['bubbleId']}", b)
    put(global_db(home), f"composerData:{CURSOR_CID}", composer)


def test_a_chat_reads_like_a_claude_session(home: Path, make_cfg, state, state2, redactor) -> None:
    write_cursor(home)
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.name == "agents [cursor]" and stats.errors == [] and stats.dropped == []
    it = sink.items[ID]
    assert it["source"] == "agent" and it["uri"] == f"cursor://session/{CURSOR_CID}"
    assert it["title"] == "Flaky login test" and it["project"] == CURSOR_DIR  # workspaceProjectDir
    assert it["created_at"] == "2026-05-06T09:00:00.000Z" and it["updated_at"] == "2026-05-06T09:05:01.000Z"
    assert it["content"] == "\n".join([
        "user: the login test is flaky, find out why",
        "assistant: Let me run it a few times.",
        "tool run_terminal_cmd: npm test -- login.spec.ts",
        "result (run_terminal_cmd, error): 1 failing: expected 200, got 401",
        "tool read_file: src/auth/session.ts",
        "result (read_file): export const COOKIE = 'sid'",
        "assistant: The cookie is set after the redirect; I moved it before.",
        "user: great, commit it",
        "tool run_terminal_cmd: git commit -am 'fix login'",
        "result (run_terminal_cmd, error): rejected by the user",
    ])
    m = it["meta"]
    assert m["agent"] == "cursor" and "resume" not in m and m["session_id"] == CURSOR_CID
    assert m["user_messages"] == 2 and m["tool_calls"] == 3 and m["model"] == "claude-4.5-sonnet-thinking"
    assert m["skipped_lines"] == 1 and m["files"] == ["globalStorage/state.vscdb"]  # the header Cursor pruned
    sink, _ = run(make_cfg(include_thinking=True), state2, redactor)
    assert "thinking: probably a race on the session cookie\nassistant: Let me run it" in sink.items[ID]["content"]


def test_a_workspace_names_the_folder_and_older_formats_are_read(home: Path, make_cfg, state, redactor) -> None:
    write_cursor(home)
    sink, _ = run(make_cfg(), state, redactor)
    assert set(sink.items) == {ID, f"agent:cursor:{CURSOR_NOHINT}", f"agent:cursor:{CURSOR_INLINE}",
                               f"agent:cursor:{CURSOR_TAB}"}
    # no folder in its messages: the workspace whose composer list holds it (a folder with a space)
    assert sink.items[f"agent:cursor:{CURSOR_NOHINT}"]["project"] == CURSOR_WS_DIR
    inline = sink.items[f"agent:cursor:{CURSOR_INLINE}"]
    assert inline["content"] == "user: explain the build script\nassistant: It bundles src/ with esbuild."
    assert inline["created_at"] == "2025-01-01T10:00:00.000Z" and inline["project"] is None
    tab = sink.items[f"agent:cursor:{CURSOR_TAB}"]
    assert tab["content"] == "user: how do I center a grid item?\nassistant: Use place-self: center."
    assert tab["title"] == "CSS grid question" and tab["project"] == "/home/dev/oldsite"
    assert tab["created_at"] == "2024-01-01T10:00:00.000Z" and tab["meta"]["model"] == "gpt-4"


def test_incremental_and_idempotent(home: Path, make_cfg, state, redactor) -> None:
    write_cursor(home)
    cfg = make_cfg()

    def outbox() -> agents.RunStats:
        return coding_agents.collect(cfg, state, OutboxSink(state), redactor, None, only=("cursor",))

    assert outbox().queued == 4
    stats = outbox()
    assert (stats.scanned, stats.queued, stats.unchanged) == (0, 0, 3)  # three databases, none copied
    add_message(home, bubble("u3", 1, "and the logout test?", "2026-05-06T10:00:00.000Z"))
    stats = outbox()
    assert (stats.scanned, stats.queued, stats.unchanged) == (1, 1, 4)  # one chat read; 2 chats, 2 workspaces not
    body = state.conn.execute("SELECT body FROM outbox WHERE item_id = ?", (ID,)).fetchone()[0]
    assert "user: and the logout test?" in body
    db = global_db(home)
    os.utime(db, ns=(db.stat().st_atime_ns, db.stat().st_mtime_ns + 10**9))  # Cursor saved some UI state
    stats = outbox()
    assert (stats.scanned, stats.queued, stats.unchanged) == (0, 0, 5)


def test_secrets_redacted_in_item_and_archive_which_never_holds_the_database(home: Path, make_cfg, state, redactor,
                                                                          tmp_path: Path) -> None:
    write_cursor(home)
    put(global_db(home), f"bubbleId:{CURSOR_CID}:u3", bubble("u3", 1, f"deploy with the token {SECRET}",
                                                             "2026-05-06T10:00:00.000Z"))
    composer, _ = cursor_chat()
    composer["fullConversationHeadersOnly"] += [{"bubbleId": "u3", "type": 1}, {"bubbleId": "a9", "type": 2}]
    put(global_db(home), f"composerData:{CURSOR_CID}", composer)
    put(global_db(home), f"bubbleId:{CURSOR_CID}:a9", tool_bubble(
        "a9", "2026-05-06T10:00:01.000Z", "run_terminal_cmd", {"command": "env | grep TOKEN"},
        {"output": f"GH_TOKEN={SECRET}", "exitCodeV2": 0}))
    archive = Archive(tmp_path / "archive")
    sink, _ = run(make_cfg(), state, redactor, archive)
    c = sink.items[ID]["content"]
    assert SECRET not in json.dumps(sink.items[ID]) and c.count("[REDACTED:") == 2
    assert "user: deploy with the token [REDACTED:" in c and "result (run_terminal_cmd): GH_TOKEN=[REDACTED:" in c
    files = {rel: key for key, rel in archive.files()}
    assert set(files) == {f"globalStorage/state.vscdb/{cid}.jsonl" for cid in (CURSOR_CID, CURSOR_NOHINT, CURSOR_INLINE)} | {
        f"workspaceStorage/0f9e8d7c6b5a49382716a5b4c3d2e1f0/state.vscdb/{CURSOR_TAB}.jsonl"}
    stored = archive.read(files[f"globalStorage/state.vscdb/{CURSOR_CID}.jsonl"], f"globalStorage/state.vscdb/{CURSOR_CID}.jsonl")
    archive.close()
    assert SECRET.encode() not in stored and b"the login test is flaky" in stored
    keys = [json.loads(line)["key"] for line in stored.splitlines()]
    assert keys[0] == f"composerData:{CURSOR_CID}" and f"bubbleId:{CURSOR_CID}:a9" in keys


def test_the_archive_leaves_out_the_editors_rich_text_copy_of_a_prompt(home: Path, make_cfg, state, redactor,
                                                                        tmp_path: Path) -> None:
    """Issue 12: ``richText`` holds each line of a prompt as a JSON node of its own, where an INI
    section's password of words is no longer seen as one: the archive kept it."""
    write_cursor(home)
    prompt = "why is the login refused?\n[database]\nhost = db.internal.example\npassword = MarbleCanyonViolet"
    put(global_db(home), f"bubbleId:{CURSOR_CID}:u3", bubble("u3", 1, prompt, "2026-05-06T10:00:00.000Z") |
        {"richText": lexical(prompt)})
    composer, _ = cursor_chat()
    composer["fullConversationHeadersOnly"].append({"bubbleId": "u3", "type": 1})
    composer["richText"] = lexical("a draft: password = MarbleCanyonViolet")
    put(global_db(home), f"composerData:{CURSOR_CID}", composer)
    archive = Archive(tmp_path / "archive")
    sink, _ = run(make_cfg(), state, redactor, archive)
    assert "MarbleCanyonViolet" not in sink.items[ID]["content"] and "password = [REDACTED:" in sink.items[ID]["content"]
    rel = f"globalStorage/state.vscdb/{CURSOR_CID}.jsonl"
    stored = archive.read(next(k for k, r in archive.files() if r == rel), rel)
    archive.close()
    assert b"MarbleCanyonViolet" not in stored and b"richText" not in stored and b"why is the login refused?" in stored


def test_bad_rows_are_named_and_the_rest_collected(home: Path, make_cfg, state, redactor) -> None:
    user = write_cursor(home)
    db = global_db(home)
    put(db, f"bubbleId:{CURSOR_CID}:a3", '{"type": 2, "text": broken')
    put(db, f"bubbleId:{CURSOR_CID}:a4", b'{"type":2,"text":"The cookie \xff is set late."}')  # invalid UTF-8
    put(db, f"composerData:{CURSOR_NOHINT}", "[]")
    wdb = next(user.glob("workspaceStorage/0f9e*/state.vscdb"))
    conn = sqlite3.connect(wdb)
    conn.execute("UPDATE ItemTable SET value = '{\"tabs\": [' WHERE key = ?", (cursor.CHATDATA,))
    conn.commit()
    conn.close()
    sink, stats = run(make_cfg(), state, redactor)
    c = sink.items[ID]["content"]
    assert "read_file" not in c and "assistant: The cookie \ufffd is set late." in c and "user: great, commit it" in c
    ws = wdb.relative_to(user).as_posix()
    assert sorted(stats.dropped) == sorted([
        (f"globalStorage/state.vscdb bubbleId:{CURSOR_CID}:a3", "not valid JSON"),
        (f"globalStorage/state.vscdb composerData:{CURSOR_NOHINT}", "not a JSON object"),
        (f"{ws} {cursor.CHATDATA}", "not valid JSON")])
    assert stats.repaired == [(f"globalStorage/state.vscdb bubbleId:{CURSOR_CID}:a4", "invalid UTF-8 replaced with U+FFFD")]
    assert set(sink.items) == {ID, f"agent:cursor:{CURSOR_INLINE}"}


def test_one_chat_that_cannot_be_read_stops_nothing(home: Path, make_cfg, state, redactor, monkeypatch) -> None:
    write_cursor(home)
    real = cursor.Chat.build

    def build(self):
        if self.cid == CURSOR_CID:
            raise RecursionError("pathological")
        return real(self)

    monkeypatch.setattr(cursor.Chat, "build", build)
    sink, stats = run(make_cfg(), state, redactor)
    assert ID not in sink.items and len(sink.items) == 3
    assert stats.dropped == [(f"cursor globalStorage/state.vscdb composerData:{CURSOR_CID}", "cannot be read: RecursionError")]


def test_a_database_locked_mid_write_is_read_as_of_its_last_commit(home: Path, make_cfg, state, redactor) -> None:
    """VS Code's storage uses a rollback journal: a writer holds an exclusive lock and its
    uncommitted pages may already be in the file. The copy (with the hot journal) is rolled back."""
    write_cursor(home)
    db = global_db(home)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA cache_size = 1")  # spill uncommitted pages into the database file
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO cursorDiskKV VALUES (?, ?)", (f"bubbleId:{CURSOR_CID}:z1", json.dumps(
        bubble("z1", 1, "not committed " + "x" * 200_000, "2026-05-06T11:00:00Z"))))
    composer, _ = cursor_chat()
    composer["fullConversationHeadersOnly"].append({"bubbleId": "z1", "type": 1})
    writer.execute("INSERT INTO cursorDiskKV VALUES (?, ?)", (f"composerData:{CURSOR_CID}", json.dumps(composer)))
    assert db.with_name("state.vscdb-journal").exists()
    try:
        sqlite3.connect(db, timeout=0).execute("SELECT count(*) FROM cursorDiskKV").fetchone()
        raise AssertionError("the live database should be locked")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.errors == [] and "not committed" not in sink.items[ID]["content"]
    assert sink.items[ID]["content"].endswith("rejected by the user")
    writer.execute("COMMIT")
    writer.close()
    sink, _ = run(make_cfg(), state, redactor)
    assert "user: not committed xxx" in sink.items[ID]["content"]


def test_macos_and_xdg_config_home_and_nothing_found(home: Path, make_cfg, state, redactor, monkeypatch,
                                                      tmp_path: Path) -> None:
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.name == "agents [none found]"
    user = write_cursor(home)
    mac = home / "Library" / "Application Support" / "Cursor" / "User"
    mac.parent.mkdir(parents=True)
    os.replace(user, mac)
    assert cursor.roots(make_cfg()) == [mac]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    (tmp_path / "cfg" / "Cursor").mkdir(parents=True)
    os.replace(mac, tmp_path / "cfg" / "Cursor" / "User")
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.name == "agents [cursor]" and ID in sink.items


@pytest.mark.e2e
def test_brain_collect_agents_and_all_into_brain_api(home: Path, runner: CliRunner, api_server_fast_embed) -> None:
    """The real CLI into the real brain-api: the run names the agents it found, the items land
    in the store as source ``agent``, and a second run (``collect all``) sends nothing again."""
    server = api_server_fast_embed
    write_cursor(home)
    write_opencode_db(home)
    env = {"BRAIN_API_URL": server.url, "BRAIN_TOKEN": server.token}
    result = runner.invoke(main, ["collect", "agents"], env=env)
    assert result.exit_code == 0, result.output
    assert "agents [opencode, cursor]: 6 scanned, 6 queued, 0 unchanged" in result.stdout
    client = ApiClient(server.url, server.token)
    ids = {it["id"] for it in client.list_items(source="agent", limit=50)["items"]}
    assert ids == {ID, f"agent:cursor:{CURSOR_NOHINT}", f"agent:cursor:{CURSOR_INLINE}", f"agent:cursor:{CURSOR_TAB}",
                   f"agent:opencode:{OC_SID}", f"agent:opencode:{OC_CHILD}"}
    stored = client.get_item(f"agent:opencode:{OC_SID}")
    assert stored["meta"]["resume"] == f"opencode --session {OC_SID}" and stored["project"] == "/home/dev/shop"
    assert client.get_item(ID)["content"].startswith("user: the login test is flaky")
    result = runner.invoke(main, ["collect", "all"], env=env)
    assert result.exit_code == 0, result.output
    assert "agents [opencode, cursor]: 0 scanned, 0 queued, 4 unchanged" in result.stdout
