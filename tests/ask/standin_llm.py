"""Stand-in for an OpenAI-compatible chat server (Ollama /v1, llama.cpp), for the error paths.

A real model cannot be made to time out, fail with 500 or send a broken stream on demand, so
this small HTTP server on 127.0.0.1 implements ``POST /v1/chat/completions`` as documented
(server-sent events ``data: {chunk}`` ending with ``data: [DONE]``) and plays a script of
behaviours, one per request. The code under test uses its real ``openai`` client over real HTTP.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.conftest import closed_port_url as _held_closed_port_url
from tests.standins.http import JsonHandler, LoopbackHTTPServer, chat_chunk


@dataclass
class Behaviour:
    """What the stand-in does with one request.

    kind: ``stream`` (pieces as content deltas, then finish_reason and [DONE]), ``status``
    (an HTTP error with a JSON body), ``hang`` (say nothing for ``delay`` seconds), ``stall``
    (send ``pieces`` then go silent for ``delay``), ``malformed`` (a data line that is not JSON),
    ``truncated`` (pieces, then close without finish_reason or [DONE]), ``stream_error`` (pieces,
    then an ``{"error": ...}`` event as llama.cpp sends when generation fails).
    """

    kind: str = "stream"
    pieces: list[str] = field(default_factory=lambda: ["Hello", " from", " the stand-in [1]."])
    reasoning: list[str] = field(default_factory=list)  # deltas in reasoning_content
    status: int = 500
    body: dict[str, Any] = field(default_factory=lambda: {"error": {"message": "stand-in failure"}})
    delay: float = 0.0
    model: str = "standin-model"


class StandinLLM:
    """The server; ``script`` is consumed one behaviour per request, the last one repeats."""

    def __init__(self) -> None:
        self.script: list[Behaviour] = [Behaviour()]
        self.requests: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._http = LoopbackHTTPServer(_handler(self))

    @property
    def base_url(self) -> str:
        return self._http.base_url + "/v1"

    def play(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self.script = list(behaviours)
            self.requests = []

    def next_behaviour(self, body: dict[str, Any]) -> Behaviour:
        with self._lock:
            self.requests.append(body)
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def start(self) -> StandinLLM:
        self._http.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self._http.stop()


def _handler(server: StandinLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            body = self.read_json() or {}
            if self.path != "/v1/chat/completions":
                self.send_json(404, {"error": {"message": f"no route {self.path}"}})
                return
            b = server.next_behaviour(body)
            if b.kind == "hang":
                server.stop.wait(b.delay)
                return
            if b.kind == "status":
                self.send_json(b.status, b.body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self._events(b)

        def _events(self, b: Behaviour) -> None:
            for r in b.reasoning:
                self.write_quietly(chat_chunk(b.model, reasoning=r))
            for p in b.pieces:
                self.write_quietly(chat_chunk(b.model, content=p))
            if b.kind == "stall":
                server.stop.wait(b.delay)
                return
            if b.kind == "malformed":
                self.write_quietly(b"data: {this is not json\n\n")
                return
            if b.kind == "truncated":
                return
            if b.kind == "stream_error":
                self.write_quietly(b'data: {"error": {"message": "generation failed in the stand-in"}}\n\n')
                return
            self.write_quietly(chat_chunk(b.model, finish="stop"))
            self.write_quietly(b"data: [DONE]\n\n")

    return Handler


def closed_port_url() -> str:
    """A loopback URL that refuses connections (its port stays held for the test run)."""
    return _held_closed_port_url("/v1")
