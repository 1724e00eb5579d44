"""LLM client over the OpenAI-compatible chat API (Ollama ``/v1``, llama.cpp server, vLLM, OpenAI).

Why always stream, even when the caller wants one string: with streaming the read timeout means
"no token for N seconds" (a stalled or dead server) instead of "the whole answer within N
seconds", which a long but healthy answer from a 16B model on a busy GPU can exceed.

Why our own retries instead of the ``openai`` client's: the client retries read timeouts and
every 5xx, so a stalled generation would be re-run ``max_retries`` times at ``read_timeout``
each. Here only failures that happen *before the server started generating* are retried: a
refused or timed-out connection, and 429/502/503/504 ("busy", "loading the model", a proxy in
front of a restarting Ollama). Nothing is retried once a token has been handed to the caller.

Reasoning models (``deepseek-r1:14b``) put their chain of thought in ``<think>…</think>``, or,
behind some servers, in a separate ``reasoning_content``/``reasoning`` field of each delta.
Both are reported as ``thinking`` pieces, which the caller hides unless asked to show them.

A prompt longer than the server's context is an error of its own (``reason="context"``, with the
context the server named when it named one), whichever way the server says it: an HTTP 400
(llama.cpp, Ollama, OpenAI), an error event inside the stream, or — llama-cpp-python's server —
a stream that ends before its first chunk, whose cause only a non-streamed retry of the same
request (one token) reveals. What servers say is matched in :mod:`brain.rag.llm_context`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from brain.rag.llm_context import ContextProbe, context_overflow
from brain.shared.settings import LLMSettings, ServerConfig

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

log = logging.getLogger(__name__)


RETRY_STATUSES = frozenset({429, 502, 503, 504})
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

Kind = Literal["answer", "thinking"]


class LLMError(RuntimeError):
    """The LLM could not produce an answer. The message names the endpoint and what failed.

    ``reason`` is one of ``unreachable`` (refused, DNS, connect timeout), ``timeout`` (no output
    within llm.read_timeout), ``status`` (an HTTP error answer), ``protocol`` (a malformed or
    truncated stream) and ``context`` (the prompt is longer than the server's context;
    ``context_tokens`` is that context when the server said it).
    """

    def __init__(self, message: str, *, endpoint: str, reason: str, status: int | None = None,
                 context_tokens: int | None = None):
        super().__init__(message)
        self.endpoint = endpoint
        self.reason = reason
        self.status = status
        self.context_tokens = context_tokens


@dataclass
class Piece:
    """A part of the model's output: visible answer text or hidden reasoning."""

    kind: Kind
    text: str


@dataclass
class Completion:
    """A whole answer, assembled from a stream."""

    answer: str
    thinking: str
    model: str
    finish_reason: str | None
    first_token_ms: float | None
    total_ms: float
    usage: dict[str, int] = field(default_factory=dict)


class ThinkFilter:
    """Split a stream of text into answer and ``<think>`` parts, tags possibly cut across chunks.

    Why hold text back: a chunk ending in ``"<th"`` may be the start of a tag, so those bytes
    are only released once the next chunk shows whether they are. The text after
    ``</think>`` usually starts with blank lines, which are dropped from the answer.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._in_think = False
        self._strip = True  # drop leading whitespace: at the start and after a think block

    def feed(self, text: str) -> list[Piece]:
        """Consume one chunk; return the pieces that are certain so far."""
        self._buf += text
        out: list[Piece] = []
        while self._buf:
            tags = (THINK_CLOSE,) if self._in_think else (THINK_OPEN, THINK_CLOSE)
            found = [(i, t) for t in tags if (i := self._buf.find(t)) >= 0]
            if found:
                idx, tag = min(found)
                self._emit(out, self._buf[:idx])
                self._buf = self._buf[idx + len(tag):]
                # an opening tag starts a block; a closing one ends it, or is a stray tag to drop
                # (servers whose chat template opens the block themselves send only "</think>")
                self._in_think = tag == THINK_OPEN
                self._strip = self._strip or not self._in_think
                continue
            keep = max(_partial_suffix(self._buf, t) for t in tags)
            self._emit(out, self._buf[:len(self._buf) - keep])
            self._buf = self._buf[len(self._buf) - keep:]
            break
        return out

    def flush(self) -> list[Piece]:
        """End of stream: whatever is held back is plain text (an unclosed block stays thinking)."""
        out: list[Piece] = []
        self._emit(out, self._buf)
        self._buf = ""
        return out

    def _emit(self, out: list[Piece], text: str) -> None:
        if not self._in_think and self._strip:
            text = text.lstrip()
            self._strip = not text
        if text:
            out.append(Piece("thinking" if self._in_think else "answer", text))


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def split_thinking(text: str) -> tuple[str, str]:
    """(answer, thinking) of a complete text."""
    f = ThinkFilter()
    pieces = f.feed(text) + f.flush()
    return ("".join(p.text for p in pieces if p.kind == "answer"),
            "".join(p.text for p in pieces if p.kind == "thinking"))


class ChatStream:
    """An open streaming chat completion: iterate for pieces; metadata is filled as it arrives.

    Created by :meth:`LLMClient.stream`, which has already received the HTTP status, so
    connection errors and error statuses are raised there, before anything is iterated.
    """

    def __init__(self, raw: Any, client: LLMClient, started: float,
                 request: tuple[list[dict[str, str]], int] | None = None):
        self._raw = raw
        self._client = client
        self._started = started
        self._request = request  # (messages, max_tokens): re-sent once to learn why an empty stream ended
        self._chunks_seen = 0
        self.model = client.model
        self.finish_reason: str | None = None
        self.first_token_ms: float | None = None
        self.usage: dict[str, int] = {}
        self.total_ms = 0.0

    def __iter__(self) -> Iterator[Piece]:
        think = ThinkFilter()
        try:
            for chunk in self._chunks():
                for piece in self._pieces(chunk, think):
                    if self.first_token_ms is None:
                        self.first_token_ms = (time.monotonic() - self._started) * 1000
                    yield piece
            if self.finish_reason is None:
                if self._chunks_seen == 0 and self._request is not None:
                    raise self._client.diagnose(*self._request)
                raise self._client._error(
                    "protocol", "stream ended before the model finished (no finish_reason)")
            yield from think.flush()
        finally:
            self.total_ms = (time.monotonic() - self._started) * 1000
            self.close()

    def _chunks(self) -> Iterator[Any]:
        """The raw chunks, with the client's transport and decoding errors turned into LLMError."""
        import openai

        try:
            for chunk in self._raw:
                self._chunks_seen += 1
                yield chunk
        except openai.APITimeoutError as exc:
            raise self._client._error(
                "timeout", f"no output for {self._client.read_timeout:g} s (llm.read_timeout)") from exc
        except openai.APIConnectionError as exc:
            raise self._client._error("protocol", f"connection lost during the answer: {exc}") from exc
        except openai.APIError as exc:
            overflow, ctx = context_overflow(f"{exc.message} {exc.body}")
            if overflow:
                raise self._client._error("context", f"refused the prompt: {exc.message}",
                                          context_tokens=ctx) from exc
            raise self._client._error("protocol", f"error inside the stream: {exc.message}") from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # json.JSONDecodeError is a ValueError; pydantic validation errors too
            raise self._client._error("protocol", f"malformed stream: {exc}") from exc

    def _pieces(self, chunk: Any, think: ThinkFilter) -> Iterator[Piece]:
        if getattr(chunk, "model", None):
            self.model = chunk.model
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = {k: v for k, v in usage.model_dump().items() if isinstance(v, int)}
        for choice in getattr(chunk, "choices", None) or []:
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
            delta = choice.delta
            if delta is None:
                continue
            extra = delta.model_extra or {}
            reasoning = extra.get("reasoning_content") or extra.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                yield Piece("thinking", reasoning)
            if delta.content:
                yield from think.feed(delta.content)

    def close(self) -> None:
        """Release the HTTP connection (also when the caller stops iterating early)."""
        try:
            self._raw.close()
        except Exception:  # noqa: BLE001 - closing a broken response must not mask the real error
            log.debug("closing the LLM stream failed", exc_info=True)


class LLMClient:
    """Chat completions against one OpenAI-compatible endpoint."""

    def __init__(self, base_url: str, model: str, api_key: str = "", *, connect_timeout: float = 5.0,
                 read_timeout: float = 300.0, max_retries: int = 2, retry_backoff: float = 0.5,
                 temperature: float = 0.2, context_probe: ContextProbe | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        """``sleep`` waits between retries; tests pass a recorder so no test waits on the wall clock."""
        import openai

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.temperature = temperature
        self._sleep = sleep
        self.context = context_probe  # None: the server is not asked, llm.context_tokens stands
        timeout = openai.Timeout(read_timeout, connect=connect_timeout, read=read_timeout,
                                 write=read_timeout, pool=connect_timeout)
        # max_retries=0: retries are decided here, see the module docstring
        self._client = openai.OpenAI(api_key=api_key or "none", base_url=self.base_url,
                                     timeout=timeout, max_retries=0)

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _error(self, reason: str, what: str, status: int | None = None,
               context_tokens: int | None = None) -> LLMError:
        return LLMError(f"LLM at {self.endpoint} (model {self.model}): {what}",
                        endpoint=self.endpoint, reason=reason, status=status, context_tokens=context_tokens)

    def stream(self, messages: list[dict[str, str]], max_tokens: int,
               temperature: float | None = None) -> ChatStream:
        """Start a completion; raise LLMError if the server cannot be reached or refuses."""
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                raw = self._client.chat.completions.create(
                    model=self.model, messages=_chat_messages(messages), max_tokens=max_tokens, stream=True,
                    temperature=self.temperature if temperature is None else temperature)
                return ChatStream(raw, self, started, (messages, max_tokens))
            except Exception as exc:  # noqa: BLE001 - classified, then re-raised as LLMError
                err, retry = self._classify(exc)
            if not retry or attempt >= self.max_retries:
                raise err
            delay = self.retry_backoff * (2 ** attempt)
            attempt += 1
            log.warning("%s; retry %d/%d in %.1f s", err, attempt, self.max_retries, delay)
            self._sleep(delay)

    def _classify(self, exc: Exception) -> tuple[LLMError, bool]:
        """Turn an ``openai`` exception into (LLMError, whether retrying is safe)."""
        import openai

        if isinstance(exc, openai.APITimeoutError):
            connect = _is_connect_timeout(exc)
            if connect:
                return self._error("unreachable", f"connect timed out after {self.connect_timeout:g} s"), True
            # the request was sent and the server is working on it: re-sending doubles the load
            return self._error("timeout", f"no answer within {self.read_timeout:g} s (llm.read_timeout)"), False
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return self._error("unreachable", f"cannot connect: {cause}"), True
        if isinstance(exc, openai.APIStatusError):
            detail = _status_detail(exc)
            overflow, ctx = context_overflow(f"{detail} {exc.body}")
            if overflow:
                return self._error("context", f"refused the prompt (HTTP {exc.status_code}): {detail}",
                                   exc.status_code, ctx), False
            err = self._error("status", f"answered HTTP {exc.status_code}: {detail}", exc.status_code)
            return err, exc.status_code in RETRY_STATUSES
        if isinstance(exc, (openai.APIError, ValueError)):
            return self._error("protocol", f"malformed answer: {exc}"), False
        raise exc

    def diagnose(self, messages: list[dict[str, str]], max_tokens: int) -> LLMError:
        """Why a stream ended before its first chunk: the same request once more, not streamed and
        for one token, so the server answers with its error (llama-cpp-python's server only says
        "exceed context window" this way). Returns the error to raise."""
        empty = self._error("protocol", "stream ended before the model finished (no finish_reason)")
        for attempt in range(2):  # a second try only when the first could not be sent
            try:
                self._client.chat.completions.create(model=self.model, messages=_chat_messages(messages),
                                                     max_tokens=1, stream=False, temperature=0)
                break
            except Exception as exc:  # noqa: BLE001 - classified below; anything else keeps the first error
                try:
                    err, _ = self._classify(exc)
                except Exception:  # noqa: BLE001 - an unclassifiable failure says nothing more
                    return empty
            if err.reason == "context":
                return err
            # the server closes the connection that carried the broken stream: the pooled one is reset
            if err.reason != "unreachable" or attempt == 1:
                return self._error("protocol", f"stream ended before its first chunk; the same request "
                                               f"not streamed failed too: {err}")
            self._sleep(self.retry_backoff)
        log.warning("LLM at %s: a stream ended before its first chunk although the request is accepted "
                    "(max_tokens %d)", self.endpoint, max_tokens)
        return empty

    def complete(self, messages: list[dict[str, str]], max_tokens: int,
                 temperature: float | None = None) -> Completion:
        """The whole answer as one object (streamed underneath, see the module docstring)."""
        stream = self.stream(messages, max_tokens, temperature)
        answer: list[str] = []
        thinking: list[str] = []
        for piece in stream:
            (answer if piece.kind == "answer" else thinking).append(piece.text)
        return Completion("".join(answer), "".join(thinking), stream.model, stream.finish_reason,
                          stream.first_token_ms, stream.total_ms, stream.usage)


def _is_connect_timeout(exc: Exception) -> bool:
    """Whether a timeout happened while connecting (nothing was sent, so retrying is safe)."""
    cause = exc.__cause__
    while cause is not None:
        if "Connect" in type(cause).__name__:
            return True
        cause = cause.__cause__
    return False


def _status_detail(exc: Any) -> str:
    """The server's own error message, short (Ollama: "model 'x' not found, try pulling it first")."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        msg = body.get("message") or body.get("error") or body.get("detail")
        if isinstance(msg, dict):
            msg = msg.get("message")
        if msg:
            return str(msg)[:300]
    if isinstance(body, str) and body:
        return body[:300]
    try:
        return json.dumps(body)[:300] if body is not None else exc.message[:300]
    except (TypeError, ValueError):
        return str(exc)[:300]


_CACHE: dict[LLMSettings, LLMClient] = {}


def get_llm(cfg: ServerConfig) -> LLMClient:
    """The client the configuration asks for, built once per process and settings."""
    key = cfg.llm  # frozen, so hashable: one client per distinct [llm] section
    if key not in _CACHE:
        probe = None
        if cfg.llm.context_probe:
            probe = ContextProbe(cfg.llm.base_url, cfg.llm.model, ttl=cfg.llm.context_probe_ttl,
                                 connect_timeout=cfg.llm.connect_timeout,
                                 read_timeout=min(cfg.llm.read_timeout, 10.0),
                                 retries=min(cfg.llm.max_retries, 1), backoff=cfg.llm.retry_backoff,
                                 api_key=cfg.llm.api_key)
        _CACHE[key] = LLMClient(
            cfg.llm.base_url, cfg.llm.model, cfg.llm.api_key,
            connect_timeout=cfg.llm.connect_timeout, read_timeout=cfg.llm.read_timeout,
            max_retries=cfg.llm.max_retries, retry_backoff=cfg.llm.retry_backoff,
            temperature=cfg.llm.temperature, context_probe=probe)
    return _CACHE[key]


def _chat_messages(messages: list[dict[str, str]]) -> list[ChatCompletionMessageParam]:
    """Our ``{"role", "content"}`` messages as the client's type: its union of per-role TypedDicts
    cannot be told from plain dicts, and the prompt builder makes only those roles."""
    return cast("list[ChatCompletionMessageParam]", messages)
