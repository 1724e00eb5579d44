"""``brain mcp`` driven through the MCP SDK's client over stdio against a real brain-api on loopback."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp import ClientSession

from .conftest import (
    CLAUDE_ID,
    FILE_ID,
    FILE_PATH,
    LONG_ID,
    LONG_TEXT,
    OLD_ID,
    PAGE_ID,
    PAGE_URL,
    PROJECT,
    SESSION_ID,
    closed_port_url,
    error,
    file_content,
    ok,
    run_session,
)

RESUME = f"cd {PROJECT} && claude --resume {SESSION_ID}"
TOOLS = {"search_memory", "get_item", "ask_memory", "recent_activity", "timeline"}


def test_lists_the_read_only_tools_with_precise_schemas(errlog: Any) -> None:
    async def body(s: ClientSession) -> Any:
        return (await s.list_tools()).tools

    tools = {t.name: t for t in run_session({"BRAIN_API_URL": closed_port_url()}, errlog, body)}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert len(tool.description or "") > 200, tool.name
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
    search = tools["search_memory"].input_schema
    assert search["required"] == ["query"]
    props = search["properties"]
    assert set(props) == {"query", "source", "project", "since", "until", "k"}
    assert props["k"]["minimum"] == 1 and props["k"]["maximum"] == 50 and props["k"]["default"] == 10
    assert props["source"]["anyOf"][0]["enum"] == ["claude", "agent", "browser", "file", "note"]
    since = props["since"]["anyOf"][0]
    assert re.match(since["pattern"], "2026-11-27") and re.match(since["pattern"], "2026-11-27T10:00:00Z")
    assert not re.match(since["pattern"], "last week")
    assert "ISO-8601" in props["since"]["description"]
    assert "claude --resume" in tools["search_memory"].description
    assert tools["get_item"].input_schema["required"] == ["id"]
    assert set(tools["get_item"].input_schema["properties"]) == {"id", "offset", "max_chars"}
    assert tools["ask_memory"].input_schema["required"] == ["question"]
    recent = tools["recent_activity"].input_schema
    assert "required" not in recent
    assert recent["properties"]["days"]["maximum"] == 365 and recent["properties"]["limit"]["maximum"] == 200
    timeline = tools["timeline"].input_schema
    assert "required" not in timeline and set(timeline["properties"]) == {"day", "days", "project", "source", "tz"}
    assert timeline["properties"]["days"]["maximum"] == 31


def test_search_results_say_how_to_reopen_each_source(mcp_env: dict[str, str], errlog: Any) -> None:
    async def body(s: ClientSession) -> dict[str, Any]:
        out = {}
        out["claude"] = await ok(s, "search_memory", {"query": "pytest fixture hangs database is locked",
                                                      "source": "claude"})
        out["page"] = await ok(s, "search_memory", {"query": "write-ahead logging rollback journal",
                                                    "source": "browser"})
        out["file"] = await ok(s, "search_memory", {"query": "zeppelin marker busy_timeout", "source": "file"})
        out["project"] = await ok(s, "search_memory", {"query": "sqlite", "project": PROJECT + "/", "k": 50})
        out["future"] = await ok(s, "search_memory", {"query": "sqlite", "since": "2999-01-01"})
        return out

    out = run_session(mcp_env, errlog, body)
    data, text = out["claude"]
    top = data["results"][0]
    assert top["id"] == CLAUDE_ID and top["session_id"] == SESSION_ID and top["project"] == PROJECT
    assert top["open"] == RESUME and top["git_branch"] == "fix-locks"
    assert f"resume: {RESUME}" in text and f"id: {CLAUDE_ID}" in text

    data, text = out["page"]
    page = data["results"][0]
    assert page["id"] == PAGE_ID and page["url"] == PAGE_URL and page["open"] == PAGE_URL
    assert page["visited_at"] == page["updated_at"] and page["visit_count"] == 4
    assert f"url: {PAGE_URL}" in text and "last visited" in text

    data, text = out["file"]
    hit = data["results"][0]
    assert hit["id"] == FILE_ID and hit["path"] == FILE_PATH and hit["host"] == "laptop"
    marker_line = next(n for n, line in enumerate(file_content().split("\n"), 1) if "zeppelin" in line)
    assert 1 < hit["start_line"] <= marker_line <= hit["end_line"]
    assert hit["open"] == f"{FILE_PATH}:{hit['start_line']}-{hit['end_line']}"
    assert f"path: {FILE_PATH} lines {hit['start_line']}-{hit['end_line']} (host laptop)" in text

    data, _ = out["project"]  # a trailing slash on the project still matches
    assert {r["id"] for r in data["results"]} == {CLAUDE_ID, FILE_ID}

    data, text = out["future"]
    assert data["results"] == [] and "No results" in text


def test_get_item_pages_through_long_content(mcp_env: dict[str, str], errlog: Any) -> None:
    async def body(s: ClientSession) -> dict[str, Any]:
        pages, offset = [], 0
        while offset is not None:
            data, text = await ok(s, "get_item", {"id": LONG_ID, "offset": offset, "max_chars": 1000})
            pages.append((data, text))
            offset = data["next_offset"]
        whole, _ = await ok(s, "get_item", {"id": CLAUDE_ID})
        past_end = await error(s, "get_item", {"id": LONG_ID, "offset": len(LONG_TEXT) + 5})
        unknown = await error(s, "get_item", {"id": "claude:no-such-session"})
        return {"pages": pages, "whole": whole, "past_end": past_end, "unknown": unknown}

    out = run_session(mcp_env, errlog, body)
    pages = out["pages"]
    assert len(pages) == -(-len(LONG_TEXT) // 1000)
    assert "".join(p["content"] for p, _ in pages) == LONG_TEXT
    first, text = pages[0]
    assert first["offset"] == 0 and first["next_offset"] == 1000 and first["content_total"] == len(LONG_TEXT)
    assert f"characters 0-1000 of {len(LONG_TEXT)}" in text
    assert f"get_item(id='{LONG_ID}', offset=1000)" in text
    assert pages[-1][0]["next_offset"] is None and "[continues" not in pages[-1][1]

    whole = out["whole"]
    assert "busy_timeout" in whole["content"] and whole["next_offset"] is None
    assert whole["open"] == RESUME and whole["meta"]["git_branch"] == "fix-locks"
    assert "past the end" in out["past_end"] and f"{len(LONG_TEXT)} characters" in out["past_end"]
    assert "no item with id 'claude:no-such-session'" in out["unknown"]


def test_recent_activity_is_newest_first_and_filtered(mcp_env: dict[str, str], errlog: Any) -> None:
    async def body(s: ClientSession) -> dict[str, Any]:
        return {
            "week": await ok(s, "recent_activity", {}),
            "quarter": await ok(s, "recent_activity", {"days": 90}),
            "project": await ok(s, "recent_activity", {"project": PROJECT, "days": 30}),
            "pages": await ok(s, "recent_activity", {"source": "browser"}),
            "limited": await ok(s, "recent_activity", {"days": 90, "limit": 2}),
            "nothing": await ok(s, "recent_activity", {"days": 1, "source": "browser"}),
        }

    out = run_session(mcp_env, errlog, body)
    data, text = out["week"]
    assert [it["id"] for it in data["items"]] == [CLAUDE_ID, FILE_ID, PAGE_ID, LONG_ID]
    assert data["items"][0]["open"] == RESUME and data["items"][1]["path"] == FILE_PATH
    assert data["items"][2]["url"] == PAGE_URL and data["more"] is False
    assert text.index(CLAUDE_ID) < text.index(FILE_ID) < text.index(PAGE_ID)
    assert "1 browser, 1 claude, 1 file, 1 note" in text
    assert [it["id"] for it in out["quarter"][0]["items"]][-1] == OLD_ID
    assert [it["id"] for it in out["project"][0]["items"]] == [CLAUDE_ID, FILE_ID]
    assert [it["id"] for it in out["pages"][0]["items"]] == [PAGE_ID]
    limited, text = out["limited"]
    assert len(limited["items"]) == 2 and limited["more"] is True and "More items exist" in text
    assert out["nothing"][0]["items"] == [] and "No activity" in out["nothing"][1]


def test_timeline_shows_a_day_by_project_in_time_order(mcp_env: dict[str, str], errlog: Any) -> None:
    day = (datetime.now(UTC) - timedelta(hours=1)).date()
    week_start = (day - timedelta(days=6)).isoformat()

    async def body(s: ClientSession) -> dict[str, Any]:
        return {"day": await ok(s, "timeline", {"day": day.isoformat(), "tz": "UTC"}),
                "week": await ok(s, "timeline", {"day": week_start, "days": 7, "tz": "UTC"}),
                "project": await ok(s, "timeline", {"day": week_start, "days": 7, "tz": "UTC", "project": PROJECT}),
                "bad_tz": await error(s, "timeline", {"tz": "Mars/Olympus"})}

    out = run_session(mcp_env, errlog, body)
    data, text = out["day"]
    assert [e["id"] for g in data["groups"] for e in g["entries"]] == [CLAUDE_ID]
    assert data["groups"][0]["entries"][0]["open"] == RESUME and RESUME in text
    assert text.startswith(f"{day.strftime('%A %d %B %Y')} (UTC): 1 session")
    assert f"next: timeline(day='{(day + timedelta(days=1)).isoformat()}')" in text
    week, text = out["week"]
    groups = {g["project"]: [e["id"] for e in g["entries"]] for g in week["groups"]}
    assert groups == {PROJECT: [FILE_ID, CLAUDE_ID], None: [LONG_ID, PAGE_ID]}  # OLD_ID is 60 days old
    assert FILE_PATH in text and PAGE_URL in text
    assert [e["id"] for g in out["project"][0]["groups"] for e in g["entries"]] == [FILE_ID, CLAUDE_ID]
    assert "tz" in out["bad_tz"] and "Mars/Olympus" in out["bad_tz"]


def test_ask_returns_retrieved_context_when_the_llm_is_down(mcp_env: dict[str, str], errlog: Any) -> None:
    async def body(s: ClientSession) -> Any:
        return await ok(s, "ask_memory", {"question": "How did I fix the pytest fixture that hangs on a locked "
                                                      "database?", "source": "claude"})

    data, text = run_session(mcp_env, errlog, body)
    assert data["status"] == "llm_unavailable" and data["answer"] is None
    assert "llm_unavailable" in data["reason"]
    assert "busy_timeout" in data["context"]
    assert [c["id"] for c in data["citations"]] == [CLAUDE_ID]
    assert data["citations"][0]["open"] == RESUME and data["citations"][0]["n"] == 1
    assert text.startswith("No written answer: the LLM is unavailable")
    assert f"resume: {RESUME}" in text and "Retrieved context:" in text
