"""``brain ask`` over real HTTP to a brain-api (threaded werkzeug) backed by the stand-in LLM."""

from __future__ import annotations

import json

import click
import pytest

from brain.cli.ask import iter_sse
from brain.cli.main import main

from .helpers import make_ask_app
from .standin_llm import Behaviour, StandinLLM, closed_port_url


@pytest.fixture
def cli_env(ask_app, serve_app, auth) -> dict[str, str]:
    return {"BRAIN_API_URL": serve_app(ask_app), "BRAIN_TOKEN": auth["Authorization"].split()[1]}


def test_streams_the_answer_then_numbered_sources(runner, cli_env, standin: StandinLLM) -> None:
    standin.play(Behaviour(pieces=["Enable ", "WAL", " [1]."]))
    result = runner.invoke(main, ["ask", "database is locked during ingest"], env=cli_env)
    assert result.exit_code == 0, result.output
    answer, _, sources = result.output.partition("Sources:")
    assert answer.strip() == "Enable WAL [1]."
    lines = [ln.strip() for ln in sources.strip().splitlines()]
    assert lines[0].startswith("[1] SQLite WAL mode for concurrent readers  (note)")
    assert [ln.split("]")[0] for ln in lines] == [f"[{n}" for n in range(1, len(lines) + 1)]
    assert standin.requests[0]["stream"] is True


def test_json_prints_the_api_answer(runner, cli_env, standin: StandinLLM) -> None:
    result = runner.invoke(main, ["ask", "fixture hangs", "--json", "--source", "claude", "-k", "1"], env=cli_env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["answer"] == "Hello from the stand-in [1]."
    assert [c["id"] for c in data["citations"]] == ["claude:1111-2222"]


def test_no_llm_prints_the_context_only(runner, cli_env, standin: StandinLLM) -> None:
    result = runner.invoke(main, ["ask", "ollama context", "--no-llm"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("[1] Ollama context length")
    assert "OLLAMA_CONTEXT_LENGTH" in result.output and "Sources:" in result.output
    assert standin.requests == []


def test_think_flag_shows_reasoning(runner, cli_env, standin: StandinLLM) -> None:
    standin.play(Behaviour(pieces=["<think>pondering</think>", "Answer [1]."]))
    shown = runner.invoke(main, ["ask", "wal", "--think"], env=cli_env)
    assert "pondering" in shown.output and "Answer [1]." in shown.output
    standin.play(Behaviour(pieces=["<think>pondering</think>", "Answer [1]."]))
    hidden = runner.invoke(main, ["ask", "wal"], env=cli_env)
    assert "pondering" not in hidden.output and "Answer [1]." in hidden.output


@pytest.mark.parametrize("extra", [[], ["--no-stream"]])
def test_llm_down_prints_error_and_sources_and_fails(runner, db_path, auth, serve_app, extra) -> None:
    app = make_ask_app(db_path, auth["Authorization"].split()[1], closed_port_url())
    env = {"BRAIN_API_URL": serve_app(app), "BRAIN_TOKEN": auth["Authorization"].split()[1]}
    result = runner.invoke(main, ["ask", "sqlite locked", *extra], env=env)
    assert result.exit_code == 1
    assert "cannot connect" in result.output and "/chat/completions" in result.output
    assert "[1] SQLite WAL mode for concurrent readers" in result.output


def test_failure_mid_stream_keeps_partial_answer_and_sources(runner, cli_env, standin: StandinLLM) -> None:
    standin.play(Behaviour(kind="stream_error", pieces=["Half an", " answer"]))
    result = runner.invoke(main, ["ask", "sqlite locked"], env=cli_env)
    assert result.exit_code == 1
    assert "Half an answer" in result.output
    assert "generation failed in the stand-in" in result.output
    assert "[1] SQLite WAL mode" in result.output


def test_json_on_llm_failure_prints_the_error_body(runner, cli_env, standin: StandinLLM) -> None:
    standin.play(Behaviour(kind="status", status=500))
    result = runner.invoke(main, ["ask", "sqlite locked", "--json"], env=cli_env)
    assert result.exit_code == 1
    body = json.loads(result.output)
    assert body["error"]["code"] == "llm_unavailable" and body["citations"]


def test_api_errors_are_reported(runner, cli_env) -> None:
    bad_token = runner.invoke(main, ["ask", "q"], env=cli_env | {"BRAIN_TOKEN": "wrong"})
    assert bad_token.exit_code == 1 and "invalid bearer token" in bad_token.output
    bad_date = runner.invoke(main, ["ask", "q", "--since", "yesterday"], env=cli_env)
    assert bad_date.exit_code == 1 and "field since" in bad_date.output


def test_unreachable_brain_api_names_the_url(runner) -> None:
    url = closed_port_url().removesuffix("/v1")
    result = runner.invoke(main, ["ask", "q"], env={"BRAIN_API_URL": url, "BRAIN_TOKEN": "t",
                                                    "BRAIN_CLIENT_MAX_RETRIES": "0"})
    assert result.exit_code == 1
    assert f"cannot reach brain-api at {url}/api/v1/ask: connection refused" in result.output


def test_only_connects_are_retried_and_waits_use_the_injected_sleep(tmp_path) -> None:
    from brain.cli.ask import CONNECT_RETRIES, AskHttp
    from brain.shared import config
    from brain.shared.settings import LaptopConfig

    url = closed_port_url().removesuffix("/v1")
    (tmp_path / "config.toml").write_text("")
    cfg = config.load(tmp_path / "config.toml", env={"BRAIN_API_URL": url, "BRAIN_TOKEN": "t"}, kind=LaptopConfig)
    sleeps: list[float] = []
    with pytest.raises(click.ClickException, match=f"after {CONNECT_RETRIES + 1} attempts"):
        AskHttp(cfg, sleep=sleeps.append).post({"question": "q"}, stream=True)
    assert sleeps == [0.0, 1.0]  # urllib3's backoff from 0.5 s: at once, then 1 s


def test_sse_parser_handles_split_bytes_and_multiline_data() -> None:
    raw = b'event: token\ndata: {"text": "h\\u00e9"}\n\n: keepalive\n\nevent: done\ndata: {"a":\ndata: 1}\n\n'
    raw = raw.replace(b"\\u00e9", "é".encode())  # a two-byte character, split below
    chunks = [raw[i:i + 3] for i in range(0, len(raw), 3)]
    events = list(iter_sse(iter(chunks)))
    assert [(e.event, e.data) for e in events] == [("token", {"text": "hé"}), ("done", {"a": 1})]


@pytest.mark.parametrize("raw", [b'event: done\ndata: {"answer": "cut', b'event: token\ndata: {"text": "a"}\n\ndata: 1\n'])
def test_a_stream_cut_in_the_middle_of_an_event_is_an_error(raw: bytes) -> None:
    with pytest.raises(click.ClickException, match="in the middle of an event"):
        list(iter_sse(iter([raw])))


def test_a_stream_ending_after_a_whole_event_or_a_comment_is_fine() -> None:
    events = list(iter_sse(iter([b'event: done\r\ndata: {"a": 1}\r\n\r\n', b": bye\n"])))
    assert [(e.event, e.data) for e in events] == [("done", {"a": 1})]


def test_status_events_are_shown_while_the_gpu_starts(capsys) -> None:
    from brain.cli.ask import Event, _consume

    events = [Event("status", {"stage": "starting", "message": "starting the GPU VM"}),
              Event("token", {"text": "Hello"}), Event("done", {"answer": "Hello", "citations": []})]
    final = _consume(iter(events), show_thinking=False)
    out = capsys.readouterr()
    assert final is not None and final.event == "done"
    assert "[starting the GPU VM]" in out.err and out.out.startswith("Hello")
