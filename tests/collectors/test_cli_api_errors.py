"""Every brain-api command of the CLI reports a refusal and an unreachable brain-api in the same words
(brain.cli.api_errors), naming the URL, the status and code, the message and the field."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from brain.cli.main import main
from tests.conftest import closed_port_url

from .standin_api import TOKEN, BrainApiStandIn

COMMANDS = [
    (["search", "wal"], "/api/v1/search"),
    (["stats"], "/api/v1/stats"),
    (["forget", "--list"], "/api/v1/tombstones"),
    (["recent", "--day", "2026-11-03"], "/api/v1/timeline"),
    (["gpu", "status"], "/api/v1/gpu"),
]


@pytest.mark.parametrize(("args", "path"), COMMANDS)
def test_a_refusal_names_url_status_code_message_and_field(runner: CliRunner, standin: BrainApiStandIn,
                                                           args: list[str], path: str) -> None:
    standin.script = ["400:0"]  # a 400 naming field "content"; the tombstones' route is never scripted
    if args[0] == "forget":
        standin.token = "other"  # so the tombstones answer 401 instead
    result = runner.invoke(main, args, env={"BRAIN_API_URL": standin.url, "BRAIN_TOKEN": TOKEN,
                                            "BRAIN_CLIENT_MAX_RETRIES": "0"})
    assert result.exit_code == 1
    if args[0] == "forget":
        expected = f"Error: brain-api at {standin.url}{path} answered HTTP 401 unauthorized: missing or wrong bearer token"
    else:
        expected = (f"Error: brain-api at {standin.url}{path} answered HTTP 400 scripted: scripted failure 400 "
                    "(field content)")
    assert expected in result.output


@pytest.mark.parametrize(("args", "path"), [*COMMANDS, (["ask", "wal", "--no-stream"], "/api/v1/ask")])
def test_an_unreachable_brain_api_is_named(runner: CliRunner, args: list[str], path: str) -> None:
    url = closed_port_url()
    result = runner.invoke(main, args, env={"BRAIN_API_URL": url, "BRAIN_TOKEN": TOKEN,
                                            "BRAIN_CLIENT_MAX_RETRIES": "0"})
    assert result.exit_code == 1
    assert f"{url}{path}" in result.output and "connection refused" in result.output
