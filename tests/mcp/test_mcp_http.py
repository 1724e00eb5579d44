"""``brain mcp --http``: streamable HTTP behind a bearer token, driven by the SDK's HTTP client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import requests
from click.testing import CliRunner
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from brain.cli.main import main
from tests.conftest import ApiServer, free_port, stop_process

from .conftest import CLAUDE_ID, ok

MCP_TOKEN = "mcp-http-token-" + "z" * 20


@pytest.fixture
def http_server(brain: ApiServer, tmp_path: Path) -> Iterator[str]:
    """``python -m brain mcp --http`` on a free loopback port; its endpoint URL."""
    port = free_port()
    env = dict(os.environ, BRAIN_API_URL=brain.url, BRAIN_TOKEN=brain.token, BRAIN_MCP_HTTP_TOKEN=MCP_TOKEN)
    log = tmp_path / "mcp-http.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "brain", "mcp", "--http", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"brain mcp --http exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"brain mcp --http did not listen:\n{log.read_text()}"
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process(proc, timeout=10)
        sys.stderr.write(log.read_text())


def test_http_transport_serves_the_tools_to_token_holders(http_server: str) -> None:
    async def main_() -> tuple[set[str], dict[str, Any]]:
        headers = {"Authorization": f"Bearer {MCP_TOKEN}"}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http, \
                streamable_http_client(http_server, http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            data, _ = await ok(session, "search_memory", {"query": "pytest fixture hangs", "source": "claude"})
            return names, data

    names, data = anyio.run(main_)
    assert names == {"search_memory", "get_item", "ask_memory", "recent_activity", "timeline"}
    assert data["results"][0]["id"] == CLAUDE_ID

    for headers in ({}, {"Authorization": "Bearer wrong"}):
        resp = requests.post(http_server, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                             headers=headers, timeout=10)
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
        assert resp.json()["error"]["code"] == "unauthorized"


def test_http_refuses_to_listen_off_loopback_without_a_token(runner: CliRunner) -> None:
    result = runner.invoke(main, ["mcp", "--http", "--host", "0.0.0.0"], env={"BRAIN_MCP_HTTP_TOKEN": ""})
    assert result.exit_code == 1
    assert "refusing to serve MCP on 0.0.0.0 without a token: set mcp.http_token" in result.output
