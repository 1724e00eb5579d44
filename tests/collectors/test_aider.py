"""Aider chat histories, as ``aider/io.py`` writes them (see ``brain.collect.aider``)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from brain.collect import agents, aider, coding_agents
from brain.collect.archive import Archive
from brain.shared import timeutil

from .agent_homes import AIDER_HISTORY
from .conftest import RecordingSink


def run(cfg, state, redactor, archive=None) -> tuple[RecordingSink, agents.RunStats]:
    sink = RecordingSink(state)
    return sink, coding_agents.collect(cfg, state, sink, redactor, archive, only=("aider",))


def write_repo(root: Path, text: str = AIDER_HISTORY) -> Path:
    repo = root / "code" / "tool"
    repo.mkdir(parents=True)
    (repo / aider.FILE).write_bytes(text.encode())
    return repo


def test_sessions_split_at_each_start_and_quoted_lines_are_tool_output(home: Path, make_cfg, state,
                                                                       redactor) -> None:
    repo = write_repo(home)
    sink, stats = run(make_cfg(files_roots=[str(home / "code")]), state, redactor)
    assert stats.name == "agents [aider]" and stats.errors == [] and len(sink.items) == 2
    first, second = sorted(sink.items.values(), key=lambda i: i["created_at"])
    c = first["content"]
    assert c.startswith("result (aider): /home/dev/.local/bin/aider --model sonnet\nAider v0.86.1")
    # a two-line prompt is one user message; `>` lines are never the user's
    assert "user: add a --verbose flag to cli.py\nand document it in the README" in c
    assert "assistant: I'll add the flag and a README line.\n\ncli.py\n```python" in c
    assert "result (aider): Tokens: 2.1k sent" in c and "Applied edit to cli.py" in c
    assert "tool run: pytest -q" in c and "user: Tokens" not in c and "user: Aider" not in c
    assert first["meta"]["user_messages"] == 1 and first["meta"]["tool_calls"] == 1
    assert first["title"] == "add a --verbose flag to cli.py and document it in the README"
    assert second["content"] == ("user: why does the test for --verbose fail?\n"
                                 "assistant: Because `main()` never reads the flag.")
    # local time without a zone: read in this machine's zone
    assert first["created_at"] == timeutil.fmt(datetime(2026, 5, 5, 14, 3, 11).astimezone())
    assert first["project"] == str(repo) and first["meta"]["resume"] == f"cd {repo} && aider --restore-chat-history"
    assert first["id"] == f"agent:aider:{aider.file_key(repo / aider.FILE)}:20260505T140311"


def test_growing_history_keeps_ids_and_resends_only_the_changed_session(home: Path, make_cfg, state,
                                                                         redactor) -> None:
    repo = write_repo(home)
    cfg = make_cfg(aider_roots=[str(home)])
    sink, _ = run(cfg, state, redactor)
    before = set(sink.items)
    with (repo / aider.FILE).open("a") as fh:
        fh.write("\n#### and the man page?  \n\nAdded it.\n")
    sink, _ = run(cfg, state, redactor)
    assert set(sink.items) == before
    last = max(sink.items.values(), key=lambda i: i["created_at"])
    assert last["content"].endswith("user: and the man page?\nassistant: Added it.")


def test_a_file_with_bad_bytes_and_no_header_is_still_read(home: Path, make_cfg, state, redactor) -> None:
    write_repo(home, "")
    (home / "code" / "tool" / aider.FILE).write_bytes(b"#### hello \xff\n\nhi\n# aider chat started at 2026-13-45 "
                                                      b"99:99:99\n\n#### bad date\n")
    sink, stats = run(make_cfg(files_roots=[str(home / "code")]), state, redactor)
    # text before any header is a session; an impossible start time gives no time, and the ids stay apart
    key = aider.file_key(home / "code" / "tool" / aider.FILE)
    assert {i: v["content"] for i, v in sink.items.items()} == {
        f"agent:aider:{key}:start": "user: hello \ufffd\nassistant: hi", f"agent:aider:{key}:start-2": "user: bad date"}
    assert [why for _, why in stats.repaired] == ["invalid UTF-8 replaced with U+FFFD"]


def test_skipped_and_hidden_folders_are_not_searched(home: Path, make_cfg, state, redactor) -> None:
    for folder in ("node_modules/pkg", ".cache/x"):
        (home / "code" / folder).mkdir(parents=True)
        (home / "code" / folder / aider.FILE).write_text(AIDER_HISTORY)
    sink, stats = run(make_cfg(files_roots=[str(home / "code")]), state, redactor)
    assert sink.items == {} and stats.name == "agents [none found]"


def test_the_search_is_bounded_in_depth_and_never_stats_each_file(home: Path, monkeypatch) -> None:
    """AIDER_DEPTH folders below a root and no deeper, symlinked folders not followed, and a folder
    of many files costs its listing only (the home scan took 1 s for a 40,000-entry home when
    every entry was stat'ed; 0.2 s with the listing's own file types)."""
    root = home / "code"
    shallow = root / "a" / "b" / "c" / "d"  # 4 below the root: found
    deep = shallow / "e"  # 5 below: not searched
    for repo in (shallow, deep):
        repo.mkdir(parents=True)
        (repo / aider.FILE).write_text(AIDER_HISTORY)
    (root / "link").symlink_to(shallow, target_is_directory=True)
    downloads = root / "downloads"
    downloads.mkdir()
    for i in range(500):
        (downloads / f"file{i}.bin").touch()
    stats: list[str] = []
    real_stat = os.stat

    def counting_stat(path, *args, **kw):
        stats.append(str(path))
        return real_stat(path, *args, **kw)

    monkeypatch.setattr(os, "stat", counting_stat)
    found = list(aider._find(root, set()))
    monkeypatch.setattr(os, "stat", real_stat)
    assert found == [shallow / aider.FILE]
    assert not [p for p in stats if p.startswith(str(downloads) + "/")], stats[:5]


def test_a_pasted_ini_password_is_redacted_in_the_item_and_in_the_archived_history(home: Path, make_cfg, state,
                                                                                  redactor, tmp_path: Path) -> None:
    """Issue 12: the archive keeps the history as Aider wrote it, each prompt line after
    ``#### ``, and there an INI section was not seen as one (a password of words needs it)."""
    prompt = ["why is the login refused?", "[database]", "host = db.internal.example", "password = MarbleCanyonViolet"]
    write_repo(home, "\n# aider chat started at 2026-05-05 14:03:11\n\n#### " + "  \n#### ".join(prompt) + "  \n\n"
               "The password is read from the [database] section.\n\n")
    archive = Archive(tmp_path / "archive")
    sink, _ = run(make_cfg(files_roots=[str(home / "code")]), state, redactor, archive)
    (item,) = sink.items.values()
    assert "MarbleCanyonViolet" not in item["content"] and "password = [REDACTED:" in item["content"]
    (key, rel), = archive.files()
    stored = archive.read(key, rel)
    archive.close()
    assert b"MarbleCanyonViolet" not in stored and b"#### password = [REDACTED:secret_assignment]  \n" in stored
