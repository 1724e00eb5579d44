"""``ask_memory`` when brain-api's LLM answers: the answer, with citations that say how to reopen them.

The LLM is issue 4's stand-in for Ollama's OpenAI-compatible chat API (a real HTTP server on
loopback), so brain-api runs its real LLM client. Its own module because the ``brain`` override
below applies to every test of a module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mcp import ClientSession

from tests.conftest import ApiServer

from .conftest import CLAUDE_ID, PROJECT, SESSION_ID, ok, run_session, running_brain

RESUME = f"cd {PROJECT} && claude --resume {SESSION_ID}"


@pytest.fixture(scope="module")
def standin_llm() -> Iterator[Any]:
    """Stand-in for Ollama's OpenAI-compatible chat API (issue 4's test server), as brain-api's LLM."""
    from tests.ask.standin_llm import Behaviour, StandinLLM

    server = StandinLLM().start()
    server.play(Behaviour(pieces=["Set PRAGMA busy_timeout", " and WAL mode [1]."]))
    yield server
    server.close()


@pytest.fixture(scope="module")
def brain(tmp_path_factory: pytest.TempPathFactory, standin_llm: Any) -> Iterator[ApiServer]:
    """brain-api with the stand-in as its LLM (overrides conftest's LLM-down brain for this module)."""
    with running_brain(tmp_path_factory, standin_llm.base_url) as server:
        yield server


def test_ask_answers_with_actionable_citations(standin_llm: Any, mcp_env: dict[str, str], errlog: Any) -> None:
    async def body(s: ClientSession) -> Any:
        return await ok(s, "ask_memory", {"question": "How did I fix the hanging pytest fixture?",
                                          "project": PROJECT, "k": 2})

    data, text = run_session(mcp_env, errlog, body)
    assert data["status"] == "answered" and data["answer"] == "Set PRAGMA busy_timeout and WAL mode [1]."
    assert data["model"] == "standin-model"
    assert [c["id"] for c in data["citations"]][:1] == [CLAUDE_ID] and len(data["citations"]) <= 2
    assert data["citations"][0]["open"] == RESUME
    assert text.startswith("Set PRAGMA busy_timeout and WAL mode [1].")
    assert f"resume: {RESUME}" in text
    sent = standin_llm.requests[0]["messages"][-1]["content"]
    assert sent.endswith("Question: How did I fix the hanging pytest fixture?")
