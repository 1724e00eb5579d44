"""Stand-in for the OpenAI embeddings API (``POST /v1/embeddings``), for tests only.

It implements the documented request/response contract (``model``, ``input`` as a string or a
list; ``data[].embedding`` with ``index``, ``usage.prompt_tokens``) and returns deterministic
pseudo-vectors derived from each text's hash. It lets tests inject failures: a number of 429
answers (with ``Retry-After``), 500s, or slow answers, and records every request it saw.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import numpy as np

from tests.standins.http import JsonHandler, LoopbackHTTPServer


class EmbeddingsStandIn:
    def __init__(self, dim: int = 1536):
        self.dim = dim
        self.requests: list[dict[str, Any]] = []
        self.fail_429 = 0  # answer this many requests with 429 first
        self.fail_500 = 0
        self.fail_503 = 0  # "overloaded": what a busy API answers for a while
        self.refuse_marker = ""  # answer 400 (a permanent refusal) to any batch holding a text with this marker
        self.delay = 0.0
        self.expected_key = "sk-test"
        self._server = LoopbackHTTPServer(self._handler())

    @property
    def url(self) -> str:
        return self._server.base_url + "/v1"

    def start(self) -> EmbeddingsStandIn:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim)
        return (v / np.linalg.norm(v)).tolist()

    def _handler(self):
        outer = self

        class Handler(JsonHandler):
            _send = JsonHandler.send_json

            def do_POST(self) -> None:
                body = self.read_json() or {}
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if outer.delay:
                    time.sleep(outer.delay)
                if self.path != "/v1/embeddings":
                    return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                if self.headers.get("Authorization") != f"Bearer {outer.expected_key}":
                    return self._send(401, {"error": {"message": "Incorrect API key provided",
                                                      "type": "invalid_request_error"}})
                if outer.fail_429 > 0:
                    outer.fail_429 -= 1
                    return self._send(429, {"error": {"message": "Rate limit reached", "type": "requests"}},
                                      {"Retry-After": "0"})
                if outer.fail_500 > 0:
                    outer.fail_500 -= 1
                    return self._send(500, {"error": {"message": "The server had an error", "type": "server_error"}})
                if outer.fail_503 > 0:
                    outer.fail_503 -= 1
                    return self._send(503, {"error": {"message": "The engine is currently overloaded",
                                                      "type": "server_error"}})
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                if outer.refuse_marker and any(outer.refuse_marker in t for t in inputs):
                    return self._send(400, {"error": {"message": "This model's maximum context length is 8192 "
                                                      "tokens", "type": "invalid_request_error"}})
                vectors = [outer.vector(t) for t in inputs]
                if body.get("encoding_format") == "base64":
                    vectors = [base64.b64encode(np.asarray(v, "<f4").tobytes()).decode() for v in vectors]
                data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
                data.reverse()  # the API does not promise order: clients must sort by index
                tokens = sum(len(t.split()) for t in inputs)
                self._send(200, {"object": "list", "data": data, "model": body["model"],
                                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

        return Handler
