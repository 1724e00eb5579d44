"""End to end against a real LLM: llama.cpp's OpenAI-compatible server running SmolLM2-135M.

A 135M model's facts are unreliable, so these tests assert the protocol and the brain's
behaviour (a non-empty answer streamed and assembled identically, citations passed through,
the budget respected by a real server with a 2048-token context), never what the model says.
"""

from __future__ import annotations

import pytest
import requests

from brain.cli.main import main
from brain.rag.llm import LLMClient

from .helpers import CORPUS, make_ask_app, parse_sse

pytestmark = pytest.mark.llm

CORPUS_IDS = {it["id"] for it in CORPUS}
REAL = {"llm.model": "smollm2", "llm.context_tokens": 2048, "llm.answer_tokens": 16, "llm.read_timeout": 60.0,
        "llm.temperature": 0.0}  # greedy: the same prompt gives the same answer on every run


@pytest.fixture
def real_app(db_path, auth, llama_server: str):
    return make_ask_app(db_path, auth["Authorization"].split()[1], llama_server, **REAL)


def test_llm_client_talks_to_llama_cpp(llama_server: str) -> None:
    llm = LLMClient(llama_server, "smollm2", read_timeout=60)
    done = llm.complete([{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0)
    assert done.answer.strip()
    assert done.finish_reason in ("stop", "length")
    assert done.first_token_ms is not None and done.first_token_ms <= done.total_ms


def test_ask_answers_with_citations(real_app, auth) -> None:
    resp = real_app.test_client().post(
        "/api/v1/ask", json={"question": "How do I stop 'database is locked' errors in SQLite?"}, headers=auth)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert isinstance(body["answer"], str) and body["answer"].strip()
    assert "<think>" not in body["answer"]
    assert body["finish_reason"] in ("stop", "length")
    assert body["citations"] and {c["id"] for c in body["citations"]} <= CORPUS_IDS
    assert body["citations"][0]["id"] == "note:sqlite-wal"
    assert body["timings"]["llm_ms"] > 0


def test_stream_through_a_real_http_server(real_app, auth, serve_app) -> None:
    url = serve_app(real_app)
    with requests.post(f"{url}/api/v1/ask", json={"question": "What context length does Ollama need?",
                                                  "stream": True},
                       headers=auth, stream=True, timeout=(5, 60)) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = resp.content.decode()
    events = parse_sse(raw)
    kinds = [e for e, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"token"} and len(kinds) > 2
    done = events[-1][1]
    assert "".join(d["text"] for e, d in events if e == "token") == done["answer"]
    assert done["citations"][0]["id"] == "note:ollama-context"


def test_cli_streams_a_real_answer(real_app, auth, serve_app, runner) -> None:
    env = {"BRAIN_API_URL": serve_app(real_app), "BRAIN_TOKEN": auth["Authorization"].split()[1]}
    result = runner.invoke(main, ["ask", "Why did the api_server fixture hang?"], env=env)
    assert result.exit_code == 0, result.output
    answer, _, sources = result.output.partition("\nSources:\n")
    assert answer.strip()
    first = sources.splitlines()[0].strip()
    assert first.startswith("[1] Fix the flaky pytest fixture") and "claude://session/1111-2222" in first
