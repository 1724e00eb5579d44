"""Issue 15, point 4, against the real LLM: llama.cpp's server (llama-cpp-python) with a 2048-token
context, while the brain is configured for production's 8192.

- Behind a stand-in answering Ollama's ``/api/show`` (``num_ctx 2048``) the brain packs for 2048
  before the first call and says so in the log and in the answer's ``prompt`` info.
- Without a probe (the real server has none of those routes) the first prompt is refused; the
  refusal's own number (2048) packs it again and the answer comes.
- When even that is refused (the size estimate made wildly optimistic), the ask is a 503
  ``llm_context_exceeded`` naming the context, streamed or not, and ``brain ask`` prints it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from brain.cli.main import main

from .helpers import CORPUS, make_ask_app, parse_sse
from .standin_context import ContextStandIn, Served, ollama_ps, ollama_show

pytestmark = pytest.mark.llm

WORDS = ("sqlite wal checkpoint busy_timeout writer reader journal pragma vacuum index query planner "
         "ollama context length gpu tensordock caddy gunicorn embedding chunk citation ").split()
LONG = [{"id": f"note:long-{i}", "source": "note", "title": f"Long SQLite note {i}",
         "content": " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(900))} for i in range(8)]
PROD = {"llm.model": "smollm2", "llm.context_tokens": 8192, "llm.answer_tokens": 16, "llm.read_timeout": 60.0,
        "llm.temperature": 0.0, "ask.k": 8}
QUESTION = {"question": "How do I stop 'database is locked' errors in SQLite with WAL and busy_timeout?"}


def _app(db_path, auth, base_url: str, **overrides):
    app = make_ask_app(db_path, auth["Authorization"].split()[1], base_url, **(PROD | overrides))
    resp = app.test_client().post("/api/v1/items", json={"items": LONG}, headers=auth)
    assert resp.status_code == 200, resp.get_json()
    from tests.conftest import drain_embeddings

    drain_embeddings(app)
    return app


@pytest.fixture
def ollama_front(llama_server: str) -> Iterator[ContextStandIn]:
    """Ollama's probe routes in front of the real model: /api/show says num_ctx 2048."""
    server = ContextStandIn(Served(ps={"models": []}, show=ollama_show(trained=8192, num_ctx=2048),
                                   upstream=llama_server.removesuffix("/v1"))).start()
    yield server
    server.close()


def test_the_probe_packs_for_the_servers_context_before_the_first_call(db_path, auth, ollama_front,
                                                                       caplog) -> None:
    app = _app(db_path, auth, ollama_front.base_url)
    with caplog.at_level(logging.WARNING, logger="brain.rag.ask"):
        resp = app.test_client().post("/api/v1/ask", json=QUESTION, headers=auth)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["answer"].strip() and body["citations"]
    assert body["prompt"]["context_tokens"] == 2048 and "num_ctx 2048" in body["prompt"]["context_source"]
    assert body["prompt"]["budget_tokens"] < 2048
    assert "packing the prompt for the LLM's 2048-token context" in caplog.text
    assert "llm.context_tokens=8192" in caplog.text
    chats = [c for c in ollama_front.served.calls if c.endswith("/chat/completions")]
    assert chats == ["POST /v1/chat/completions"]  # no refusal, no second try
    # the next question reuses the probed answer (cached by the process's one LLM client)
    from brain.rag.llm import get_llm

    assert get_llm(app.config["BRAIN"]).context.get().tokens == 2048
    assert ollama_front.served.calls.count("POST /api/show") == 1


def test_a_loaded_model_on_ollama_is_read_from_api_ps(db_path, auth, ollama_front) -> None:
    ollama_front.served.ps = ollama_ps("smollm2", 2048)
    app = _app(db_path, auth, ollama_front.base_url)
    body = app.test_client().post("/api/v1/ask", json=QUESTION, headers=auth).get_json()
    assert body["prompt"]["context_tokens"] == 2048 and "/api/ps" in body["prompt"]["context_source"]
    assert "POST /api/show" not in ollama_front.served.calls


@pytest.mark.parametrize("stream", [False, True])
def test_a_refused_prompt_is_packed_again_for_the_context_the_refusal_names(db_path, auth, llama_server,
                                                                             serve_app, stream) -> None:
    import requests

    app = _app(db_path, auth, llama_server)
    url = serve_app(app)
    with requests.post(f"{url}/api/v1/ask", json=QUESTION | {"stream": stream}, headers=auth, timeout=(5, 120),
                       stream=stream) as resp:
        assert resp.status_code == 200, resp.text
        body = parse_sse(resp.content.decode())[-1][1] if stream else resp.json()
    assert "answer" in body, body
    assert body["answer"].strip() and body["citations"]
    assert body["prompt"]["context_tokens"] == 2048
    assert body["prompt"]["context_source"] == "the LLM's refusal of a longer prompt"


def test_a_prompt_refused_after_packing_again_is_a_503_naming_the_context(db_path, auth, llama_server,
                                                                          serve_app, runner) -> None:
    # 40 characters per token: the estimate is far too small, so even 2048 "tokens" do not fit
    app = _app(db_path, auth, llama_server, **{"llm.chars_per_token": 40.0})
    resp = app.test_client().post("/api/v1/ask", json=QUESTION, headers=auth)
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["error"]["code"] == "llm_context_exceeded" and body["error"]["context_tokens"] == 2048
    assert "maximum context length is 2048 tokens" in body["error"]["message"]
    assert "OLLAMA_CONTEXT_LENGTH" in body["error"]["message"] and body["citations"]

    env = {"BRAIN_API_URL": serve_app(app), "BRAIN_TOKEN": auth["Authorization"].split()[1]}
    for extra in ([], ["--no-stream"]):
        result = runner.invoke(main, ["ask", QUESTION["question"], *extra], env=env)
        assert result.exit_code == 1, result.output
        assert "maximum context length is 2048 tokens" in result.output
        assert "llm_context_exceeded" in result.output or "2048 tokens" in result.output
        assert "[1] " in result.output  # the memory is still shown


def test_the_corpus_overflows_the_real_context_when_packed_for_8192() -> None:
    """The premise of the tests above: packed for 8192 the sources would not fit in 2048."""
    chars = sum(len(it["content"]) for it in LONG + CORPUS)
    assert chars / 3.0 > 2 * 2048
