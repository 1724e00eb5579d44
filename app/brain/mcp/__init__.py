"""``brain mcp``: an MCP server that lets Claude Code (or any MCP client) recall the brain.

Why a thin layer over brain-api and no database access: the server runs on the developer's laptop
next to Claude Code while the memory lives on the brain VM. It talks HTTP(S) with the configured
token (``client.api_url`` / ``client.token``, env ``BRAIN_API_URL`` / ``BRAIN_TOKEN``) through the
shared :class:`~brain.client.http.ApiClient`, so timeouts, retries and error messages match the CLI's.

Layout: this module holds the settings and the click command only, because every ``brain``
invocation (cron collectors included) imports the CLI and the MCP SDK costs about a second to
import; :mod:`brain.mcp.server` (the SDK side: tools, errors, transports) is imported only when
``brain mcp`` runs, and :mod:`brain.mcp.render` turns API answers into actionable results.

Transports: stdio (what Claude Code spawns) and, with ``--http``, streamable HTTP on
``mcp.host:mcp.port`` (path ``/mcp``), guarded by a bearer token (``mcp.http_token``) that is
mandatory off loopback.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # brain.cli.main imports this module to register the command
    from brain.cli.main import Ctx


log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_http_exposure(host: str, token: str) -> None:
    """Anyone who reaches the port could read the whole memory: off loopback a token is mandatory."""
    if not token and not is_loopback(host):
        raise click.ClickException(f"refusing to serve MCP on {host} without a token: set mcp.http_token "
                                   f"(BRAIN_MCP_HTTP_TOKEN) or bind 127.0.0.1")


@click.command("mcp")
@click.option("--http", "use_http", is_flag=True, help="Serve streamable HTTP instead of stdio.")
@click.option("--host", help="Address to bind with --http (default mcp.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to bind with --http (default mcp.port, 8765).")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              default="WARNING", show_default=True, help="Server log level (logs go to stderr).")
@click.pass_obj
def mcp_command(obj: Ctx, use_http: bool, host: str | None, port: int | None, log_level: str) -> None:
    """Run an MCP server over the brain for Claude Code or any MCP client.

    Tools: search_memory, get_item, ask_memory, recent_activity. It talks to brain-api at
    client.api_url (BRAIN_API_URL) with client.token (BRAIN_TOKEN). Default transport: stdio.

    \b
    Example (register with Claude Code; the name goes before -e):
      claude mcp add brain --scope user -e BRAIN_API_URL=https://brain.example \\
          -e BRAIN_TOKEN="$BRAIN_TOKEN" -- "$(command -v brain)" mcp
      brain mcp --http --port 8765     # streamable HTTP at http://127.0.0.1:8765/mcp
    """
    cfg = obj.laptop
    host, port = host or cfg.mcp.host, port or cfg.mcp.port
    if use_http:
        check_http_exposure(host, cfg.mcp.http_token)
    from brain.mcp.server import build_server, run_http  # the MCP SDK: imported only here (see module docstring)

    log_level = log_level.upper()
    logging.basicConfig(level=log_level, format="brain mcp: %(levelname)s %(name)s: %(message)s")
    try:
        server = build_server(cfg, log_level)
    except ValueError as exc:  # an empty client.api_url
        raise click.ClickException(str(exc)) from None
    if not cfg.client.token:
        log.warning("client.token / BRAIN_TOKEN is not set: brain-api will answer 401 to every tool call")
    if use_http:
        run_http(server, host, port, cfg.mcp.http_token, log_level)
    else:
        server.run("stdio")
