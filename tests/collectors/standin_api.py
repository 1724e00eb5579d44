"""Stand-in for brain-api (docs/API.md), for collector and client tests only.

A stdlib ``http.server`` on ``127.0.0.1`` and a free port implementing the parts of the contract
the collectors use: ``POST /api/v1/items`` (idempotent upsert keyed by id, answering
``inserted/updated/unchanged/queued``), ``GET``/``DELETE /api/v1/items/<id>``, ``GET
/api/v1/tombstones`` (what collectors fetch first; never scripted), bearer auth and JSON errors. Tests script failures per request: an HTTP status (``500``, ``429``...), a 400 naming
the index of a bad item, ``"timeout"`` (answer after the client gave up), ``"drop"`` (close the
connection without answering) or ``"html"`` (a 502 page from a proxy, not JSON). The real ``ApiClient`` talks to it over real HTTP.
The end-to-end tests use the real brain-api (``api_server`` fixture) instead.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.standins.http import JsonHandler, LoopbackHTTPServer

TOKEN = "standin-token"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout test) makes the late answer fail: expected, stay quiet."""


class BrainApiStandIn:
    def __init__(self, token: str = TOKEN):
        self.token = token
        self.items: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, answered status)
        self.script: list[str] = []  # failures to play, one per request, before normal answers
        self.timeout_delay = 60.0  # a "timeout" request is held this long at most, and never past stop()
        self.retry_after: str | None = None
        self.tombstones: list[dict[str, Any]] = []  # GET /api/v1/tombstones (never scripted, not in requests)
        self.tombstone_fetches = 0
        self.lock = threading.Lock()
        self._stopping = threading.Event()
        self._http = LoopbackHTTPServer(self._handler(), _Server)

    @property
    def url(self) -> str:
        return self._http.base_url

    def start(self) -> BrainApiStandIn:
        self._http.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # the held "timeout" requests end without an answer
        self._http.stop()

    def count(self, method: str) -> int:
        return sum(1 for m, _, _ in self.requests if m == method)

    def _next_failure(self) -> str | None:
        with self.lock:
            return self.script.pop(0) if self.script else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(JsonHandler):
            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                # recorded before the answer leaves: a client that has its answer sees the count
                standin.requests.append((self.command, self.path, status))
                self.send_json(status, body, headers)

            def _error(self, status: int, code: str, message: str, **extra: Any) -> None:
                headers = {"Retry-After": standin.retry_after} if status == 429 and standin.retry_after else None
                self._send(status, {"error": {"code": code, "message": message, **extra}}, headers)

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def _dispatch(self) -> None:
                if self.command == "GET" and urlsplit(self.path).path == "/api/v1/tombstones":
                    self._tombstones()  # what a collector fetches before it collects; the scripts are for items
                    return
                body = self._body() if self.command == "POST" else None
                failure = standin._next_failure()
                if failure == "drop":
                    standin.requests.append((self.command, self.path, 0))
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if failure == "html":  # a proxy in front of the API answering with an HTML page
                    data = b"<html><body>502 Bad Gateway</body></html>"
                    self.send_response(502)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    standin.requests.append((self.command, self.path, 502))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if failure == "timeout":  # no answer: the client's read timeout must fire, however slow the machine
                    standin.requests.append((self.command, self.path, 0))
                    standin._stopping.wait(standin.timeout_delay)
                    self.close_connection = True
                    return
                if failure is not None:
                    status, _, index = failure.partition(":")
                    extra = {"index": int(index), "field": "content"} if index else {}
                    self._error(int(status), "scripted", f"scripted failure {status}", **extra)
                    return
                if self.headers.get("Authorization") != f"Bearer {standin.token}":
                    self._error(401, "unauthorized", "missing or wrong bearer token")
                    return
                path = urlsplit(self.path).path
                if self.command == "POST" and path == "/api/v1/items":
                    self._upsert(body)
                elif path.startswith("/api/v1/items/"):
                    item_id = unquote(path[len("/api/v1/items/"):])
                    item = standin.items.get(item_id)
                    if item is None:
                        self._error(404, "not_found", f"no item with id {item_id!r}")
                    elif self.command == "DELETE":
                        del standin.items[item_id]
                        self._send(200, {"deleted": 1})
                    else:
                        self._send(200, item)
                elif path == "/healthz":
                    self._send(200, {"status": "ok"})
                else:
                    self._error(404, "not_found", "no such endpoint")

            def _tombstones(self) -> None:
                standin.tombstone_fetches += 1
                if self.headers.get("Authorization") != f"Bearer {standin.token}":
                    self.send_json(401, {"error": {"code": "unauthorized", "message": "missing or wrong bearer token"}})
                    return
                self.send_json(200, {"tombstones": standin.tombstones})

            def _upsert(self, body: Any) -> None:
                items = body.get("items") if isinstance(body, dict) else None
                if not isinstance(items, list):
                    self._error(400, "invalid_field", "items must be a list", field="items")
                    return
                for i, it in enumerate(items):
                    if not isinstance(it, dict) or not isinstance(it.get("id"), str) or \
                            not isinstance(it.get("content"), str) or it.get("source") not in (
                                "claude", "agent", "browser", "file", "note"):
                        self._error(400, "invalid_item", f"items[{i}] is invalid", index=i)
                        return
                counts = {"inserted": 0, "updated": 0, "unchanged": 0, "queued": 0}
                with standin.lock:
                    for it in items:
                        old = standin.items.get(it["id"])
                        key = "inserted" if old is None else "unchanged" if old == it else "updated"
                        counts[key] += 1
                        standin.items[it["id"]] = it
                self._send(200, counts)

            do_GET = do_POST = do_DELETE = _dispatch

        return Handler
