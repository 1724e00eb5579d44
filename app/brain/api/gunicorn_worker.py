"""brain-api's gunicorn worker: gthread, hardened against slow clients, with JSON errors.

Why a worker of our own: gunicorn's gthread worker gives a thread to a connection as soon as its
first bytes arrive, and that thread then blocks, without any time limit, until the request line
and headers are complete; a client that sends half a request and stops holds it for good, and
``threads`` such clients per process stop the API (``timeout`` does not help: the heartbeat comes
from the main loop, not from the stuck thread). And gunicorn answers its own errors (request
line too long, too many headers, a broken request) with an HTML page, where the API's contract
promises ``{"error": {"code", "message"}}``.

So this worker

- reads each request head (request line and headers) in the main loop, non-blocking, and hands
  the connection to a thread only once the head is complete: a stalled or trickling head costs
  a file descriptor, not a thread. The head must arrive within ``head_timeout`` seconds of the
  connection (or of its next request's first byte) — else ``408`` —, its request line within
  ``REQUEST_LINE_LIMIT`` bytes (else ``414``), the whole head within ``HEAD_LIMIT`` bytes (else
  ``431``). gunicorn's own ``limit_request_line`` cannot go above 8190 bytes, less than the
  documented 2,000-character ``q`` percent-encodes to, so it is off and this bounds the line.
- gives each connection a kernel receive and send timeout (``io_timeout``), so a body that stops
  arriving, or a client that stops reading the answer, frees the thread (``408`` from the API
  for the body, see ``brain.api.params.body_bytes``).
- writes gunicorn's own error answers as JSON, with gunicorn's status codes, logging and access
  log unchanged.

Plain HTTP/1.1 only: with TLS, HTTP/2, uWSGI or the PROXY protocol configured (brain-api runs
behind Caddy, which terminates TLS and HTTP/2) connections take gunicorn's own path.
"""

from __future__ import annotations

import json
import selectors
import socket
import struct
import time
from contextlib import suppress
from functools import partial
from http import HTTPStatus
from typing import Any, cast

from gunicorn.http.errors import ParseException
from gunicorn.http.parser import Parser
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn, ThreadWorker

# the documented 2,000-character ``q`` percent-encodes to 18 kB in CJK, 24 kB in 4-byte characters
REQUEST_LINE_LIMIT = 64 * 1024
HEAD_LIMIT = 128 * 1024
# how long a refused connection may take to finish sending what it had started (read and dropped),
# so that closing it does not reset the connection before the client has read the answer
LINGER_SECONDS = 2.0
LINGER_BYTES = 256 * 1024

# the error codes of gunicorn's own answers, in the API's snake_case (docs/API.md, "Errors")
ERROR_CODES = {400: "bad_request", 403: "forbidden", 408: "request_timeout", 414: "uri_too_long",
               417: "expectation_failed", 431: "headers_too_large", 501: "not_implemented"}


def _http1_parser(conn: TConn) -> Parser | None:
    """The connection's parser on the plain-HTTP path (``_reads_heads``): HTTP/1's, never HTTP/2's."""
    return cast("Parser | None", conn.parser)


def json_error(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 error answer in the API's JSON shape (the connection closes after it).

    A 5xx other than 501 says no more than the API's own ``internal_error`` does: the details
    are in the server log."""
    code = ERROR_CODES.get(status, "internal_error" if status >= 500 else "bad_request")
    if status >= 500 and status != 501:
        message = "internal server error (see the server log)"
    body = json.dumps({"error": {"code": code, "message": message[:500]}}).encode()
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class _JsonErrorSocket:
    """Stands in for the client socket while gunicorn writes one of its error pages.

    Why: ``Worker.handle_error`` picks the status, logs and writes the access log, then writes an
    HTML page through ``util.write_error``; this keeps all of that and turns only the page it
    sends into the JSON answer of the same status."""

    def __init__(self, sock: socket.socket, exc: BaseException):
        self._sock = sock
        self._exc = exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def sendall(self, data: bytes) -> None:
        status = data.split(b"\r\n", 1)[0].split(b" ", 2)[1:2]
        code = int(status[0]) if status and status[0].isdigit() else 500
        self._sock.sendall(json_error(code, str(self._exc) or HTTPStatus(code).phrase))


def _set_io_timeouts(sock: socket.socket, seconds: float) -> None:
    """Kernel-level receive/send timeouts (SO_RCVTIMEO/SO_SNDTIMEO).

    Why not ``settimeout``: gthread switches the socket between blocking and non-blocking mode,
    which resets Python's timeout; the kernel's stays, and a blocking read past it fails with
    EAGAIN, which gunicorn and the API treat as the client's failure."""
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


class _Head:
    """A connection whose request head is still arriving (or, ``closing``, one being refused)."""

    __slots__ = ("buf", "closing", "conn", "deadline", "drained")

    def __init__(self, conn: TConn, buf: bytes, timeout: float):
        self.conn = conn
        self.buf = bytearray(buf)
        self.deadline = time.monotonic() + timeout
        self.closing = False
        self.drained = 0


class BrainThreadWorker(ThreadWorker):
    """gthread with request heads read off the thread pool and JSON errors (see the module doc)."""

    head_timeout = 10.0  # seconds for the request line and headers
    io_timeout = 30.0  # seconds one read of a body, or one write of an answer, may wait for the client

    @classmethod
    def with_timeouts(cls, head_timeout: float, io_timeout: float) -> type[BrainThreadWorker]:
        """This worker with other timeouts (gunicorn takes a class as ``worker_class``)."""
        return type(cls.__name__, (cls,), {"head_timeout": head_timeout, "io_timeout": io_timeout})

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._heads: dict[TConn, _Head] = {}

    def _reads_heads(self, conn: TConn) -> bool:
        cfg = self.cfg
        return (not cfg.is_ssl and getattr(cfg, "protocol", "http") == "http" and cfg.proxy_protocol == "off"
                and not negotiation.prior_knowledge_allowed(cfg, conn.client))

    def enqueue_req(self, conn: TConn) -> None:
        """Every connection with a request to read comes here (new, kept alive, or pipelined):
        wait for its whole head in the main loop, then give it to a thread."""
        if not self._reads_heads(conn):
            super().enqueue_req(conn)
            return
        parser = _http1_parser(conn)
        buffered = parser.unreader.take_buffered() if parser is not None else b""
        head = _Head(conn, buffered, self.head_timeout)
        conn.sock.setblocking(False)
        self._heads[conn] = head
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, head))
        if head.buf:  # pipelined bytes may already hold a whole head
            self._examine(head)

    def _on_readable(self, head: _Head, _sock: Any) -> None:
        try:
            data = head.conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(head)
            return
        if not data:
            self._close(head)  # the client went away (before its request was complete, or after our answer)
            return
        if head.closing:
            head.drained += len(data)
            if head.drained > LINGER_BYTES:
                self._close(head)
            return
        head.buf += data
        self._examine(head)

    def _examine(self, head: _Head) -> None:
        buf = head.buf
        start = 2 if buf.startswith(b"\r\n") else 0  # one empty line may precede the request line
        line_end = buf.find(b"\r\n", start)
        if (line_end if line_end >= 0 else len(buf)) - start > REQUEST_LINE_LIMIT:
            self._refuse(head, 414, f"the request line is longer than {REQUEST_LINE_LIMIT} bytes")
            return
        end = buf.find(b"\r\n\r\n", start)
        if (end if end >= 0 else len(buf)) > HEAD_LIMIT:
            self._refuse(head, 431, f"the request line and headers are larger than {HEAD_LIMIT} bytes")
            return
        if end >= 0 or buf.count(b"\n") != buf.count(b"\r\n"):
            self._dispatch(head)  # complete, or a bare LF that gunicorn's parser refuses (400)

    def _forget(self, head: _Head) -> None:
        self._heads.pop(head.conn, None)
        with suppress(KeyError, ValueError, OSError):
            self.poller.unregister(head.conn.sock)

    def _dispatch(self, head: _Head) -> None:
        conn = head.conn
        self._forget(head)
        conn.init()  # the parser, on a blocking socket (plain HTTP: no read happens here)
        cast(Parser, _http1_parser(conn)).unreader.unread(bytes(head.buf))  # init() made it
        conn.data_ready = True
        _set_io_timeouts(conn.sock, self.io_timeout)
        super().enqueue_req(conn)

    def _close(self, head: _Head) -> None:
        self._forget(head)
        self.nr_conns -= 1
        head.conn.close()

    def _refuse(self, head: _Head, status: int, message: str) -> None:
        """Answer ``status`` and close, after reading (and dropping) what the client still sends
        for up to LINGER_SECONDS: closing with unread data would reset the connection, and the
        client could lose the answer."""
        client = head.conn.client
        self.log.warning("Invalid request from ip=%s: %s", client[0] if isinstance(client, tuple) else "", message)
        try:
            head.conn.sock.send(json_error(status, message))  # small: fits the socket buffer
            head.conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(head)
            return
        head.closing, head.buf = True, bytearray()
        head.deadline = time.monotonic() + LINGER_SECONDS

    def murder_pending(self) -> None:
        """Also time out request heads (called by the main loop at least once a second)."""
        super().murder_pending()
        now = time.monotonic()
        for head in list(self._heads.values()):
            if not self.alive or (head.closing and head.deadline <= now):
                self._close(head)  # stopping: a request not yet complete will not be served
            elif head.deadline <= now:
                self._refuse(head, 408, f"the request line and headers did not arrive within {self.head_timeout:g} s")

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        """A body the application did not read, and that turns out broken (a bad chunk size) or
        cut off while gunicorn drains it, closes the connection: the answer is already sent, so
        gunicorn must not write an error page after it."""
        try:
            # gunicorn 27's ThreadWorker has it; its stubs (types-gunicorn 26.2) do not know it yet
            return super()._keepalive_after(conn, keepalive)  # type: ignore[misc]
        except (ParseException, OSError) as exc:
            self.log.debug("Closing connection after an unread, broken body: %r", exc)
            return False

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        super().handle_error(req, _JsonErrorSocket(client, exc), addr, exc)  # type: ignore[arg-type]
