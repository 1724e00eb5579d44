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
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify

from .. import ask as ask_core
from ..embed import EmbedError
from ..llm import get_llm
from .auth import require_token
from .deps import get_config, get_db, get_searcher
from .errors import ApiError
from .params import filters, int_param, json_body

bp = Blueprint("ask", __name__, url_prefix="/api/v1")
bp.before_request(require_token)  # once, here: create_app runs many times in tests

KNOWN_FIELDS = {"question", "k", "source", "project", "since", "until", "stream", "show_thinking", "llm"}


def _bool_field(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_parameter", f"{name} must be true or false", field=name)
    return value


def _sse(event: str, data: Any) -> str:
    """One server-sent event; JSON data keeps newlines inside tokens off the framing."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _llm_unavailable(exc: ask_core.AskLLMError) -> tuple[Response, int]:
    """503 with the same payload as a streamed ``error`` event: the failure and the citations."""
    return jsonify(ask_core.error_payload(exc.error, exc.citations, exc.timings)), 503


@bp.post("/ask")
def ask():
    body = json_body()
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise ApiError(400, "invalid_parameter", f"unknown field {unknown[0]!r}", field=unknown[0])
    cfg = get_config()
    try:
        question = ask_core.validate_question(body.get("question"))
    except ask_core.AskInputError as exc:
        raise ApiError(400, "invalid_parameter", str(exc), field=exc.field) from None
    k = int_param(body.get("k"), "k", cfg["ask.k"], 1, 50)
    stream = _bool_field(body, "stream", False)
    show_thinking = _bool_field(body, "show_thinking", cfg["llm.show_thinking"])
    use_llm = _bool_field(body, "llm", True)
    f = filters(body)
    try:
        prep = ask_core.prepare(get_db(), get_searcher(), cfg, question, k=k, **f)
    except ask_core.AskInputError as exc:
        raise ApiError(400, "invalid_parameter", str(exc), field=exc.field) from None
    except EmbedError as exc:
        raise ApiError(503, "embedder_unavailable", f"cannot embed the question: {exc}") from None
    if not use_llm:
        return jsonify(ask_core.context_only(prep))
    llm = get_llm(cfg)
    if not stream:
        try:
            return jsonify(ask_core.answer(prep, llm, show_thinking))
        except ask_core.AskLLMError as exc:
            return _llm_unavailable(exc)
    try:
        events = ask_core.open_stream(prep, llm, show_thinking)
    except ask_core.AskLLMError as exc:
        return _llm_unavailable(exc)
    return Response(_frames(events), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _frames(events: Iterator[tuple[str, Any]]) -> Iterator[str]:
    for event, data in events:
        yield _sse(event, data)
