"""The LLM server's context, asked over real HTTP of a stand-in speaking Ollama's and llama.cpp's
routes: which answer wins, how long it is trusted (an injected clock), and what failures do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from brain.rag.llm_context import FAILED_TTL, UPPER_BOUND_TTL, ContextProbe, context_overflow

from .standin_context import ContextStandIn, Served, ollama_ps, ollama_show

MODEL = "deepseek-coder-v2:16b"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def standin() -> Iterator[ContextStandIn]:
    server = ContextStandIn().start()
    yield server
    server.close()


def probe(standin: ContextStandIn, clock: Clock | None = None, **kw) -> ContextProbe:
    return ContextProbe(standin.base_url, MODEL, ttl=600, connect_timeout=1, read_timeout=2,
                        clock=clock or Clock(), sleep=lambda s: None, **kw)


def test_a_loaded_ollama_model_reports_its_runner_context(standin: ContextStandIn) -> None:
    standin.served = Served(ps=ollama_ps(MODEL, 4096), show=ollama_show(trained=131072))
    found = probe(standin).get()
    assert (found.tokens, found.exact) == (4096, True)
    assert "/api/ps" in found.source
    assert standin.served.calls == ["GET /api/ps"]  # /api/show is not needed


def test_num_ctx_of_the_model_is_capped_at_its_trained_context(standin: ContextStandIn) -> None:
    standin.served = Served(ps={"models": []}, show=ollama_show(trained=4096, num_ctx=16384))
    assert probe(standin).get().tokens == 4096
    standin.served = Served(ps=ollama_ps("other:7b", 2048), show=ollama_show(trained=131072, num_ctx=16384))
    found = probe(standin).get()
    assert (found.tokens, found.exact) == (16384, True)  # another model's runner says nothing of ours
    assert standin.served.calls == ["GET /api/ps", "POST /api/show"]


def test_without_num_ctx_the_trained_context_is_an_upper_bound_asked_again_soon(standin: ContextStandIn) -> None:
    clock = Clock()
    standin.served = Served(ps={"models": []}, show=ollama_show(trained=8192))
    p = probe(standin, clock)
    found = p.get()
    assert (found.tokens, found.exact) == (8192, False)
    clock.now += UPPER_BOUND_TTL - 1
    p.get()
    assert len(standin.served.calls) == 2  # cached
    standin.served.ps = ollama_ps(MODEL, 2048)  # the first question loaded the model
    clock.now += 2
    assert p.get().tokens == 2048


def test_llama_cpp_props(standin: ContextStandIn) -> None:
    standin.served = Served(props={"default_generation_settings": {"n_ctx": 2048, "params": {}}, "total_slots": 1})
    found = probe(standin).get()
    assert found.tokens == 2048 and "llama.cpp /props" in found.source
    assert standin.served.calls == ["GET /api/ps", "GET /props"]


def test_an_exact_answer_is_trusted_for_the_ttl_then_asked_again(standin: ContextStandIn) -> None:
    clock = Clock()
    standin.served = Served(props={"default_generation_settings": {"n_ctx": 2048}})
    p = probe(standin, clock)
    for _ in range(5):
        p.get()
    assert len(standin.served.calls) == 2
    clock.now += 601
    p.get()
    assert len(standin.served.calls) == 4


def test_a_server_without_those_routes_leaves_the_setting(standin: ContextStandIn) -> None:
    found = probe(standin).get()
    assert found.tokens is None and "reports no context size" in found.source


def test_failures_are_retried_a_bounded_number_of_times_then_cached_briefly(standin: ContextStandIn) -> None:
    clock = Clock()
    standin.served = Served(fail_with=503)
    p = probe(standin, clock, retries=2)
    found = p.get()
    assert found.tokens is None and "HTTP 503" in found.source and "/api/ps" in found.source
    assert standin.served.calls == ["GET /api/ps"] * 3
    p.get()
    assert len(standin.served.calls) == 3
    clock.now += FAILED_TTL + 1
    standin.served.fail_with = None
    standin.served.props = {"default_generation_settings": {"n_ctx": 1024}}
    assert p.get().tokens == 1024


def test_an_unreachable_server_names_the_url() -> None:
    from tests.conftest import closed_port_url

    p = ContextProbe(closed_port_url("/v1"), MODEL, connect_timeout=1, retries=1, sleep=lambda s: None)
    found = p.get()
    assert found.tokens is None and "GET http://127.0.0.1:" in found.source and "/api/ps" in found.source


def test_learned_context_replaces_the_cached_one(standin: ContextStandIn) -> None:
    p = probe(standin)
    assert p.get().tokens is None
    p.learn(2048, "a refusal")
    assert p.get().tokens == 2048 and len(standin.served.calls) == 2


@pytest.mark.parametrize(("text", "expected"), [
    # llama.cpp's server, current and older wording
    ('{"code": 400, "message": "request (4476 tokens) exceeds the available context size (4096 tokens)", '
     '"type": "exceed_context_size_error", "n_prompt_tokens": 4476, "n_ctx": 4096}', (True, 4096)),
    ("the request exceeds the available context size, try increasing it", (True, None)),
    # llama-cpp-python's server (and OpenAI), and its raw error
    ("This model's maximum context length is 2048 tokens. However, you requested 2797 tokens", (True, 2048)),
    ("Requested tokens (2797) exceed context window of 2048", (True, 2048)),
    # Ollama
    ("the prompt is longer than the context length currently available to the model; shorten the prompt",
     (True, None)),
    ("the input length exceeds the context length", (True, None)),
    ("model 'x' not found, try pulling it first", (False, None)),
    ("CUDA error: out of memory", (False, None)),
])
def test_what_servers_say_when_a_prompt_does_not_fit(text: str, expected: tuple[bool, int | None]) -> None:
    assert context_overflow(text) == expected
