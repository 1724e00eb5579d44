"""Fixtures for the MCP server tests: test items in a real brain-api, and an MCP client session
that spawns ``python -m brain mcp`` over stdio, exactly as Claude Code does.

The brain-api is a real gunicorn process on loopback with a temporary database, started with the
same helper as the shared ``api_server`` fixture, but once per module: embedding the test items is
what costs time on 2 cores, and every test here only reads them. Its LLM is a closed loopback port
unless a module overrides ``brain``, so ``ask`` answers 503 with citations: the path
``ask_memory`` must turn into the retrieved context.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
import requests
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent

from tests.conftest import ApiServer, start_api_server, stop_api_server, wait_for_vectors
from tests.conftest import closed_port_url as held_closed_port_url

T = TypeVar("T")

PROJECT = "/home/dev/spotter"
SESSION_ID = "55604662-cf2a-4331-851a-ec234028f8ca"
CLAUDE_ID = f"claude:{SESSION_ID}"
PAGE_URL = "https://sqlite.org/wal.html"
PAGE_ID = "browser:Default:5f1e0c2a9b"
FILE_PATH = f"{PROJECT}/spotter/db.py"
FILE_ID = f"file:laptop:{FILE_PATH}"
OLD_ID = "note:old-meeting"
LONG_ID = "note:long-notes"


closed_port_url = held_closed_port_url  # a refused port held for the whole run (tests/conftest.py)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def file_content() -> str:
    """A Python file long enough to be cut into several chunks, the pool setting near the end."""
    lines = [f"def helper_{n}(rows):\n    \"\"\"Sum column {n} of the fetched rows.\"\"\"\n"
             f"    return sum(r[{n}] for r in rows)\n" for n in range(16)]
    lines.append("def connect(path):\n    conn = sqlite3.connect(path, timeout=30)\n"
                 "    conn.execute('PRAGMA busy_timeout = 5000')  # zeppelin marker\n    return conn\n")
    return "import sqlite3\n\n" + "\n".join(lines)


LONG_TEXT = "".join(f"paragraph {n:04d}: notes about the quarterly planning and roadmap.\n" for n in range(36))


def make_items(now: datetime) -> list[dict[str, Any]]:
    """One item per source, active at different times (newest first: claude, file, page, long, old)."""
    return [
        {"id": CLAUDE_ID, "source": "claude", "title": "Fix the flaky pytest fixture",
         "uri": f"claude://session/{SESSION_ID}", "project": PROJECT,
         "created_at": iso(now - timedelta(hours=3)), "updated_at": iso(now - timedelta(hours=1)),
         "content": "user: the pytest fixture hangs with 'database is locked'\n"
                    "assistant: set PRAGMA busy_timeout and enable WAL journal mode; the hang is gone.",
         "meta": {"resume": f"claude --resume {SESSION_ID}", "git_branch": "fix-locks"}},
        {"id": FILE_ID, "source": "file", "title": "db.py", "uri": f"file://laptop{FILE_PATH}",
         "project": PROJECT, "created_at": iso(now - timedelta(days=2)), "updated_at": iso(now - timedelta(days=2)),
         "content": file_content(), "meta": {"language": "python"}},
        {"id": PAGE_ID, "source": "browser", "title": "Write-Ahead Logging", "uri": PAGE_URL,
         "created_at": iso(now - timedelta(days=20)), "updated_at": iso(now - timedelta(days=3)),
         "content": "Write-Ahead Logging. The default method by which SQLite implements atomic commit is a "
                    "rollback journal. WAL mode lets readers continue while a writer commits.",
         "meta": {"visit_count": 4}},
        {"id": LONG_ID, "source": "note", "title": "Planning notes", "created_at": iso(now - timedelta(days=4)),
         "updated_at": iso(now - timedelta(days=4)), "content": LONG_TEXT},
        {"id": OLD_ID, "source": "note", "title": "Old meeting", "created_at": iso(now - timedelta(days=60)),
         "updated_at": iso(now - timedelta(days=60)), "content": "An old meeting about hiring."},
    ]


@contextmanager
def running_brain(tmp_path_factory: pytest.TempPathFactory, llm_url: str) -> Iterator[ApiServer]:
    """A real brain-api holding :func:`make_items`, isolated from the developer's config."""
    tmp = tmp_path_factory.mktemp("mcp-api")
    home = tmp / "home"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_STATE_HOME": str(home / ".state"),
           "XDG_DATA_HOME": str(home / ".share"), "XDG_CACHE_HOME": str(home / ".cache"),
           "BRAIN_LLM_BASE_URL": llm_url, "BRAIN_LLM_RETRY_BACKOFF": "0.05"}
    env.update(dict.fromkeys(("BRAIN_CONFIG", "BRAIN_EMBED_PROVIDER", "BRAIN_EMBED_BASE_URL", "OPENAI_API_KEY"), ""))
    server = start_api_server(tmp, env)
    try:
        resp = requests.post(server.url + "/api/v1/items", json={"items": make_items(datetime.now(UTC))},
                             headers=server.headers, timeout=120)
        assert resp.status_code == 200, resp.text
        assert resp.json()["inserted"] == 5
        wait_for_vectors(server)
        yield server
    finally:
        stop_api_server(server)


@pytest.fixture(scope="package")
def brain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The brain-api most tests read, its LLM down (a closed loopback port)."""
    with running_brain(tmp_path_factory, closed_port_url("/v1")) as server:
        yield server


@pytest.fixture
def mcp_env(brain: ApiServer) -> dict[str, str]:
    """What a user puts in the MCP client config: where brain-api is and the token."""
    return {"BRAIN_API_URL": brain.url, "BRAIN_TOKEN": brain.token}


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[Any]:
    """The MCP server's stderr, shown when a test fails."""
    path = tmp_path / "mcp-stderr.log"
    with open(path, "w+") as fh:
        yield fh
    sys.stderr.write(path.read_text())


def run_session(env: dict[str, str], errlog: Any, body: Callable[[ClientSession], Awaitable[T]]) -> T:
    """Spawn ``python -m brain mcp`` (stdio), initialize a client session, run ``body`` in it."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "brain", "mcp"], env=env)

    async def main() -> T:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await body(session)

    return anyio.run(main)


def text_of(res: CallToolResult) -> str:
    assert len(res.content) == 1 and isinstance(res.content[0], TextContent), res.content
    return res.content[0].text


async def ok(session: ClientSession, tool: str, args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Call a tool that must succeed: (structured content, text)."""
    res = await session.call_tool(tool, args)
    assert not res.is_error, text_of(res)
    assert res.structured_content is not None
    return res.structured_content, text_of(res)


async def error(session: ClientSession, tool: str, args: dict[str, Any]) -> str:
    """Call a tool that must fail as an MCP tool error; its message."""
    res = await session.call_tool(tool, args)
    assert res.is_error, f"expected a tool error from {tool}({args}), got: {text_of(res)}"
    return text_of(res)
