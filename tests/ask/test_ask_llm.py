"""The LLM client: streaming, <think> handling, and every failure against the stand-in server."""

from __future__ import annotations

import time

import pytest

from brain.rag.llm import LLMClient, LLMError, ThinkFilter, get_llm, split_thinking
from brain.shared import config

from .standin_llm import Behaviour, StandinLLM, closed_port_url

MESSAGES = [{"role": "user", "content": "hi"}]


def client(base: str, **kw) -> LLMClient:
    kw.setdefault("connect_timeout", 1.0)
    kw.setdefault("read_timeout", 2.0)
    kw.setdefault("retry_backoff", 0.01)
    kw.setdefault("sleep", lambda _s: None)  # retries wait on nothing: no test waits on the wall clock
    return LLMClient(base, "standin-model", "secret-key", **kw)


# ------------------------------------------------------------------ <think> handling

THINK_TEXT = "<think>\nthe user wants [2]\n</think>\n\nUse WAL mode [1]. A <b>tag</b> stays."


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11])
def test_think_block_split_across_chunks_at_any_position(size: int) -> None:
    f = ThinkFilter()
    pieces = []
    for i in range(0, len(THINK_TEXT), size):
        pieces += f.feed(THINK_TEXT[i:i + size])
    pieces += f.flush()
    assert "".join(p.text for p in pieces if p.kind == "answer") == "Use WAL mode [1]. A <b>tag</b> stays."
    assert "".join(p.text for p in pieces if p.kind == "thinking") == "\nthe user wants [2]\n"


def test_text_without_think_is_untouched_even_if_it_ends_like_a_tag() -> None:
    assert split_thinking("a < b and <thin") == ("a < b and <thin", "")


def test_unclosed_think_block_is_all_thinking() -> None:
    assert split_thinking("<think>still reasoning when the tokens ran out") == (
        "", "still reasoning when the tokens ran out")


def test_stray_closing_tag_is_dropped() -> None:
    # a chat template that opens the block itself: the model's output contains only the end tag
    assert split_thinking("reasoning here</think>\n\nThe answer") == ("reasoning hereThe answer", "")


def test_several_think_blocks() -> None:
    assert split_thinking("<think>a</think>one <think>b</think>two") == ("one two", "ab")


# ------------------------------------------------------------------ success paths

def test_complete_streams_and_assembles(standin: StandinLLM) -> None:
    standin.play(Behaviour(pieces=["<thi", "nk>hmm</th", "ink>\n\nThe", " answer [1]."]))
    result = client(standin.base_url).complete(MESSAGES, max_tokens=50)
    assert result.answer == "The answer [1]."
    assert result.thinking == "hmm"
    assert result.model == "standin-model"
    assert result.finish_reason == "stop"
    assert result.first_token_ms is not None and result.total_ms >= result.first_token_ms
    sent = standin.requests[0]
    assert sent["stream"] is True and sent["max_tokens"] == 50 and sent["model"] == "standin-model"
    assert sent["messages"] == MESSAGES


def test_reasoning_content_field_is_thinking(standin: StandinLLM) -> None:
    standin.play(Behaviour(reasoning=["first ", "second"], pieces=["Done."]))
    result = client(standin.base_url).complete(MESSAGES, max_tokens=10)
    assert (result.answer, result.thinking) == ("Done.", "first second")


def test_stream_yields_pieces_in_order(standin: StandinLLM) -> None:
    standin.play(Behaviour(pieces=["a", "b", "c"]))
    stream = client(standin.base_url).stream(MESSAGES, max_tokens=5)
    assert [p.text for p in stream] == ["a", "b", "c"]
    assert stream.finish_reason == "stop"


def test_get_llm_builds_from_config_and_caches(tmp_path) -> None:
    empty = tmp_path / "config.toml"
    empty.write_text("")
    cfg = config.load(empty, env={"BRAIN_LLM_BASE_URL": "http://127.0.0.1:9/v1/", "BRAIN_LLM_MODEL": "deepseek-r1:14b"})
    llm = get_llm(cfg)
    assert llm.endpoint == "http://127.0.0.1:9/v1/chat/completions"
    assert llm.model == "deepseek-r1:14b"
    assert get_llm(cfg) is llm


# ------------------------------------------------------------------ failures

def test_connection_refused_names_endpoint_after_bounded_retries() -> None:
    base = closed_port_url()
    waits: list[float] = []
    llm = client(base, max_retries=2, retry_backoff=0.05, sleep=waits.append)
    with pytest.raises(LLMError) as info:
        llm.complete(MESSAGES, max_tokens=5)
    err = info.value
    assert err.reason == "unreachable"
    assert f"{base}/chat/completions" in str(err)
    assert "secret-key" not in str(err)
    assert waits == [0.05, 0.1]  # two retries, the backoff doubling; the injected sleep keeps the clock out


def test_500_is_an_error_with_the_server_message_and_not_retried(standin: StandinLLM) -> None:
    standin.play(Behaviour(kind="status", status=500, body={"error": {"message": "CUDA out of memory"}}))
    with pytest.raises(LLMError) as info:
        client(standin.base_url, max_retries=3).complete(MESSAGES, max_tokens=5)
    assert info.value.reason == "status" and info.value.status == 500
    assert "HTTP 500" in str(info.value) and "CUDA out of memory" in str(info.value)
    assert standin.base_url in str(info.value)
    assert len(standin.requests) == 1


def test_404_model_not_found_is_reported(standin: StandinLLM) -> None:
    standin.play(Behaviour(kind="status", status=404,
                           body={"error": {"message": "model 'deepseek-r1:14b' not found, try pulling it first"}}))
    with pytest.raises(LLMError, match="not found, try pulling it first"):
        client(standin.base_url).complete(MESSAGES, max_tokens=5)


def test_503_then_success_is_retried(standin: StandinLLM) -> None:
    standin.play(Behaviour(kind="status", status=503, body={"error": "server busy"}),
                 Behaviour(pieces=["ok"]))
    result = client(standin.base_url, max_retries=2).complete(MESSAGES, max_tokens=5)
    assert result.answer == "ok"
    assert len(standin.requests) == 2


def test_503_retries_are_bounded(standin: StandinLLM) -> None:
    standin.play(Behaviour(kind="status", status=503, body={"error": "server busy"}))
    with pytest.raises(LLMError, match="HTTP 503: server busy"):
        client(standin.base_url, max_retries=2).complete(MESSAGES, max_tokens=5)
    assert len(standin.requests) == 3


def test_no_answer_within_read_timeout_is_not_retried(standin: StandinLLM) -> None:
    standin.play(Behaviour(kind="hang", delay=60))  # held until the stand-in stops
    started = time.monotonic()
    with pytest.raises(LLMError) as info:
        client(standin.base_url, read_timeout=0.5, max_retries=3).complete(MESSAGES, max_tokens=5)
    assert info.value.reason == "timeout"
    assert "llm.read_timeout" in str(info.value) and standin.base_url in str(info.value)
    assert time.monotonic() - started < 30  # the 0.5 s timeout fired, not the 60 s hang (a loaded machine is slow)
    assert len(standin.requests) == 1


def test_stall_mid_stream_times_out(standin: StandinLLM) -> None:
    standin.play(Behaviour(kind="stall", pieces=["partial"], delay=60))  # held until the stand-in stops
    stream = client(standin.base_url, read_timeout=0.5).stream(MESSAGES, max_tokens=5)
    got = []
    with pytest.raises(LLMError) as info:
        for piece in stream:
            got.append(piece.text)
    assert got == ["partial"]
    assert info.value.reason == "timeout"


@pytest.mark.parametrize("kind, words", [
    ("malformed", "malformed stream"),
    ("truncated", "stream ended before the model finished"),
    ("stream_error", "generation failed in the stand-in"),
])
def test_broken_streams_are_protocol_errors(standin: StandinLLM, kind: str, words: str) -> None:
    standin.play(Behaviour(kind=kind, pieces=["some", " text"]))
    with pytest.raises(LLMError) as info:
        client(standin.base_url).complete(MESSAGES, max_tokens=5)
    assert info.value.reason == "protocol"
    assert words in str(info.value)
    assert standin.base_url in str(info.value)
