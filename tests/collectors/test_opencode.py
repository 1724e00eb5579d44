"""opencode sessions, in the database and the older JSON files as opencode writes them (see
``brain.collect.opencode``)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from brain.collect import agents, browser, coding_agents, opencode
from brain.collect.archive import Archive
from brain.collect.outbox import OutboxSink, State

from .agent_homes import (
    MS,
    OC_CHILD,
    OC_DIR,
    OC_OLD,
    OC_PROJECT,
    OC_SID,
    insert_messages,
    oc_assistant,
    oc_part,
    oc_tool,
    oc_user,
    write_opencode_db,
    write_opencode_json,
)
from .conftest import RecordingSink

ID = f"agent:opencode:{OC_SID}"
SECRET = "ghp_" + "Zq9Xw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0EdCbA9"


@pytest.fixture
def state2(tmp_path: Path) -> Iterator[State]:
    """A second, fresh collectors' state (another machine's first run)."""
    st = State(tmp_path / "state2" / "collect.db")
    yield st
    st.close()


def run(cfg, state, redactor, archive=None) -> tuple[RecordingSink, agents.RunStats]:
    sink = RecordingSink(state)
    return sink, coding_agents.collect(cfg, state, sink, redactor, archive, only=("opencode",))


def outbox(cfg, state, redactor) -> agents.RunStats:
    return coding_agents.collect(cfg, state, OutboxSink(state), redactor, None, only=("opencode",))


def body(state, item_id: str) -> str:
    return state.conn.execute("SELECT body FROM outbox WHERE item_id = ?", (item_id,)).fetchone()[0]


def add_turn(db: Path, text: str, t: int = MS + 300_000) -> None:
    """What opencode does when the session goes on: new message and part rows, committed."""
    conn = sqlite3.connect(db)
    insert_messages(conn, OC_SID, [(oc_user("msg_10", OC_SID, t), [oc_part("prt_10", "msg_10", OC_SID, "text", text=text)])])
    conn.execute("UPDATE session SET time_updated = ? WHERE id = ?", (t, OC_SID))
    conn.commit()
    conn.close()


def test_a_session_in_the_database_reads_like_a_claude_session(home: Path, make_cfg, state, state2,
                                                               redactor) -> None:
    write_opencode_db(home)
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.name == "agents [opencode]" and stats.errors == [] and stats.dropped == []
    it = sink.items[ID]
    c = it["content"]
    assert it["source"] == "agent" and it["uri"] == f"opencode://session/{OC_SID}" and it["project"] == OC_DIR
    assert it["title"] == "Fix the cart total"
    assert it["created_at"] == "2026-05-05T16:53:19.500Z" and it["updated_at"] == "2026-05-05T16:56:20.900Z"
    # the user's words, not opencode's synthetic file read nor an ignored draft
    assert c.startswith("user: the cart total ignores discounts, see @src/cart.py\nassistant: Reading the cart")
    assert "Called the Read tool" not in c and "ignored draft" not in c
    assert "tool read: /home/dev/shop/src/cart.py\nresult (read): def total(items):" in c
    assert "tool bash: pytest -q tests/test_cart.py\nresult (bash, error): 1 failed, 3 passed" in c
    # the compaction: its boundary and the summary message in place, never as the assistant's words
    assert c.index("result (bash, error)") < c.index("--- context compacted ---") < \
        c.index("[summary of the conversation so far] Summary: cart.total ignored discounts") < \
        c.index("user: fix it and add a test")
    assert "assistant: Summary:" not in c
    assert "tool task: Write the discount test\nresult (task): Wrote tests/test_cart.py" in c
    assert "tool edit: /home/dev/shop/src/cart.py\nassistant: Fixed total()" in c  # still running: no result
    assert c.endswith("error: The operation was aborted.")
    assert "total() never calls" not in c  # reasoning only with collect.include_thinking
    m = it["meta"]
    assert m["agent"] == "opencode" and m["resume"] == f"opencode --session {OC_SID}" and m["session_id"] == OC_SID
    assert m["user_messages"] == 2 and m["tool_calls"] == 4 and m["agent_version"] == "1.2.6"
    assert m["model"] == "anthropic/claude-sonnet-4-5"  # the last assistant message's
    assert m["models"] == ["anthropic/claude-opus-4-1", "anthropic/claude-sonnet-4-5"] and m["files"] == ["opencode.db"]
    # the sub-agent's session: an item of its own, its placeholder title replaced by its prompt
    child = sink.items[f"agent:opencode:{OC_CHILD}"]
    assert child["title"] == "write tests/test_cart.py" and child["meta"]["parent_session"] == OC_SID
    assert child["content"] == "user: write tests/test_cart.py\nassistant: Wrote tests/test_cart.py"
    sink, _ = run(make_cfg(include_thinking=True), state2, redactor)
    assert "thinking: total() never calls apply_discount" in sink.items[ID]["content"]


def test_json_files_before_the_database_and_a_session_in_both(home: Path, make_cfg, state, state2,
                                                              redactor) -> None:
    storage = write_opencode_json(home)
    sink, stats = run(make_cfg(), state, redactor)
    old = sink.items[f"agent:opencode:{OC_OLD}"]
    assert stats.name == "agents [opencode]" and stats.dropped == []
    assert old["content"] == ("user: rename the legacy module\ntool glob: **/legacy*.py\nresult (glob): src/legacy_io.py\n"
                              "assistant: Renamed src/legacy_io.py to src/io_compat.py.")
    assert old["title"] == "rename the legacy module"  # "New session - <time>" is a placeholder
    assert old["project"] == "/home/dev/legacy"  # no directory: the project's worktree
    assert old["created_at"] == "2026-05-04T13:06:40.000Z" and old["meta"]["agent_version"] == "0.15.2"
    # opencode moved its JSON into the database and left the files: the database's copy counts
    write_opencode_db(home)
    write_opencode_json(home, OC_SID)
    sink, stats = run(make_cfg(), state2, redactor)
    assert sink.items[ID]["title"] == "Fix the cart total" and sink.items[ID]["meta"]["files"] == ["opencode.db"]
    assert set(sink.items) == {ID, f"agent:opencode:{OC_CHILD}", f"agent:opencode:{OC_OLD}"}
    assert stats.skipped["empty"] == 1
    # a JSON copy that changes later, while the database did not (so it is not read): still told apart
    copy = storage / "session" / OC_PROJECT / f"{OC_SID}.json"
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 10**9))
    sink, stats = run(make_cfg(), state2, redactor)
    assert sink.items == {} and stats.skipped["empty"] == 1


def test_incremental_and_idempotent(home: Path, make_cfg, state, redactor) -> None:
    db = write_opencode_db(home)
    cfg = make_cfg()
    assert outbox(cfg, state, redactor).queued == 2
    stats = outbox(cfg, state, redactor)
    assert (stats.scanned, stats.queued, stats.unchanged) == (0, 0, 1)  # the database unchanged: not even copied
    add_turn(db, "one more thing")
    stats = outbox(cfg, state, redactor)
    assert (stats.scanned, stats.queued, stats.unchanged) == (1, 1, 1)  # the child session's rows did not change
    assert "user: one more thing" in body(state, ID)
    os.utime(db, ns=(db.stat().st_atime_ns, db.stat().st_mtime_ns + 10**9))  # touched, no row changed
    stats = outbox(cfg, state, redactor)
    assert (stats.scanned, stats.queued, stats.unchanged) == (0, 0, 2)
    # a part written again with the same content (opencode stamps each write): read again, not re-sent
    conn = sqlite3.connect(db)
    conn.execute("UPDATE part SET time_updated = ? WHERE id = 'prt_02c'", (MS + 900_000,))
    conn.commit()
    conn.close()
    stats = outbox(cfg, state, redactor)
    assert (stats.scanned, stats.queued, stats.unchanged) == (1, 0, 2)


def test_secrets_redacted_in_item_and_archive_which_never_holds_the_database(home: Path, make_cfg, state, redactor,
                                                                          tmp_path: Path) -> None:
    db = write_opencode_db(home)
    conn = sqlite3.connect(db)
    t = MS + 400_000
    insert_messages(conn, OC_SID, [
        (oc_user("msg_20", OC_SID, t), [oc_part("prt_20", "msg_20", OC_SID, "text", text=f"use the token {SECRET} please")]),
        (oc_assistant("msg_21", OC_SID, t + 10, "msg_20"), [
            oc_tool("prt_21", "msg_21", OC_SID, "bash", {"command": "cat .env"}, "completed", t + 20,
                    output=f"GITHUB_TOKEN={SECRET}\n")])])
    conn.commit()
    conn.close()
    archive = Archive(tmp_path / "archive")
    sink, _ = run(make_cfg(), state, redactor, archive)
    item = sink.items[ID]
    assert SECRET not in json.dumps(item) and item["content"].count("[REDACTED:") == 2
    assert "user: use the token [REDACTED:" in item["content"] and "result (bash): GITHUB_TOKEN=[REDACTED:" in item["content"]
    files = dict((rel, key) for key, rel in archive.files())
    assert set(files) == {f"opencode.db/{OC_SID}.jsonl", f"opencode.db/{OC_CHILD}.jsonl"}  # never the database
    stored = archive.read(files[f"opencode.db/{OC_SID}.jsonl"], f"opencode.db/{OC_SID}.jsonl")
    archive.close()
    assert SECRET.encode() not in stored and b"the cart total ignores discounts" in stored
    records = [json.loads(line) for line in stored.splitlines()]
    assert list(records[0]) == ["session"] and records[0]["session"]["title"] == "Fix the cart total"
    assert {next(iter(r)) for r in records[1:]} == {"message", "part"}


def test_bad_rows_and_files_are_named_and_the_rest_collected(home: Path, make_cfg, state, redactor) -> None:
    db = write_opencode_db(home)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE message SET data = '{\"role\": \"user\", broken' WHERE id = 'msg_05'")
    conn.execute("UPDATE part SET data = '[1, 2]' WHERE id = 'prt_02e'")
    conn.execute("UPDATE part SET data = CAST(? AS BLOB) WHERE id = 'prt_02c'",
                 (b'{"type":"text","text":"Reading the caf\xe9 module"}',))  # invalid UTF-8
    conn.execute("UPDATE part SET data = ? WHERE id = 'prt_06c'", ('{"type":"text","text":"half \\ud83d"}',))
    conn.commit()
    conn.close()
    storage = write_opencode_json(home)
    broken = next((storage / "part").rglob("prt_o2a.json"))
    broken.write_text('{"type": "tool", "tool": ')
    sink, stats = run(make_cfg(), state, redactor)
    c = sink.items[ID]["content"]
    assert "assistant: Reading the caf\ufffd module" in c and "assistant: half \ufffd" in c
    assert "user: fix it and add a test" not in c and "pytest -q" not in c and "tool read:" in c  # the rest is there
    assert sorted(stats.dropped) == sorted([("opencode.db message msg_05", "not valid JSON"),
                                            ("opencode.db part prt_02e", "not a JSON object"),
                                            (broken.relative_to(storage).as_posix(), "not valid JSON")])
    assert sorted(w for w, _ in stats.repaired) == ["opencode.db part prt_02c", "opencode.db part prt_06c"]
    assert sink.items[ID]["meta"]["skipped_lines"] == 2
    assert sink.items[f"agent:opencode:{OC_OLD}"]["content"].startswith("user: rename the legacy module\nassistant:")


def test_one_session_that_cannot_be_read_stops_nothing(home: Path, make_cfg, state, redactor, monkeypatch) -> None:
    write_opencode_db(home)
    real = opencode.make_session

    def make(sid, *args, **kwargs):
        if sid == OC_SID:
            raise RecursionError("pathological")
        return real(sid, *args, **kwargs)

    monkeypatch.setattr(opencode, "make_session", make)
    sink, stats = run(make_cfg(), state, redactor)
    assert set(sink.items) == {f"agent:opencode:{OC_CHILD}"}
    assert stats.dropped == [(f"opencode opencode.db session {OC_SID}", "cannot be read: RecursionError")]
    monkeypatch.setattr(opencode, "make_session", real)
    sink, _ = run(make_cfg(), state, redactor)  # not remembered: read again next run
    assert set(sink.items) == {ID}


def test_a_database_being_written_is_read_as_of_its_last_commit(home: Path, make_cfg, state, redactor) -> None:
    db = write_opencode_db(home)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")  # committed rows stay in opencode.db-wal
    insert_messages(writer, OC_SID, [(oc_user("msg_30", OC_SID, MS + 500_000),
                                      [oc_part("prt_30", "msg_30", OC_SID, "text", text="committed, only in the wal")])])
    writer.execute("BEGIN IMMEDIATE")  # opencode mid-write: rows not committed yet
    insert_messages(writer, OC_SID, [(oc_user("msg_31", OC_SID, MS + 600_000),
                                      [oc_part("prt_31", "msg_31", OC_SID, "text", text="not committed yet")])])
    assert db.with_name("opencode.db-wal").stat().st_size > 0
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.errors == [] and "user: committed, only in the wal" in sink.items[ID]["content"]
    assert "not committed yet" not in sink.items[ID]["content"]
    writer.execute("COMMIT")
    sink, _ = run(make_cfg(), state, redactor)
    assert sink.items[ID]["content"].endswith("user: not committed yet")
    writer.close()


def test_a_commit_during_the_copy_is_copied_again(home: Path, make_cfg, state, redactor, monkeypatch) -> None:
    db = write_opencode_db(home)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    real = browser.shutil.copyfile
    copies: list[str] = []

    def copyfile(src, dst):
        copies.append(Path(src).name)
        out = real(src, dst)
        if copies == ["opencode.db"]:  # opencode commits between copying the database and its -wal
            insert_messages(writer, OC_SID, [(oc_user("msg_40", OC_SID, MS + 700_000),
                                              [oc_part("prt_40", "msg_40", OC_SID, "text", text="written mid-copy")])])
        return out

    monkeypatch.setattr(browser.shutil, "copyfile", copyfile)
    sink, stats = run(make_cfg(), state, redactor)
    writer.close()
    assert copies.count("opencode.db") == 2 and stats.errors == []
    assert sink.items[ID]["content"].endswith("user: written mid-copy")


def test_xdg_data_home_opencode_db_and_nothing_found(home: Path, make_cfg, state, redactor, monkeypatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "nowhere"))
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.name == "agents [none found]" and sink.items == {}
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    db = write_opencode_db(tmp_path / "data" / "x")  # writes under <home>/.local/share/opencode
    target = tmp_path / "data" / "opencode"
    target.mkdir(parents=True)
    os.replace(db, target / "opencode-dev.db")  # another release channel's database
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.name == "agents [opencode]" and sink.items[ID]["meta"]["files"] == ["opencode-dev.db"]
    monkeypatch.setenv("OPENCODE_DB", str(tmp_path / "elsewhere.db"))
    os.replace(target / "opencode-dev.db", tmp_path / "elsewhere.db")
    assert opencode.databases(target) == [tmp_path / "elsewhere.db"]
