"""Failures come back as MCP tool errors with a message that says what to change, and the server
keeps serving: bad arguments, brain-api's own 400s, an unknown id, a wrong token, brain-api down."""

from __future__ import annotations

from typing import Any

from mcp import ClientSession

from tests.conftest import ApiServer

from .conftest import CLAUDE_ID, closed_port_url, error, ok, run_session

# (tool, arguments, phrases the error must contain)
BAD_ARGUMENTS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("search_memory", {}, ["invalid arguments for search_memory", "query: field required"]),
    ("search_memory", {"query": ""}, ["query: string should have at least 1 character"]),
    ("search_memory", {"query": "x", "k": 0}, ["k: input should be greater than or equal to 1 (got 0)"]),
    ("search_memory", {"query": "x", "k": 51}, ["k: input should be less than or equal to 50 (got 51)"]),
    ("search_memory", {"query": "x", "k": "many"}, ["k: input should be a valid integer"]),
    ("search_memory", {"query": "x", "source": "slack"}, ["source", "'claude', 'agent', 'browser', 'file' or 'note'"]),
    ("search_memory", {"query": "x", "since": "last week"},
     ["since: must be an ISO-8601 date or date-time", "(got 'last week')"]),
    ("search_memory", {"query": "x", "limit": 5}, ["unknown argument 'limit'", "accepted: k, project, query"]),
    # well-formed for the schema, refused by brain-api: its 400 names the field
    ("search_memory", {"query": "x", "since": "2026-02-30"}, ["invalid argument 'since'", "not an ISO-8601"]),
    ("search_memory", {"query": "x", "since": "2026-12-01", "until": "2026-11-01"},
     ["invalid argument 'since'", "since must not be after until"]),
    ("get_item", {"id": CLAUDE_ID, "offset": -1}, ["offset: input should be greater than or equal to 0"]),
    ("get_item", {"id": CLAUDE_ID, "max_chars": 10}, ["max_chars: input should be greater than or equal to 1000"]),
    ("get_item", {"id": "note:nothing-here"}, ["no item with id 'note:nothing-here'", "search_memory"]),
    ("ask_memory", {"question": "   "}, ["ask_memory failed: invalid argument 'question'"]),
    ("ask_memory", {"question": "why?", "k": 21}, ["k: input should be less than or equal to 20"]),
    ("recent_activity", {"days": 0}, ["days: input should be greater than or equal to 1"]),
    ("recent_activity", {"limit": 500}, ["limit: input should be less than or equal to 200"]),
    ("forget_everything", {}, ["Unknown tool: forget_everything"]),
]

ONE_CALL_EACH: list[tuple[str, dict[str, Any]]] = [
    ("search_memory", {"query": "sqlite"}), ("get_item", {"id": CLAUDE_ID}),
    ("ask_memory", {"question": "How did I fix the fixture?"}), ("recent_activity", {}),
]


def test_bad_arguments_are_tool_errors_naming_the_field(mcp_env: dict[str, str], errlog: Any) -> None:
    async def body(s: ClientSession) -> list[str]:
        messages = [await error(s, tool, args) for tool, args, _ in BAD_ARGUMENTS]
        await ok(s, "search_memory", {"query": "sqlite"})  # still serving
        return messages

    messages = run_session(mcp_env, errlog, body)
    for (tool, args, phrases), message in zip(BAD_ARGUMENTS, messages, strict=True):
        for phrase in phrases:
            assert phrase in message, f"{tool}({args}): {phrase!r} not in {message!r}"
        assert "pydantic" not in message and "Traceback" not in message


def test_wrong_token_is_a_tool_error_on_every_tool(brain: ApiServer, errlog: Any) -> None:
    async def body(s: ClientSession) -> list[str]:
        messages = [await error(s, tool, args) for tool, args in ONE_CALL_EACH]
        assert {t.name for t in (await s.list_tools()).tools} >= {"search_memory"}  # still serving
        return messages

    secret = "wrong-token-" + "y" * 20
    for message in run_session({"BRAIN_API_URL": brain.url, "BRAIN_TOKEN": secret}, errlog, body):
        assert "brain-api rejected the token (401 unauthorized" in message
        assert "set client.token / BRAIN_TOKEN to one of the server's api_tokens" in message
        assert secret not in message


def test_missing_token_says_so(brain: ApiServer, errlog: Any) -> None:
    async def body(s: ClientSession) -> str:
        return await error(s, "recent_activity", {})

    message = run_session({"BRAIN_API_URL": brain.url}, errlog, body)
    assert "401" in message and "no token is configured: set client.token / BRAIN_TOKEN" in message


def test_api_down_is_a_tool_error_and_the_server_survives(errlog: Any) -> None:
    url = closed_port_url()

    async def body(s: ClientSession) -> list[str]:
        messages = [await error(s, tool, args) for tool, args in ONE_CALL_EACH]
        messages.append(await error(s, "search_memory", {"query": "again"}))
        return messages

    env = {"BRAIN_API_URL": url, "BRAIN_TOKEN": "t" * 32, "BRAIN_CLIENT_MAX_RETRIES": "0"}
    messages = run_session(env, errlog, body)
    for message in messages:
        assert f"brain-api is unreachable at {url}" in message and "connection refused" in message
        assert "BRAIN_API_URL" in message
    ask = messages[2]
    assert ask.startswith("Error executing tool ask_memory: ask_memory failed: no answer from brain-api's ask")
    assert "then retrieving the context instead failed" in ask
