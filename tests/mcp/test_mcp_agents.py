"""Recall across agents (issue 17, point 4): Claude Code's and the other agents' sessions are found,
filtered and reopened alike, by the MCP tools, the CLI and the API, each in its own agent.

The other agents' sessions are one source, ``agent``, with ``meta.agent`` and ``meta.resume``
(docs/API.md), as ``collectors.agents`` writes them. A real brain-api (gunicorn) on loopback holds
one session of each; the MCP server is ``python -m brain mcp`` over stdio, as Claude Code spawns it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from mcp import ClientSession

from brain.mcp import render
from tests.conftest import ApiServer, start_api_server, stop_api_server

from .conftest import iso, ok, run_session

PROJECT = "/home/dev/spotter"
SPACED = "/home/dev/my app"
CODEX, GEMINI, AIDER, CLAUDE = "019a-codex-1", "gem-5f2e9c1a", "a1b2c3d4e5f6:2026-11-20T10:00:00", "c1a0de-77"


def items(now: datetime) -> list[dict[str, Any]]:
    """One session per agent (as the collectors write them), all about the same bug, newest first."""
    def session(agent: str, sid: str, project: str, hours: int, resume: str | None, title: str) -> dict[str, Any]:
        meta = {"agent": agent, "session_id": sid, "user_messages": 1, "tool_calls": 1}
        if resume:
            meta["resume"] = resume
        if agent == "codex":
            meta["git_branch"] = "fix-ws"
        return {"id": f"agent:{agent}:{sid}", "source": "agent", "title": title, "uri": f"{agent}://session/{sid}",
                "project": project, "created_at": iso(now - timedelta(hours=hours + 1)),
                "updated_at": iso(now - timedelta(hours=hours)), "meta": meta,
                "content": f"user: {title}: the websocket drops after the idle timeout\n"
                           "tool shell: grep -rn idle_timeout config/\n"
                           "assistant: raise the proxy's idle timeout above the heartbeat interval."}
    return [
        session("codex", CODEX, SPACED, 1, f"codex resume {CODEX}", "codex: websocket idle drop"),
        session("gemini", GEMINI, PROJECT, 2, f"cd {PROJECT} && gemini --resume {GEMINI}", "gemini: websocket idle"),
        session("aider", AIDER, PROJECT, 3, f"cd {PROJECT} && aider --restore-chat-history", "aider: websocket idle"),
        session("opencode", "ses_9", PROJECT, 4, None, "opencode: websocket idle"),
        {"id": f"claude:{CLAUDE}", "source": "claude", "title": "claude: websocket idle", "project": PROJECT,
         "uri": f"claude://session/{CLAUDE}", "created_at": iso(now - timedelta(hours=6)),
         "updated_at": iso(now - timedelta(hours=5)), "meta": {"resume": f"claude --resume {CLAUDE}"},
         "content": "user: the websocket drops after the idle timeout\nassistant: raise the proxy's idle timeout."},
    ]


@pytest.fixture(scope="module")
def brain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    from tests.standins.openai_embeddings import EmbeddingsStandIn

    tmp = tmp_path_factory.mktemp("agents-api")
    embed = EmbeddingsStandIn(dim=64).start()
    env = {"HOME": str(tmp / "home"), "XDG_CONFIG_HOME": str(tmp / "home" / ".config"),
           "XDG_STATE_HOME": str(tmp / "home" / ".state"), "XDG_DATA_HOME": str(tmp / "home" / ".share"),
           "BRAIN_CONFIG": "", "BRAIN_EMBED_PROVIDER": "openai", "OPENAI_API_KEY": embed.expected_key,
           "BRAIN_EMBED_BASE_URL": embed.url}
    server = start_api_server(tmp, env)
    try:
        resp = requests.post(server.url + "/api/v1/items", json={"items": items(datetime.now(UTC))},
                             headers=server.headers, timeout=60)
        assert resp.status_code == 200 and resp.json()["inserted"] == 5, resp.text
        yield server
    finally:
        stop_api_server(server)
        embed.stop()


def test_agent_sessions_reopen_in_their_own_agent() -> None:
    now = datetime.now(UTC)
    loc = {it["id"]: render.locate(it) for it in items(now)}
    assert loc[f"agent:codex:{CODEX}"] == {"agent": "codex", "session_id": CODEX, "project": SPACED,
                                           "resume": f"codex resume {CODEX}", "git_branch": "fix-ws",
                                           "open": f"cd '{SPACED}' && codex resume {CODEX}"}
    assert loc[f"agent:gemini:{GEMINI}"]["open"] == f"cd {PROJECT} && gemini --resume {GEMINI}"  # already cds
    assert loc[f"agent:aider:{AIDER}"]["session_id"] == AIDER  # the id's rest, colons and all
    assert loc["agent:opencode:ses_9"]["resume"] is None
    assert loc["agent:opencode:ses_9"]["open"] == "get_item(id='agent:opencode:ses_9')"
    bare = render.locate({"id": "agent:codex:xyz", "source": "agent", "meta": {}})
    assert (bare["agent"], bare["session_id"], bare["open"]) == ("codex", "xyz", "get_item(id='agent:codex:xyz')")
    codex = items(now)[0]
    head, how = render.describe(codex, render.locate(codex))
    assert head.startswith("Codex CLI session · ") and head.endswith(f"· project {SPACED} · branch fix-ws")
    assert how == f"resume: cd '{SPACED}' && codex resume {CODEX}"
    opencode = items(now)[3]
    assert render.describe(opencode, render.locate(opencode))[1] == \
        "no resume command: read it with get_item(id='agent:opencode:ses_9')"
    assert render.agent_name({"id": "agent:newagent:1", "source": "agent"}) == "newagent"


def test_mcp_tools_treat_every_agents_sessions_alike(brain: ApiServer, tmp_path: Any) -> None:
    async def body(s: ClientSession) -> dict[str, Any]:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert "codex resume" in (tools["search_memory"].description or "")
        assert "agent = the other coding agents' sessions" in json.dumps(tools["search_memory"].input_schema)
        return {"agents": await ok(s, "search_memory", {"query": "websocket drops idle timeout", "source": "agent"}),
                "all": await ok(s, "search_memory", {"query": "websocket drops idle timeout", "project": PROJECT}),
                "recent": await ok(s, "recent_activity", {"days": 2})}

    with open(tmp_path / "mcp-stderr.log", "w+") as errlog:
        out = run_session({"BRAIN_API_URL": brain.url, "BRAIN_TOKEN": brain.token}, errlog, body)
    data, text = out["agents"]
    by_id = {r["id"]: r for r in data["results"]}
    assert {r["source"] for r in data["results"]} == {"agent"} and len(by_id) == 4
    assert by_id[f"agent:codex:{CODEX}"]["open"] == f"cd '{SPACED}' && codex resume {CODEX}"
    assert by_id[f"agent:gemini:{GEMINI}"]["agent"] == "gemini"
    assert f"resume: cd '{SPACED}' && codex resume {CODEX}" in text and "Codex CLI session · " in text
    assert f"resume: cd {PROJECT} && aider --restore-chat-history" in text and "Aider session · " in text
    assert "no resume command: read it with get_item(id='agent:opencode:ses_9')" in text

    data, text = out["all"]  # one project, every agent: Claude's session among the others
    assert {r["id"] for r in data["results"]} == {f"agent:gemini:{GEMINI}", f"agent:aider:{AIDER}",
                                                  "agent:opencode:ses_9", f"claude:{CLAUDE}"}
    assert f"resume: cd {PROJECT} && claude --resume {CLAUDE}" in text

    data, text = out["recent"]
    assert [it["id"] for it in data["items"]] == [it["id"] for it in items(datetime.now(UTC))]
    assert "Gemini CLI session · " in text and "Claude Code session · " in text


def test_cli_and_api_filter_by_the_agent_source(brain: ApiServer) -> None:
    env = {**os.environ, "BRAIN_API_URL": brain.url, "BRAIN_TOKEN": brain.token}
    done = subprocess.run([sys.executable, "-m", "brain", "search", "websocket idle timeout", "--source", "agent",
                           "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert {r["source"] for r in json.loads(done.stdout)["results"]} == {"agent"}
    done = subprocess.run([sys.executable, "-m", "brain", "search", "websocket idle timeout", "--source", "agent"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and f"codex://session/{CODEX}" in done.stdout and "claude://" not in done.stdout
    assert f"    resume: cd '{SPACED}' && codex resume {CODEX}\n" in done.stdout
    assert f"    resume: cd {PROJECT} && gemini --resume {GEMINI}\n" in done.stdout
    assert done.stdout.count("resume: ") == 3  # opencode has no resume command
    claude = subprocess.run([sys.executable, "-m", "brain", "search", "websocket idle timeout", "--source", "claude"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert f"    resume: cd {PROJECT} && claude --resume {CLAUDE}\n" in claude.stdout

    get = lambda path, **params: requests.get(brain.url + path, params=params, headers=brain.headers,  # noqa: E731
                                              timeout=30)
    listed = get("/api/v1/items", source="agent").json()["items"]
    assert len(listed) == 4 and all(it["meta"]["agent"] for it in listed)
    found = get("/api/v1/search", q="websocket idle timeout", source="agent").json()["results"]
    assert {r["source"] for r in found} == {"agent"}
    assert get("/api/v1/search", q="x", source="codex").status_code == 400  # one source for every agent
    asked = requests.post(brain.url + "/api/v1/ask", json={"question": "why does the websocket drop?",
                                                           "source": "agent", "llm": False},
                          headers=brain.headers, timeout=60)
    assert asked.status_code == 200, asked.text
    assert asked.json()["citations"] and {c["source"] for c in asked.json()["citations"]} == {"agent"}
