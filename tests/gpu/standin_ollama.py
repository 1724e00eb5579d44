"""Stand-in for Ollama on the GPU VM, for tests only.

A stdlib HTTP server on 127.0.0.1 that implements the two calls the brain makes to Ollama:
``GET /api/version`` (``{"version": ...}``, the readiness check) and ``POST /v1/chat/completions``
(the OpenAI-compatible streamed chat: ``data: {chunk}`` events ending with ``data: [DONE]``).

It answers only while ``is_up()`` says the VM runs, and only ``boot_delay`` seconds after it
first saw it up (Ollama starting after the VM boots). Otherwise it drops the connection
without an answer, as a VM that is off would; an answer being streamed when the VM goes down
is cut off the same way. Tests link ``is_up`` to the TensorDock stand-in's
instance status, so starting and stopping the VM there brings this server up and down.

``hold()`` keeps every answer after its first piece until ``release()``: a test that needs an
answer in flight holds it on an event instead of betting on ``token_delay`` against the clock.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.standins.http import JsonHandler, LoopbackHTTPServer, chat_chunk

MODEL = "deepseek-standin"


class OllamaStandIn:
    """The server; ``pieces`` are the answer's content deltas, ``token_delay`` seconds apart."""

    def __init__(self, is_up: Callable[[], bool] = lambda: True, *, boot_delay: float = 0.0,
                 pieces: list[str] | None = None, token_delay: float = 0.0):
        self.is_up = is_up
        self.boot_delay = boot_delay
        self.pieces = pieces or ["Enable WAL", " mode [1]."]
        self.token_delay = token_delay
        self.version_calls = 0
        self.chat_requests: list[dict[str, Any]] = []
        self.dropped = 0
        self._up_since: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._released = threading.Event()
        self._released.set()
        self._http = LoopbackHTTPServer(_handler(self))

    @property
    def url(self) -> str:
        """Ollama's base URL (``gpu.ollama_url``); ``url + "/v1"`` is ``llm.base_url``."""
        return self._http.base_url

    def answering(self) -> bool:
        with self._lock:
            if not self.is_up():
                self._up_since = None
                return False
            if self._up_since is None:
                self._up_since = time.monotonic()
            return time.monotonic() - self._up_since >= self.boot_delay

    def hold(self) -> None:
        """From now on every answer stops after its first piece until :meth:`release`."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def start(self) -> OllamaStandIn:
        self._http.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._released.set()
        self._http.stop()


def _handler(server: OllamaStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def _drop(self) -> None:
            server.dropped += 1
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if not server.answering():
                return self._drop()
            if self.path != "/api/version":
                return self.send_json(404, {"error": "not found"})
            server.version_calls += 1
            self.send_json(200, {"version": "0.0.0-standin"})

        def do_POST(self) -> None:  # noqa: N802
            body = self.read_json() or {}
            if not server.answering():
                return self._drop()
            if self.path != "/v1/chat/completions":
                return self.send_json(404, {"error": {"message": f"no route {self.path}"}})
            server.chat_requests.append(body)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for n, piece in enumerate(server.pieces):
                if n == 1:
                    server._released.wait()  # set unless a test holds the answer (close() sets it)
                if server.token_delay:
                    server._stop.wait(server.token_delay)
                if not server.is_up():  # the VM went down under the answer: the stream dies with it
                    return self._drop()
                self.write_quietly(chat_chunk(MODEL, piece))
            self.write_quietly(chat_chunk(MODEL, finish="stop"))
            self.write_quietly(b"data: [DONE]\n\n")

    return Handler
