"""What every stand-in HTTP server shares: a threaded server on a free loopback port, served from
a daemon thread, and a quiet request handler that speaks JSON. Each stand-in adds only the
contract it imitates."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHTTPServer(ThreadingHTTPServer):
    """A client that gave up (the timeout tests) makes the late answer fail: expected, so no
    traceback on stderr; anything else is still reported."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class LoopbackHTTPServer:
    """``handler`` served on 127.0.0.1:<free port> until ``stop()``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler],
                 server_class: type[ThreadingHTTPServer] = QuietHTTPServer):
        self.httpd = server_class(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class JsonHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no request log on stderr, JSON in and out."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.write_quietly(data)

    def write_quietly(self, data: bytes) -> None:
        """Write and flush; a client that gave up (the timeout tests) is not an error here."""
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass


def chat_chunk(model: str, content: str | None = None, reasoning: str | None = None,
               finish: str | None = None) -> bytes:
    """One server-sent event of the OpenAI chat completions stream (``chat.completion.chunk``)."""
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    data = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"
