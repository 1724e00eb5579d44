"""Helpers for the hardening tests: raw HTTP/1.1 over a socket (for requests a client library will
not send), a real brain-api started with settings of the test's choosing, and a store snapshot."""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import _ONNX_CACHE, ApiServer, start_api_server


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    rest: bytes  # anything the server sent after the answer's declared body

    def json(self) -> Any:
        return json.loads(self.body)


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def send_raw(url: str, data: bytes, timeout: float = 15.0) -> Answer:
    """Send ``data`` as it is, read until the server closes (or the deadline), parse one answer.

    A server may answer and close before the client has sent everything (an over-long request
    line): the send error is ignored and the answer read all the same."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(address(url), timeout=timeout) as sock:
        with suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        received = bytearray()
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
            parsed = parse_answer(bytes(received))
            if parsed is not None and "close" not in parsed.headers.get("connection", "close"):
                return parsed  # a kept-alive answer: complete once its body is there
    parsed = parse_answer(bytes(received))
    if parsed is None:
        raise AssertionError(f"no complete HTTP answer within {timeout} s: {bytes(received)[:500]!r}")
    return parsed


def parse_answer(data: bytes) -> Answer | None:
    """The first HTTP answer in ``data``, or None while it is incomplete."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "-1"))
    body_start = end + 4
    if length < 0 or len(data) < body_start + length:
        return None
    return Answer(status, headers, data[body_start:body_start + length], data[body_start + length:])


def request_bytes(method: str, target: str, token: str, body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> bytes:
    """One HTTP/1.1 request with the bearer token, closing the connection after the answer."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}",
             "Connection: close"]
    extra = dict(headers or {})
    if body is not None and "Transfer-Encoding" not in extra:
        extra.setdefault("Content-Type", "application/json")
        extra.setdefault("Content-Length", str(len(body)))
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def assert_json_error(answer: Answer, status: int, code: str | None = None) -> dict[str, Any]:
    """The answer is ``status`` in the contract's error shape (and ``code``, when given)."""
    assert answer.status == status, (answer.status, answer.body[:500])
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
    error = answer.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str), error
    if code is not None:
        assert error["code"] == code, error
    assert b"<html" not in answer.rest.lower(), answer.rest[:300]
    return error


def start_server(tmp: Path, settings: dict[str, str] | None = None, workers: int = 2) -> ApiServer:
    """A real brain-api (gunicorn) with its own home folder, so that a module-scoped server reads
    no developer's config (the per-test home of conftest does not exist yet at module scope)."""
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_STATE_HOME": str(home / ".local/state"), "XDG_DATA_HOME": str(home / ".local/share"),
           "XDG_CACHE_HOME": str(home / ".cache"), "BRAIN_EMBED_ONNX_CACHE_DIR": str(_ONNX_CACHE),
           "BRAIN_SERVER_EMBED_WORKER": "false"}
    env.update(settings or {})
    return start_api_server(tmp, env, workers=workers)


def snapshot(db: Path) -> tuple[str, str]:
    """(sha256 of every item row and chunk, PRAGMA integrity_check) of a database, read-only."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        digest = hashlib.sha256()
        for table, order in (("items", "id"), ("chunks", "id"), ("embed_queue", "id")):
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}"):
                digest.update(repr(tuple(row)).encode("utf-8", "surrogatepass"))
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    return digest.hexdigest(), integrity
