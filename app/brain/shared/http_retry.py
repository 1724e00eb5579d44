"""One retry policy for every ``requests`` client of the brain: urllib3's ``Retry`` mounted through a
``requests`` adapter, with a timeout on every call.

Why urllib3's and not a loop of our own: it already knows which failures happened before the request
reached the server (connect errors: always safe to retry) and which after (read errors and statuses:
safe only for the methods allowed), counts each kind, backs off exponentially (no wait before the first
retry, then ``backoff * 2**n`` capped at ``max_backoff``) and honours ``Retry-After``. What is added here
is small: the wait goes through an injected ``sleep`` (tests pass ``list.append`` and never wait), a
``Retry-After`` is capped at ``max_backoff`` like the backoff, each retry is logged with its URL and
cause, and an exhausted policy says how many attempts it made.

Used by both sides (the laptop's brain-api client and ``brain ask``; the server's TensorDock client and
LLM context probe), so it lives in ``brain.shared`` and imports neither side.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    InvalidHeader,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

# "Try again later": rate limited (429), a server error or a proxy in front of a restarting server
# (500, 502, 503, 504), or a server whose disk is full (507: nothing was stored, and the same request
# succeeds once space returns, so the caller keeps it and sends it again rather than dropping it).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 507})

Timeout = float | tuple[float, float]


class RetriesExhausted(MaxRetryError):
    """urllib3's MaxRetryError that also says how many attempts were made."""

    def __init__(self, pool: Any, url: str, reason: Exception | None, attempts: int):
        super().__init__(pool, url, reason)
        self.attempts = attempts


class Backoff(Retry):
    """urllib3's Retry, waiting through ``sleep`` (injected) and logging each retry.

    Only the statuses in ``status_forcelist`` are retried: urllib3's own extra rule (413/429/503 with
    a ``Retry-After`` header) is off, so what a client retries is what its policy lists.
    """

    RETRY_AFTER_STATUS_CODES = frozenset[int]()

    def __init__(self, *args: Any, sleep: Callable[[float], None] = time.sleep, **kw: Any):
        super().__init__(*args, **kw)
        self.sleep_fn = sleep
        self.origin = ""  # scheme://host:port of the last attempt, for the log line

    def new(self, **kw: Any) -> Self:
        fresh = super().new(**kw)
        fresh.sleep_fn, fresh.origin = self.sleep_fn, self.origin
        return fresh

    def delay(self, response: BaseHTTPResponse | None = None) -> float:
        """Seconds before the next attempt: the server's ``Retry-After`` if it sent one, else the backoff;
        both capped at ``backoff_max``."""
        if response is not None and self.respect_retry_after_header:
            try:
                after = self.get_retry_after(response)
            except InvalidHeader:  # neither seconds nor a date: fall back to the backoff
                after = None
            if after is not None:
                return float(min(after, self.backoff_max))
        return self.get_backoff_time()

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        wait = self.delay(response)
        last = self.history[-1] if self.history else None
        if last is not None:
            cause = f"HTTP {last.status}" if last.status else short_reason(last.error) if last.error else "?"
            # INFO, not WARNING: a retry that then succeeds is no news (a cron run must stay silent, and the
            # CLI has no logging set up, so Python would print a warning); one that fails is an error
            # naming its attempts
            log.info("%s %s%s: %s, retry %d in %.1f s", last.method, self.origin, last.url, cause,
                     len(self.history), wait)
        self.sleep_fn(wait)

    def increment(self, *args: Any, **kw: Any) -> Self:
        try:
            fresh = super().increment(*args, **kw)
        except RetriesExhausted:
            raise
        except MaxRetryError as exc:
            raise RetriesExhausted(exc.pool, exc.url or "", exc.reason, len(self.history) + 1) from exc.reason
        pool = kw.get("_pool")
        if pool is not None:
            fresh.origin = f"{pool.scheme}://{pool.host}:{pool.port}"
        return fresh


def policy(retries: int, *, backoff: float, max_backoff: float, statuses: Collection[int] = RETRY_STATUSES,
           methods: Collection[str] | None = None, read: bool = True,
           sleep: Callable[[float], None] = time.sleep) -> Backoff:
    """Up to ``retries`` more attempts after a failed connect, a lost or timed-out answer (``read``) or
    one of ``statuses``; ``methods`` limits the read and status retries (None: every method).

    A TLS error is never retried (the certificate will not change in a second), and a status still
    failing after the last retry is returned as the response, for the caller's own error message.
    """
    return Backoff(total=retries, connect=retries, read=retries if read else False, status=retries, other=0,
                   redirect=False, allowed_methods=methods, status_forcelist=statuses, backoff_factor=backoff,
                   backoff_max=max_backoff, backoff_jitter=0.0, raise_on_status=False,
                   respect_retry_after_header=True, sleep=sleep)


class TimeoutAdapter(HTTPAdapter):
    """An HTTPAdapter with a retry policy and a default timeout, so no call can wait forever."""

    def __init__(self, retry: Backoff, timeout: Timeout):
        super().__init__(max_retries=retry)
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: float | tuple[float | None, float | None] | None = None, verify: bool | str = True,
             cert: str | tuple[str, str] | None = None, proxies: dict[str, str] | None = None) -> requests.Response:
        return super().send(request, stream=stream, timeout=self.timeout if timeout is None else timeout,
                            verify=verify, cert=cert, proxies=proxies)


def session(retry: Backoff, timeout: Timeout, into: requests.Session | None = None) -> requests.Session:
    """A session (``into``, or a new one) whose http and https calls go through ``retry`` and ``timeout``."""
    s = into if into is not None else requests.Session()
    adapter = TimeoutAdapter(retry, timeout)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


# --- what failed, for error messages -----------------------------------------------------------------

def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what it wraps (requests puts urllib3's error in args[0]) and their reasons."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if any(cur is s for s in seen):
            continue
        seen.append(cur)
        todo.extend(a for a in cur.args if isinstance(a, BaseException))
        reason = getattr(cur, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        if cur.__cause__ is not None:
            todo.append(cur.__cause__)
    return seen


def attempts(failure: BaseException | requests.Response) -> int:
    """How many attempts a failed call made: from its exhausted policy or the response's history."""
    if isinstance(failure, requests.Response):
        retry = getattr(failure.raw, "retries", None)
        return len(retry.history) + 1 if isinstance(retry, Retry) else 1
    found = next((e for e in _chain(failure) if isinstance(e, RetriesExhausted)), None)
    return found.attempts if found is not None else 1


def is_timeout(exc: BaseException) -> bool:
    """The server accepted the connection but did not answer in time (read timeout), retried or not."""
    return any(isinstance(e, (ReadTimeoutError, requests.ReadTimeout)) for e in _chain(exc))


def is_connect_failure(exc: BaseException) -> bool:
    """The request never reached the server: refused, unresolvable, unroutable, or the connect timed out."""
    return isinstance(exc, requests.ConnectTimeout) or \
        any(isinstance(e, (NewConnectionError, NameResolutionError)) for e in _chain(exc))


def short_reason(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, without the long wrappers."""
    text = " ".join(str(e) for e in _chain(exc))
    for marker in ("Connection refused", "Name or service not known", "No route to host", "timed out",
                   "Connection reset", "Remote end closed connection"):
        if marker in text:
            return marker.lower()
    inner = next((e for e in reversed(_chain(exc)) if isinstance(e, (NewConnectionError, ProtocolError))), exc)
    return str(inner)[:160]
