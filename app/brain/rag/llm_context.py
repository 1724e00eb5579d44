"""The LLM server's real context size, asked of the server, so prompts are packed to what it holds.

Why ask: ``llm.context_tokens`` is only what the brain was told. The server decides what it
actually holds, and a prompt longer than that is either refused (llama.cpp) or silently cut
from the front, system prompt first (Ollama's default chat truncation). So before packing, the
brain asks, and packs to the smaller of the two:

- Ollama ``GET /api/ps``: ``context_length`` of the loaded model — the context the runner was
  started with (``OLLAMA_CONTEXT_LENGTH``, a Modelfile ``num_ctx``, or the VRAM-based default),
  already capped at the model's trained context. The exact answer, once the model is loaded.
- Ollama ``POST /api/show`` (model not loaded yet): a ``num_ctx`` in ``parameters`` is what the
  runner will use, capped at ``model_info["<arch>.context_length"]`` (the trained context).
  Without ``num_ctx`` the server's own default applies, which the API does not show, so only
  the trained context is known: an upper bound, trusted for :data:`UPPER_BOUND_TTL` seconds
  and asked again (by then ``/api/ps`` usually answers).
- llama.cpp's server ``GET /props``: ``default_generation_settings.n_ctx`` (one slot's context).
- Anything else (llama-cpp-python's server, OpenAI): no such endpoint, so the setting stands;
  a refused prompt still names the context in its error, which :meth:`ContextProbe.learn` keeps.

Why cached: the answer changes only when the server restarts with other settings, so one probe
per ``llm.context_probe_ttl`` seconds, not one per question.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from brain.shared import http_retry

log = logging.getLogger(__name__)


UPPER_BOUND_TTL = 60.0  # a trained context only bounds Ollama's real one: ask again soon
FAILED_TTL = 30.0  # a probe that failed is not repeated on every question
PROBE_READ_TIMEOUT = 10.0  # /api/show reads the model file's header: quick, but not instant
NOT_THIS_SERVER = frozenset({404, 405, 501})  # the route does not exist here: try the next kind
PROBE_RETRY_STATUSES = frozenset({429} | set(range(500, 600))) - NOT_THIS_SERVER


@dataclass(frozen=True)
class ServerContext:
    """What the server said about its context: ``tokens`` is None when it said nothing usable."""

    tokens: int | None
    source: str  # where the number came from, for logs and the ask's ``prompt`` info
    exact: bool = True  # False for an upper bound (the trained context)


class ProbeFailed(RuntimeError):
    """A probe request failed after its retries; the message names the URL and the cause."""


class ContextProbe:
    """Asks one server about one model, caches the answer; thread-safe (gunicorn threads share it)."""

    def __init__(self, base_url: str, model: str, *, ttl: float = 600.0, connect_timeout: float = 5.0,
                 read_timeout: float = PROBE_READ_TIMEOUT, retries: int = 1, backoff: float = 0.5,
                 api_key: str = "", clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.root = _server_root(base_url)
        self.model = model
        self.ttl = ttl
        self.timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self._clock = clock
        # 429 and 5xx retried (a server loading its model), whatever the method: both calls only read
        retry = http_retry.policy(retries, backoff=backoff, max_backoff=max(backoff, 4.0),
                                  statuses=PROBE_RETRY_STATUSES, sleep=sleep)
        self._session = http_retry.session(retry, self.timeout)
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"
        self._lock = threading.Lock()
        self._cached: ServerContext | None = None
        self._expires = 0.0

    def get(self) -> ServerContext:
        """The server's context, from the cache while it is fresh, else asked now."""
        with self._lock:
            if self._cached is not None and self._clock() < self._expires:
                return self._cached
        found, ttl = self._probe()
        with self._lock:
            self._cached, self._expires = found, self._clock() + ttl
        return found

    def learn(self, tokens: int, source: str) -> None:
        """Keep a context the server named in an error (a refused prompt) until the cache expires."""
        with self._lock:
            self._cached = ServerContext(tokens, source)
            self._expires = self._clock() + self.ttl

    def _probe(self) -> tuple[ServerContext, float]:
        try:
            found = self._ollama()
            if found is None:
                found = self._llama_cpp()
        except ProbeFailed as exc:
            log.warning("cannot ask the LLM server its context size (%s); packing to llm.context_tokens", exc)
            return ServerContext(None, f"probe failed: {exc}"), FAILED_TTL
        if found is None:
            return ServerContext(None, f"{self.root} reports no context size (not Ollama nor llama.cpp)"), self.ttl
        return found, self.ttl if found.exact else min(self.ttl, UPPER_BOUND_TTL)

    def _ollama(self) -> ServerContext | None:
        """Ollama's answer, or None when the server is not Ollama (no ``/api/ps``)."""
        ps = self._request("GET", "/api/ps")
        if ps is None:
            return None
        for entry in ps.get("models") or []:
            if isinstance(entry, dict) and _same_model(entry.get("name") or entry.get("model"), self.model):
                ctx = _positive_int(entry.get("context_length"))
                if ctx:
                    return ServerContext(ctx, f"Ollama /api/ps (model {self.model} loaded)")
        show = self._request("POST", "/api/show", {"model": self.model})
        return _from_show(show or {}, self.model)

    def _llama_cpp(self) -> ServerContext | None:
        props = self._request("GET", "/props")
        settings = (props or {}).get("default_generation_settings")
        ctx = _positive_int(settings.get("n_ctx")) if isinstance(settings, dict) else None
        return ServerContext(ctx, "llama.cpp /props") if ctx else None

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """JSON of one call; None when the route does not exist; ProbeFailed after bounded retries."""
        url = self.root + path
        try:
            resp = self._session.request(method, url, json=body)
        except requests.RequestException as exc:
            raise ProbeFailed(f"{method} {url}: {type(exc).__name__}: {http_retry.short_reason(exc)}"
                              f"{_after(http_retry.attempts(exc))}") from None
        if resp.status_code in NOT_THIS_SERVER:
            return None
        if resp.status_code == 200:
            return _json_object(resp, url)
        raise ProbeFailed(f"{method} {url} answered HTTP {resp.status_code}: {resp.text[:200]}"
                          f"{_after(http_retry.attempts(resp))}")


def _after(attempts: int) -> str:
    return f" (after {attempts} attempts)" if attempts > 1 else ""


def _json_object(resp: requests.Response, url: str) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        raise ProbeFailed(f"{url} answered 200 with a body that is not JSON") from None
    if not isinstance(data, dict):
        raise ProbeFailed(f"{url} answered 200 with JSON that is not an object")
    return data


def _from_show(show: dict[str, Any], model: str) -> ServerContext | None:
    """Ollama ``/api/show``: ``num_ctx`` capped at the trained context, else the trained context."""
    info = got if isinstance(got := show.get("model_info"), dict) else {}
    arch = info.get("general.architecture")
    trained = _positive_int(info.get(f"{arch}.context_length")) if isinstance(arch, str) else None
    num_ctx = _num_ctx(show.get("parameters"))
    if num_ctx:
        ctx = min(num_ctx, trained) if trained else num_ctx
        return ServerContext(ctx, f"Ollama /api/show (num_ctx {num_ctx} of model {model})")
    if trained:
        return ServerContext(trained, f"Ollama /api/show (trained context of {model}; the server's "
                                      "default context is not visible until the model is loaded)", exact=False)
    return None


_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)\s*$", re.MULTILINE)


def _num_ctx(parameters: Any) -> int | None:
    """``num_ctx`` from Ollama's ``parameters`` text (``"num_ctx                        8192"`` lines)."""
    if not isinstance(parameters, str):
        return None
    m = _NUM_CTX.search(parameters)
    return int(m.group(1)) if m else None


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _same_model(name: Any, wanted: str) -> bool:
    """Ollama names a model ``name:tag``; ``name`` alone means ``name:latest``."""
    return isinstance(name, str) and _full_tag(name) == _full_tag(wanted)


def _full_tag(name: str) -> str:
    for prefix in ("registry.ollama.ai/library/", "library/"):
        name = name.removeprefix(prefix)
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def _server_root(base_url: str) -> str:
    """``http://gpu:11434/v1`` → ``http://gpu:11434``: the native routes live beside ``/v1``."""
    root = base_url.rstrip("/")
    return root[:-3] if root.endswith("/v1") else root


# --- what servers say when a prompt does not fit --------------------------------------------------

# Verified in the servers' sources: llama.cpp's server ("request (N tokens) exceeds the available
# context size (M tokens)", older "the request exceeds the available context size, try increasing
# it", type exceed_context_size_error with n_ctx); llama-cpp-python's server and OpenAI ("This
# model's maximum context length is M tokens", code context_length_exceeded; llama-cpp-python's
# raw "Requested tokens (N) exceed context window of M"); Ollama ("the prompt is longer than the
# context length currently available to the model", "the input length exceeds the context length",
# "input exceeds maximum context length").
OVERFLOW_MARKERS = (
    "exceeds the available context size", "exceed_context_size_error", "context_length_exceeded",
    "maximum context length", "exceed context window", "longer than the context length",
    "exceeds the context length", "exceeds maximum context length",
)
_CONTEXT_NUMBER = (
    re.compile(r"available context size \((\d+) tokens\)"),
    re.compile(r"maximum context length is (\d+) tokens"),
    re.compile(r"exceed context window of (\d+)"),
    re.compile(r"\"n_ctx\"\s*:\s*(\d+)"),
)


def context_overflow(text: str) -> tuple[bool, int | None]:
    """Whether an LLM error says the prompt is too long, and the context it names (if any)."""
    lowered = text.lower()
    if not any(marker in lowered for marker in OVERFLOW_MARKERS):
        return False, None
    for pattern in _CONTEXT_NUMBER:
        m = pattern.search(lowered)
        if m:
            return True, int(m.group(1))
    return True, None
