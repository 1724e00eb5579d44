"""``POST /api/v1/ask``: answers from the LLM with numbered citations, whole or as server-sent events.

Body: ``{"question", "k"?, "source"?, "project"?, "since"?, "until"?, "stream"?, "show_thinking"?, "llm"?}``.

- ``stream: false`` (default) → ``200 {"answer", "citations": [{"n", "id", "title", "uri", "source",
  "snippet"}], "model", "timings", "prompt", "finish_reason"}`` (+ ``"thinking"`` when asked).
- ``stream: true`` → ``text/event-stream``; each event's data is JSON: ``token {"text"}`` pieces
  (and ``thinking {"text"}`` when asked), then exactly one of ``done`` (the same object as the
  non-streaming answer) or ``error`` (``{"error", "citations", "timings"}``, when the LLM fails
  after the stream began).
- ``llm: false`` → no LLM call: the citations and ``"context"``, the packed sources as the model
  would read them (``brain ask --no-llm``).
- LLM unreachable, timing out or failing before the answer starts → ``503 {"error": {"code":
  "llm_unavailable", "message" (names the endpoint), "reason"}, "citations", "timings"}``.

With a GPU VM configured (``gpu.instance_id``, issue 7) an ask that needs the LLM first makes
sure the VM is up (``brain.gpu.control``): it counts as in flight until its answer ends (the idle stop
waits for it); if the VM is stopped it starts it (once for all concurrent asks) and waits for
Ollama, streaming ``status {"stage", "message", "state", "elapsed_s"}`` events meanwhile; with
``gpu.auto_start`` off, or past ``gpu.monthly_budget_usd``, it answers from retrieval only
(``"retrieval_only": true``, ``"reason"``, the note as ``answer``, no LLM call). A failed start
answers ``503 {"error": {"code": "gpu_unavailable", ...}, "citations", "timings"}`` (or an
``error`` event once streaming). Without ``gpu.instance_id`` nothing of this runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify

from brain.api import schema
from brain.api.deps import get_config, get_db, get_searcher
from brain.api.errors import ApiError
from brain.api.gpu import get_gpu
from brain.core import store
from brain.core.embed import EmbedError
from brain.gpu import control as gpu
from brain.gpu import starts as gpu_starts
from brain.rag import ask as ask_core
from brain.rag.llm import LLMClient, get_llm
from brain.shared.settings import ServerConfig

bp = Blueprint("ask", __name__, url_prefix="/api/v1")

def _sse(event: str, data: Any) -> str:
    """One server-sent event; JSON data keeps newlines inside tokens off the framing."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _llm_unavailable(exc: ask_core.AskLLMError) -> tuple[Response, int]:
    """503 with the same payload as a streamed ``error`` event: the failure and the citations."""
    return jsonify(ask_core.error_payload(exc.error, exc.citations, exc.timings)), 503


@bp.post("/ask")
@schema.operation("Answer a question from the brain's memory, with numbered citations", schema.AskAnswer,
                  body=schema.AskRequest, stream=True, errors={
                      400: "A field is wrong, or the question leaves no room for sources in llm.context_tokens.",
                      503: "The LLM is unreachable or failing (`llm_unavailable`, `llm_context_exceeded`), the GPU "
                           "VM did not start (`gpu_unavailable`) or the question cannot be embedded "
                           "(`embedder_unavailable`): `citations` and `timings` still come with it."})
def ask(body: schema.AskRequest):
    cfg = get_config()
    stream = bool(body.stream)
    show_thinking = cfg.llm.show_thinking if body.show_thinking is None else body.show_thinking
    use_llm = body.llm is not False
    try:
        prep = ask_core.prepare(get_db(), get_searcher(), cfg, body.question, k=body.k or cfg.ask.k, **body.filters())
    except ask_core.AskInputError as exc:
        raise ApiError(400, "invalid_parameter", str(exc), field=exc.field) from None
    except EmbedError as exc:
        raise ApiError(503, "embedder_unavailable", f"cannot embed the question: {exc}") from None
    if not use_llm:
        return jsonify(ask_core.context_only(prep))
    llm = get_llm(cfg)
    if prep.packed.sources:  # without sources there is no LLM call, so no GPU either
        try:
            control = get_gpu()  # None without gpu.instance_id: ask works as it always did
        except gpu.GpuError as exc:
            return _gpu_unavailable(exc, prep)
        if control is not None:
            return _ask_on_gpu(control, cfg, prep, llm, stream, show_thinking)
    return _answer(prep, llm, stream, show_thinking)


def _answer(prep: ask_core.Prepared, llm: LLMClient, stream: bool, show_thinking: bool,
            ticket: gpu.Ticket | None = None, gpu_wait_ms: float | None = None):
    """Answer with an LLM believed reachable; ``ticket`` (an ask in flight) ends with the answer."""
    if not stream:
        try:
            return jsonify(_with_wait(ask_core.answer(prep, llm, show_thinking), gpu_wait_ms))
        except ask_core.AskLLMError as exc:
            return _llm_unavailable(exc)
        finally:
            if ticket is not None:
                ticket.end()
    try:
        events = ask_core.open_stream(prep, llm, show_thinking)
    except ask_core.AskLLMError as exc:
        if ticket is not None:
            ticket.end()
        return _llm_unavailable(exc)
    return _event_stream(events, ticket)


def _event_stream(events: Iterator[tuple[str, Any]], ticket: gpu.Ticket | None = None) -> Response:
    resp = Response(_frames(events, ticket), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    if ticket is not None:
        resp.call_on_close(ticket.end)  # also when the client leaves before the first event
    return resp


def _frames(events: Iterator[tuple[str, Any]], ticket: gpu.Ticket | None = None) -> Iterator[str]:
    try:
        for event, data in events:
            yield _sse(event, data)
    finally:
        if ticket is not None:
            ticket.end()


# --- the GPU VM (issue 7) -------------------------------------------------------------------------


def _with_wait(result: dict[str, Any], gpu_wait_ms: float | None) -> dict[str, Any]:
    if gpu_wait_ms is not None:
        result["timings"]["gpu_wait_ms"] = round(gpu_wait_ms, 1)
    return result


def _note(exc: gpu.CannotStart) -> str:
    """The answer of a retrieval-only ask: why there is no LLM answer, and how to get one."""
    if isinstance(exc, gpu.BudgetExceeded):
        return (f"No LLM answer: the GPU VM is stopped and was not started because {exc.message}. "
                "These are the sources the brain found.")
    return ("No LLM answer: the GPU VM is stopped and gpu.auto_start is off. These are the sources the "
            "brain found; start the GPU with `brain gpu start` (or POST /api/v1/gpu/start) for answers.")


def _gpu_payload(exc: gpu.GpuError, prep: ask_core.Prepared) -> dict[str, Any]:
    """The JSON of a failed GPU start: the error, plus the memory that was found."""
    return {"error": {"code": "gpu_unavailable", "message": exc.message, "reason": exc.code},
            "citations": prep.packed.citations, "timings": prep.timings()}


def _gpu_unavailable(exc: gpu.GpuError, prep: ask_core.Prepared) -> tuple[Response, int]:
    return jsonify(_gpu_payload(exc, prep)), 503


def _ask_on_gpu(control: gpu.GpuControl, cfg: ServerConfig, prep: ask_core.Prepared, llm: LLMClient, stream: bool,
                show_thinking: bool):
    """Make sure the GPU VM is up (start it, or answer retrieval-only), then answer."""
    ticket = control.begin_request("ask")  # before any check: the idle stop must see this ask
    try:
        ready = control.ready_now()
        if ready:
            return _answer(prep, llm, stream, show_thinking, ticket)
        if stream:
            return _event_stream(_start_then_stream(control, cfg, prep, llm, show_thinking), ticket)
        started = time.monotonic()
        control.ensure_ready(auto_start=cfg.gpu.auto_start, origin="ask")
        return _answer(prep, llm, False, show_thinking, ticket, (time.monotonic() - started) * 1000)
    except gpu.CannotStart as exc:
        ticket.end()
        return jsonify(ask_core.retrieval_only(prep, _note(exc), exc.code))
    except gpu.GpuError as exc:
        ticket.end()
        return _gpu_unavailable(exc, prep)
    except BaseException:
        ticket.end()
        raise


def _usual_start(cfg: ServerConfig) -> float | None:
    """Own connections: these run while the response streams, outside the request's context."""
    conn = store.connect(cfg.server.db_path)
    try:
        return gpu_starts.usual(conn)
    finally:
        conn.close()


def _record_start(cfg: ServerConfig, seconds: float) -> None:
    conn = store.connect(cfg.server.db_path)
    try:
        gpu_starts.record(conn, seconds)
    finally:
        conn.close()


def _start_then_stream(control: gpu.GpuControl, cfg: ServerConfig, prep: ask_core.Prepared, llm: LLMClient,
                       show_thinking: bool) -> Iterator[tuple[str, Any]]:
    """SSE events: ``status`` while the GPU VM starts, then the answer (or retrieval only).

    Each status says how long a start usually takes (``usual_s``, measured: ``brain.gpu.starts``;
    null before the first) and the most it may take (``timeout_s``, ``gpu.start_timeout``)."""
    started = time.monotonic()
    usual, booting = _usual_start(cfg), False
    try:
        for progress in control.start_events(auto_start=cfg.gpu.auto_start, origin="ask"):
            booting = booting or progress.stage == "vm_starting"
            if progress.stage == "ready" and booting:
                _record_start(cfg, time.monotonic() - started)
            yield "status", {**progress.as_dict(), "usual_s": usual, "timeout_s": cfg.gpu.start_timeout}
    except gpu.CannotStart as exc:
        out = ask_core.retrieval_only(prep, _note(exc), exc.code)
        yield "status", {"stage": "retrieval_only", "message": exc.message, "state": "stopped",
                         "elapsed_s": round(time.monotonic() - started, 1)}
        yield "token", {"text": out["answer"]}
        yield "done", out
        return
    except gpu.GpuError as exc:
        yield "error", _gpu_payload(exc, prep)
        return
    wait_ms = (time.monotonic() - started) * 1000
    try:
        events = ask_core.open_stream(prep, llm, show_thinking)
    except ask_core.AskLLMError as exc:
        yield "error", ask_core.error_payload(exc.error, exc.citations, exc.timings)
        return
    for event, data in events:
        yield event, (_with_wait(data, wait_ms) if event == "done" else data)
