"""The timeline (issue 16, point 5): ``GET /api/v1/timeline`` and ``brain recent`` over real HTTP.

Fixture day: Tuesday 2026-03-10 in Europe/Rome (UTC+1): 2026-03-09T23:00Z .. 2026-03-10T22:59:59.999Z.
"""

from __future__ import annotations

import pytest

from brain.cli.main import main
from brain.core.timeline import first_prompt
from tests.conftest import TOKEN

SPOTTER = "/home/marco/projects/spotter"
SID = "55604662-cf2a-4331-851a-ec234028f8ca"
ITEMS = [
    # a session that began before local midnight and went on into the day
    {"id": f"claude:{SID}", "source": "claude", "title": "Fix the flaky test", "project": SPOTTER,
     "created_at": "2026-03-09T22:30:00Z", "updated_at": "2026-03-10T00:15:00Z",
     "content": "user: the test is flaky\nwhen the db is locked\nassistant: set busy_timeout\nuser: thanks",
     "meta": {"resume": f"claude --resume {SID}", "user_messages": 2}},
    {"id": "agent:codex:abc", "source": "agent", "title": "Add a CLI flag", "project": SPOTTER,
     "created_at": "2026-03-10T13:00:00Z", "updated_at": "2026-03-10T13:40:00Z",
     "content": "user: add --json to brain stats\nassistant: done", "meta": {"agent": "codex", "resume": "codex resume abc"}},
    {"id": f"file:laptop:{SPOTTER}/lib/db.ex", "source": "file", "title": "spotter/lib/db.ex", "project": SPOTTER,
     "created_at": "2026-03-10T12:00:00Z", "updated_at": "2026-03-10T12:00:00Z", "content": "defmodule Db do end",
     "meta": {"path": f"{SPOTTER}/lib/db.ex", "rel_path": "lib/db.ex", "line_count": 1, "language": "elixir"}},
    {"id": "file:laptop:/home/marco/notes/todo.md", "source": "file", "title": "notes/todo.md",
     "project": "/home/marco/notes", "created_at": "2026-03-10T08:00:00Z", "updated_at": "2026-03-10T08:00:00Z",
     "content": "- buy milk", "meta": {"path": "/home/marco/notes/todo.md", "line_count": 1}},
    # files changed on other days are not on this one
    {"id": f"file:laptop:{SPOTTER}/old.ex", "source": "file", "title": "spotter/old.ex", "project": SPOTTER,
     "created_at": "2026-03-01T12:00:00Z", "updated_at": "2026-03-01T12:00:00Z", "content": "old", "meta": {}},
    # a page last visited on the day (first visit weeks before), one first visited on it, one only around it
    {"id": "browser:Default:aaa", "source": "browser", "title": "sqlite3 docs",
     "uri": "https://docs.python.org/3/library/sqlite3.html", "created_at": "2026-02-01T09:00:00Z",
     "updated_at": "2026-03-10T09:30:00Z", "content": "sqlite3", "meta": {"domain": "docs.python.org", "visit_count": 5}},
    {"id": "browser:Default:bbb", "source": "browser", "title": "WAL", "uri": "https://sqlite.org/wal.html",
     "created_at": "2026-03-10T10:00:00Z", "updated_at": "2026-03-12T10:00:00Z", "content": "wal",
     "meta": {"domain": "sqlite.org", "visit_count": 2}},
    {"id": "browser:Default:ccc", "source": "browser", "title": "Visited before and after only",
     "uri": "https://example.com/", "created_at": "2026-03-08T10:00:00Z", "updated_at": "2026-03-12T10:00:00Z",
     "content": "x", "meta": {}},
]


@pytest.fixture
def loaded(client, auth):
    r = client.post("/api/v1/items", json={"items": ITEMS}, headers=auth)
    assert r.status_code == 200 and r.json["inserted"] == len(ITEMS)
    return client


def ids_in(group: dict) -> list[str]:
    return [e["id"] for e in group["entries"]]


def test_a_day_across_sources_in_time_order_grouped_by_project(loaded, auth):
    data = loaded.get("/api/v1/timeline?day=2026-03-10&tz=Europe/Rome", headers=auth).json
    assert (data["since"], data["until"]) == ("2026-03-09T23:00:00.000Z", "2026-03-10T22:59:59.999Z")
    assert data["prev_day"] == "2026-03-09" and data["next_day"] == "2026-03-11"
    assert data["counts"] == {"session": 2, "file": 2, "page": 2} and data["truncated"] is False
    groups = {g["project"]: g for g in data["groups"]}
    assert [g["project"] for g in data["groups"]] == [SPOTTER, "/home/marco/notes", None]  # by first activity
    spotter = groups[SPOTTER]
    assert spotter["name"] == "spotter" and spotter["counts"] == {"session": 2, "file": 1}
    assert ids_in(spotter) == [f"claude:{SID}", f"file:laptop:{SPOTTER}/lib/db.ex", "agent:codex:abc"]
    session = spotter["entries"][0]
    assert session["at"] == data["since"]  # it entered the day at midnight
    assert session["start"] == "2026-03-09T22:30:00.000Z" and session["duration_s"] == 105 * 60
    assert session["first_prompt"] == "the test is flaky when the db is locked"
    assert session["open"] == f"cd {SPOTTER} && claude --resume {SID}" and session["user_messages"] == 2
    assert spotter["entries"][2]["agent"] == "codex"
    f = spotter["entries"][1]
    assert f["kind"] == "file" and f["path"] == f"{SPOTTER}/lib/db.ex" and f["line_count"] == 1
    pages = groups[None]["entries"]
    assert [p["id"] for p in pages] == ["browser:Default:aaa", "browser:Default:bbb"]
    assert pages[0]["at"] == "2026-03-10T09:30:00.000Z" and pages[1]["at"] == "2026-03-10T10:00:00.000Z"
    assert pages[0]["url"] == "https://docs.python.org/3/library/sqlite3.html" and pages[0]["visits"] == 5


def test_the_day_is_cut_in_the_zone_asked_for(loaded, auth):
    utc = loaded.get("/api/v1/timeline?day=2026-03-09", headers=auth).json  # UTC by default
    assert utc["tz"] == "UTC" and utc["since"] == "2026-03-09T00:00:00.000Z"
    assert [e["id"] for g in utc["groups"] for e in g["entries"]] == [f"claude:{SID}"]
    tokyo = loaded.get("/api/v1/timeline?day=2026-03-10&tz=%2B09:00", headers=auth).json
    assert tokyo["since"] == "2026-03-09T15:00:00.000Z"
    # a day with the switch to summer time has 23 hours
    dst = loaded.get("/api/v1/timeline?day=2026-03-29&tz=Europe/Rome", headers=auth).json
    assert (dst["since"], dst["until"]) == ("2026-03-28T23:00:00.000Z", "2026-03-29T21:59:59.999Z")


def test_ranges_filters_and_limit(loaded, auth):
    week = loaded.get("/api/v1/timeline?day=2026-03-06&days=7&tz=Europe/Rome", headers=auth).json
    assert week["total"] == 8 - 1 and week["next_day"] == "2026-03-13"  # old.ex is from the 1st
    rng = loaded.get("/api/v1/timeline?since=2026-03-10T11:00:00Z&until=2026-03-10T14:00:00Z", headers=auth).json
    assert rng["day"] is None and "prev_day" not in rng
    assert [e["id"] for g in rng["groups"] for e in g["entries"]] == [f"file:laptop:{SPOTTER}/lib/db.ex",
                                                                         "agent:codex:abc"]
    only = loaded.get(f"/api/v1/timeline?day=2026-03-10&tz=Europe/Rome&project={SPOTTER}/&source=file",
                      headers=auth).json
    assert [e["id"] for g in only["groups"] for e in g["entries"]] == [f"file:laptop:{SPOTTER}/lib/db.ex"]
    cut = loaded.get("/api/v1/timeline?day=2026-03-10&tz=Europe/Rome&limit=2", headers=auth).json
    assert cut["total"] == 2 and cut["truncated"] is True


@pytest.mark.parametrize("query,field", [
    ("day=2026-02-30", "day"), ("day=yesterday", "day"), ("tz=Mars/Olympus", "tz"), ("tz=../../etc/passwd", "tz"),
    ("tz=%2B25:00", "tz"), ("days=0", "days"), ("days=32", "days"), ("since=2026-03-10", "until"),
    ("since=2026-03-11&until=2026-03-10", "since"), ("day=2026-03-10&since=2026-03-10&until=2026-03-11", "day"),
    ("source=fax", "source"), ("limit=0", "limit"),
])
def test_bad_timeline_queries_name_the_field(client, auth, query, field):
    r = client.get(f"/api/v1/timeline?{query}", headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == field, r.json


def test_timeline_needs_the_token(client):
    assert client.get("/api/v1/timeline").status_code == 401


def test_first_prompt_skips_interruptions_and_is_cut():
    assert first_prompt("user: [Request interrupted by user]\nuser: real one\ntool Bash: ls") == "real one"
    assert first_prompt("assistant: hi") is None
    assert len(first_prompt("user: " + "x" * 1000) or "") == 300


def test_brain_recent_prints_the_day_by_project(app, loaded, serve_app, runner):
    url = serve_app(app)
    env = {"BRAIN_API_URL": url, "BRAIN_TOKEN": TOKEN}
    result = runner.invoke(main, ["recent", "--day", "2026-03-10", "--tz", "Europe/Rome"], env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("Tuesday 10 March 2026 (Europe/Rome): 2 sessions, 2 pages, 2 files\n")
    assert f"spotter  ({SPOTTER}): 2 sessions, 1 file" in out
    assert "  00:00–01:15  session  Fix the flaky test  (1 h 45 min, 2 prompts)" in out
    assert "      first prompt: the test is flaky when the db is locked" in out
    assert f"      cd {SPOTTER} && claude --resume {SID}" in out
    assert "  10:30  page     sqlite3 docs\n      https://docs.python.org/3/library/sqlite3.html" in out
    assert out.index("spotter  (") < out.index("notes  (") < out.index("no project")
    assert "previous: brain recent --day 2026-03-09   next: brain recent --day 2026-03-11" in out
    only = runner.invoke(main, ["recent", "--day", "2026-03-10", "--tz", "Europe/Rome", "--project", SPOTTER,
                                "--source", "claude", "--json"], env=env)
    assert only.exit_code == 0 and '"total": 1' in only.output
    yesterday = runner.invoke(main, ["recent", "--yesterday", "--today"], env=env)
    assert yesterday.exit_code == 2 and "one of --today, --yesterday, --day" in yesterday.output


def test_brain_recent_today_and_yesterday_are_days_in_the_zone_asked_for(app, loaded, serve_app, runner,
                                                                         monkeypatch):
    """--today and --yesterday are this zone's calendar days: at 00:30 in Rome on the 11th it is
    still the 10th in UTC, so the zone decides which day is asked for."""
    from datetime import datetime

    from brain.cli import recent
    from brain.shared.zones import parse_tz

    monkeypatch.setattr(recent, "now_in", lambda name: datetime(2026, 3, 10, 23, 30, tzinfo=parse_tz("UTC"))
                        .astimezone(parse_tz(name)))
    env = {"BRAIN_API_URL": serve_app(app), "BRAIN_TOKEN": TOKEN}
    for args, header in ((["--today"], "Wednesday 11 March 2026 (Europe/Rome): nothing"),
                         ([], "Wednesday 11 March 2026 (Europe/Rome): nothing"),
                         (["--yesterday"], "Tuesday 10 March 2026 (Europe/Rome): 2 sessions, 2 pages, 2 files"),
                         (["--yesterday", "--project", SPOTTER], "Tuesday 10 March 2026 (Europe/Rome): 2 sessions, 1 file")):
        result = runner.invoke(main, ["recent", "--tz", "Europe/Rome", *args], env=env)
        assert result.exit_code == 0, result.output
        assert result.output.startswith(header), (args, result.output[:200])
    utc = runner.invoke(main, ["recent", "--tz", "UTC", "--today"], env=env)
    assert utc.output.startswith("Tuesday 10 March 2026 (UTC): "), utc.output[:200]
