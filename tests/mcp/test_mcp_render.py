"""How results say where an item lives when collectors leave out metadata (no server needed)."""

from __future__ import annotations

import pytest

from brain.mcp import render


def test_claude_session_without_meta_resumes_from_its_id_and_cwd() -> None:
    item = {"id": "claude:abc-123", "source": "claude", "project": None,
            "meta": {"cwd": "/home/dev/my project"}}
    loc = render.locate(item)
    assert loc["session_id"] == "abc-123" and loc["resume"] == "claude --resume abc-123"
    assert loc["project"] == "/home/dev/my project"
    assert loc["open"] == "cd '/home/dev/my project' && claude --resume abc-123"  # quoted for the shell


def test_claude_session_without_any_project_is_just_the_resume_command() -> None:
    loc = render.locate({"id": "claude:abc-123", "source": "claude", "meta": {"resume": "claude --resume abc-123"}})
    assert loc["open"] == "claude --resume abc-123" and loc["project"] is None


def test_browser_visit_times_prefer_the_collectors_keys() -> None:
    item = {"id": "browser:Default:1", "source": "browser", "uri": "https://example.org/a",
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-02-01T00:00:00.000Z",
            "meta": {"last_visit_at": "2026-02-03T04:05:06.000Z"}}
    loc = render.locate(item)
    assert loc["visited_at"] == "2026-02-03T04:05:06.000Z" and loc["first_visited_at"] == "2026-01-01T00:00:00.000Z"
    assert "visit_count" not in loc and loc["open"] == "https://example.org/a"


@pytest.mark.parametrize(("item", "chunk", "expected"), [
    ({"id": "file:laptop:/src/app.py", "source": "file"}, {"start_line": 3, "end_line": 9},
     ("/src/app.py", "laptop", "/src/app.py:3-9")),
    ({"id": "file:laptop:/src/app.py", "source": "file"}, None, ("/src/app.py", "laptop", "/src/app.py")),
    ({"id": "file:laptop:/src/a:b.py", "source": "file"}, {"start_line": None, "end_line": None},
     ("/src/a:b.py", "laptop", "/src/a:b.py")),
    ({"id": "file:x:/ignored", "source": "file", "meta": {"path": "/real/p.py", "host": "box"}}, None,
     ("/real/p.py", "box", "/real/p.py")),
])
def test_file_path_host_and_lines(item: dict, chunk: dict | None, expected: tuple[str, str, str]) -> None:
    loc = render.locate(item, chunk)
    assert (loc["path"], loc["host"], loc["open"]) == expected


def test_notes_open_by_uri_or_by_get_item() -> None:
    assert render.locate({"id": "note:a", "source": "note", "uri": "https://wiki/a"})["open"] == "https://wiki/a"
    assert render.locate({"id": "note:a", "source": "note"})["open"] == "get_item(id='note:a')"


def test_text_helpers() -> None:
    assert render.short_time("2026-02-10T22:00:00.000Z") == "2026-02-10 22:00Z"
    assert render.short_time("2026-02-10") == "2026-02-10" and render.short_time(None) == "?"
    assert render.one_line("a\n  b\tc") == "a b c"
    assert render.one_line("x" * 400, 10) == "x" * 9 + "…"
    assert render.count_by([{"s": "file"}, {"s": "claude"}, {"s": "file"}], "s") == "2 file, 1 claude"
