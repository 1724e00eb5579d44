"""POST /api/v1/ask against the stand-in LLM: answer shape, SSE framing, 503 with citations, 400s."""

from __future__ import annotations

import pytest

from brain.rag.ask import NO_SOURCES_ANSWER

from .helpers import CORPUS, make_ask_app, parse_sse
from .standin_llm import Behaviour, StandinLLM, closed_port_url

CORPUS_IDS = {it["id"] for it in CORPUS}


def test_answer_with_citations(ask_client, auth, standin: StandinLLM) -> None:
    standin.play(Behaviour(pieces=["Use WAL", " mode [1]."]))
    resp = ask_client.post("/api/v1/ask", json={"question": "How do I stop database is locked errors?"},
                           headers=auth)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["answer"] == "Use WAL mode [1]."
    assert body["model"] == "standin-model"
    assert [c["n"] for c in body["citations"]] == list(range(1, len(body["citations"]) + 1))
    assert body["citations"][0]["id"] == "note:sqlite-wal"
    assert {c["id"] for c in body["citations"]} <= CORPUS_IDS
    assert set(body["citations"][0]) == {"n", "id", "title", "uri", "source", "snippet"}
    assert {"retrieve_ms", "llm_first_token_ms", "llm_ms", "total_ms"} <= set(body["timings"])
    assert "thinking" not in body
    # what the LLM was sent: numbered sources, the question, the answer budget
    sent = standin.requests[0]
    assert sent["max_tokens"] == 64 and sent["stream"] is True
    user = sent["messages"][-1]["content"]
    assert "[1] SQLite WAL mode for concurrent readers" in user
    assert "PRAGMA journal_mode=WAL" in user
    assert user.endswith("Question: How do I stop database is locked errors?")


def test_filters_narrow_the_sources(ask_client, auth, standin: StandinLLM) -> None:
    resp = ask_client.post("/api/v1/ask", json={"question": "fixture hangs", "source": "claude",
                                                "project": "/home/dev/spotter"}, headers=auth)
    assert [c["id"] for c in resp.get_json()["citations"]] == ["claude:1111-2222"]


def test_k_limits_the_sources(ask_client, auth) -> None:
    resp = ask_client.post("/api/v1/ask", json={"question": "sqlite ollama fixture", "k": 2}, headers=auth)
    assert len(resp.get_json()["citations"]) == 2


def test_stream_sends_tokens_then_done_with_citations(ask_client, auth, standin: StandinLLM) -> None:
    standin.play(Behaviour(pieces=["Set ", "OLLAMA_CONTEXT_LENGTH", " [1]."]))
    resp = ask_client.post("/api/v1/ask", json={"question": "ollama context length", "stream": True}, headers=auth)
    assert resp.status_code == 200
    assert resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    events = parse_sse(resp.get_data(as_text=True))
    assert [e for e, _ in events] == ["token", "token", "token", "done"]
    done = events[-1][1]
    assert "".join(d["text"] for e, d in events if e == "token") == done["answer"] == "Set OLLAMA_CONTEXT_LENGTH [1]."
    assert done["citations"][0]["id"] == "note:ollama-context"
    assert done["model"] == "standin-model"


def test_think_blocks_hidden_by_default_and_shown_on_request(ask_client, auth, standin: StandinLLM) -> None:
    think = Behaviour(pieces=["<thi", "nk>the user asks about", " WAL</think>", "\n\nWAL [1]."])
    standin.play(think)
    hidden = ask_client.post("/api/v1/ask", json={"question": "wal?"}, headers=auth).get_json()
    assert hidden["answer"] == "WAL [1]." and "thinking" not in hidden
    standin.play(think)
    shown = ask_client.post("/api/v1/ask", json={"question": "wal?", "show_thinking": True}, headers=auth).get_json()
    assert shown["answer"] == "WAL [1]." and shown["thinking"] == "the user asks about WAL"
    standin.play(think)
    raw = ask_client.post("/api/v1/ask", json={"question": "wal?", "stream": True, "show_thinking": True},
                          headers=auth).get_data(as_text=True)
    events = parse_sse(raw)
    assert "".join(d["text"] for e, d in events if e == "thinking") == "the user asks about WAL"
    assert "".join(d["text"] for e, d in events if e == "token") == "WAL [1]."
    standin.play(think)
    raw = ask_client.post("/api/v1/ask", json={"question": "wal?", "stream": True}, headers=auth).get_data(as_text=True)
    assert "thinking" not in [e for e, _ in parse_sse(raw)]
    assert "the user asks" not in raw


def test_llm_unreachable_is_503_with_citations(db_path, auth) -> None:
    base = closed_port_url()
    app = make_ask_app(db_path, auth["Authorization"].split()[1], base)
    for stream in (False, True):  # a dead LLM is known before the stream starts: same JSON answer
        resp = app.test_client().post("/api/v1/ask", json={"question": "sqlite locked", "stream": stream},
                                      headers=auth)
        assert resp.status_code == 503
        assert resp.mimetype == "application/json"
        body = resp.get_json()
        assert body["error"]["code"] == "llm_unavailable"
        assert body["error"]["reason"] == "unreachable"
        assert f"{base}/chat/completions" in body["error"]["message"]
        assert body["citations"] and body["citations"][0]["id"] == "note:sqlite-wal"
        assert "retrieve_ms" in body["timings"]


@pytest.mark.parametrize("behaviour, reason", [
    (Behaviour(kind="status", status=500), "status"),
    (Behaviour(kind="hang", delay=10), "timeout"),
    (Behaviour(kind="malformed"), "protocol"),
])
def test_llm_failures_are_503_with_citations(ask_client, auth, standin: StandinLLM, behaviour, reason) -> None:
    standin.play(behaviour)
    resp = ask_client.post("/api/v1/ask", json={"question": "sqlite locked"}, headers=auth)
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["error"]["reason"] == reason
    assert standin.base_url in body["error"]["message"]
    assert body["citations"][0]["id"] == "note:sqlite-wal"


def test_failure_mid_stream_ends_with_an_error_event_carrying_citations(ask_client, auth, standin) -> None:
    standin.play(Behaviour(kind="truncated", pieces=["Partial", " answer"]))
    resp = ask_client.post("/api/v1/ask", json={"question": "sqlite locked", "stream": True}, headers=auth)
    assert resp.status_code == 200  # the status line was sent with the first token
    events = parse_sse(resp.get_data(as_text=True))
    assert [e for e, _ in events] == ["token", "token", "error"]
    err = events[-1][1]
    assert err["error"]["code"] == "llm_unavailable" and err["error"]["reason"] == "protocol"
    assert err["citations"][0]["id"] == "note:sqlite-wal"


def test_no_llm_returns_the_context_without_calling_the_llm(ask_client, auth, standin: StandinLLM) -> None:
    resp = ask_client.post("/api/v1/ask", json={"question": "sqlite locked", "llm": False}, headers=auth)
    body = resp.get_json()
    assert resp.status_code == 200
    assert body["answer"] is None and body["model"] is None
    assert body["context"].startswith("[1] SQLite WAL mode for concurrent readers")
    assert body["citations"][0]["n"] == 1
    assert standin.requests == []


def test_nothing_retrieved_answers_without_the_llm(ask_client, auth, standin: StandinLLM) -> None:
    resp = ask_client.post("/api/v1/ask", json={"question": "sqlite", "source": "browser"}, headers=auth)
    body = resp.get_json()
    assert resp.status_code == 200
    assert body["answer"] == NO_SOURCES_ANSWER and body["citations"] == []
    assert standin.requests == []


def test_small_context_packs_fewer_sources(db_path, auth, standin: StandinLLM) -> None:
    token = auth["Authorization"].split()[1]
    roomy = make_ask_app(db_path, token, standin.base_url).test_client().post(
        "/api/v1/ask", json={"question": "sqlite ollama fixture", "llm": False}, headers=auth).get_json()
    tight = make_ask_app(db_path, token, standin.base_url, **{"llm.context_tokens": 1024, "llm.answer_tokens": 720}
                         ).test_client().post(
        "/api/v1/ask", json={"question": "sqlite ollama fixture", "llm": False}, headers=auth).get_json()
    assert len(roomy["citations"]) == 3
    assert 0 < tight["prompt"]["sources_tokens_est"] <= tight["prompt"]["budget_tokens"] < 1024 - 720
    assert len(tight["context"]) < len(roomy["context"])
    assert 1 <= len(tight["citations"]) < 3


def test_requires_a_token(ask_client) -> None:
    resp = ask_client.post("/api/v1/ask", json={"question": "x"})
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("body, field", [
    ({}, "question"),
    ({"question": "   "}, "question"),
    ({"question": 42}, "question"),
    ({"question": "x" * 4001}, "question"),
    ({"question": "q", "k": 0}, "k"),
    ({"question": "q", "k": 51}, "k"),
    ({"question": "q", "k": "many"}, "k"),
    ({"question": "q", "stream": "yes"}, "stream"),
    ({"question": "q", "show_thinking": 1}, "show_thinking"),
    ({"question": "q", "llm": "off"}, "llm"),
    ({"question": "q", "source": "email"}, "source"),
    ({"question": "q", "since": "last tuesday"}, "since"),
    ({"question": "q", "since": "2026-11-02", "until": "2026-11-01"}, "since"),
    ({"question": "q", "project": ["a"]}, "project"),
    ({"question": "q", "temperature": 2}, "temperature"),
])
def test_bad_input_is_400_naming_the_field(ask_client, auth, standin: StandinLLM, body, field) -> None:
    resp = ask_client.post("/api/v1/ask", json=body, headers=auth)
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"]["field"] == field
    assert standin.requests == []


def test_body_must_be_a_json_object(ask_client, auth) -> None:
    assert ask_client.post("/api/v1/ask", data="question=x", headers=auth,
                           content_type="application/json").status_code == 400
    assert ask_client.post("/api/v1/ask", json=["question"], headers=auth).status_code == 400


def test_question_too_long_for_the_context_is_400(db_path, auth, standin: StandinLLM) -> None:
    app = make_ask_app(db_path, auth["Authorization"].split()[1], standin.base_url,
                       **{"llm.context_tokens": 1024, "llm.answer_tokens": 900})
    resp = app.test_client().post("/api/v1/ask", json={"question": "why " * 200}, headers=auth)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["field"] == "question"
    assert "llm.context_tokens" in resp.get_json()["error"]["message"]
