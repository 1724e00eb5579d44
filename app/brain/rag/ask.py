"""Ask the brain: retrieve remembered chunks, pack them into a prompt, let the LLM answer with [n].

Data flow: question → hybrid search (several chunks per item) → packing within a token budget
→ chat completion → ``{answer, citations, model, timings}``.

Why the budget is derived, not fixed: the model's context (``llm.context_tokens``) must hold
the system prompt, the sources, the question *and* the answer (``llm.answer_tokens``); a prompt
that overflows is silently cut by Ollama (from the front, taking the instructions with it), so
the packer stops before that. No tokenizer of the served model is available on the brain VM,
so tokens are estimated from characters (``llm.chars_per_token``, default 3: on the safe side
for English and code with DeepSeek/Qwen/Llama tokenizers). Ollama must serve at least that
context: set ``OLLAMA_CONTEXT_LENGTH`` >= ``llm.context_tokens`` on the GPU VM.

Why the server is asked too (issue 15): the setting is only what the brain was told. Right before
the LLM call (so after the GPU VM is up, and never for ``--no-llm``), the context the server
reports (:mod:`brain.rag.llm_context`, cached) is compared with the setting and the already retrieved
hits are packed again for the smaller one, with a warning. A prompt the server still refuses as
too long (the size is only estimated) is packed once more for the context the refusal names, if
it names a smaller one; otherwise the ask fails with ``llm_context_exceeded``, naming both sizes.

Why citations survive an LLM failure: retrieval is the part that is always available, so
:class:`AskLLMError` carries the citations and the API answers 503 *with* them.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from brain.core.search import Hit, Searcher
from brain.rag.llm import ChatStream, LLMClient, LLMError, Piece
from brain.shared.settings import ServerConfig

log = logging.getLogger(__name__)


MAX_QUESTION_CHARS = 4000
MIN_SOURCE_TOKENS = 64  # a cut chunk shorter than this is noise, not context
TEMPLATE_TOKENS = 48  # chat template markers and message framing the estimate cannot see
NO_SOURCES_ANSWER = "Nothing in the brain matches this question, so there is nothing to answer from."

SYSTEM_PROMPT = (
    "You are the user's second brain. Answer the question using only the numbered sources, which are "
    "the user's own coding sessions, notes, files and visited pages. Cite the sources you use with their "
    "number in square brackets, like [1] or [2][3], right after the statement they support. If the sources "
    "do not contain the answer, say so plainly instead of guessing. Be concise; prefer concrete commands, "
    "file names and code from the sources."
)


class AskInputError(ValueError):
    """The request cannot be answered as asked; names the field (for a 400)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


class AskLLMError(RuntimeError):
    """The LLM failed; carries what retrieval found so the caller still gets the memory."""

    def __init__(self, error: LLMError, citations: list[dict[str, Any]], timings: dict[str, float]):
        super().__init__(str(error))
        self.error = error
        self.citations = citations
        self.timings = timings


@dataclass
class Source:
    """One cited item with the chunks of it that made it into the prompt."""

    n: int
    hit: Hit  # its best-ranked chunk (for id, title, snippet ...)
    parts: list[tuple[int, str, int | None, int | None]] = field(default_factory=list)  # seq, text, lines

    def citation(self) -> dict[str, Any]:
        h = self.hit
        return {"n": self.n, "id": h.item_id, "title": h.title, "uri": h.uri, "source": h.source,
                "snippet": h.snippet}

    def header(self) -> str:
        h = self.hit
        bits = [h.source]
        if h.uri:
            bits.append(h.uri)
        if h.project:
            bits.append(f"project {h.project}")
        bits.append(f"updated {h.updated_at[:10]}")
        return f"[{self.n}] {h.title or h.item_id} ({'; '.join(bits)})"

    def render(self) -> str:
        body = []
        for _seq, text, start, end in sorted(self.parts, key=lambda p: p[0]):
            where = f"(lines {start}-{end})\n" if start and end and self.hit.source == "file" else ""
            body.append(where + text.strip())
        return self.header() + "\n" + "\n…\n".join(body)


@dataclass
class Packed:
    """The prompt material chosen within the budget."""

    sources: list[Source]
    budget: int  # tokens available for sources
    used: int  # estimated tokens of the sources
    chunks: int

    @property
    def citations(self) -> list[dict[str, Any]]:
        return [s.citation() for s in self.sources]

    @property
    def context(self) -> str:
        return "\n\n".join(s.render() for s in self.sources)


def estimate_tokens(text: str, chars_per_token: float) -> int:
    """An estimate on the high side: no tokenizer of the served model is at hand."""
    return int(len(text) / chars_per_token) + 1


def source_budget(question: str, context_tokens: int, answer_tokens: int, chars_per_token: float) -> int:
    """Tokens left for sources once instructions, question, framing and the answer are reserved."""
    fixed = estimate_tokens(SYSTEM_PROMPT + user_message("", question), chars_per_token) + TEMPLATE_TOKENS
    return context_tokens - answer_tokens - fixed


def pack(hits: list[Hit], budget: int, max_sources: int, chunks_per_source: int,
         chars_per_token: float) -> Packed:
    """Fill the budget with the best chunks in rank order, grouped by item under one number.

    A chunk that does not fit whole is cut to the remaining room when that room is worth it
    (``MIN_SOURCE_TOKENS``); smaller chunks further down may still fit after a skip.
    """
    by_item: dict[str, Source] = {}
    used, chunks = 0, 0
    for hit in hits:
        src = by_item.get(hit.item_id)
        if src is None and len(by_item) >= max_sources:
            continue
        if src is not None and len(src.parts) >= chunks_per_source:
            continue
        new = src or Source(len(by_item) + 1, hit)
        overhead = estimate_tokens(new.header(), chars_per_token) + 2 if src is None else 2
        room = budget - used - overhead
        cost = estimate_tokens(hit.text, chars_per_token)
        text = hit.text
        if cost > room:
            if room < MIN_SOURCE_TOKENS:
                continue
            text = _cut(hit.text, int((room - 1) * chars_per_token))
            cost = estimate_tokens(text, chars_per_token)
        new.parts.append((hit.seq, text, hit.start_line, hit.end_line))
        by_item[hit.item_id] = new
        used += overhead + cost
        chunks += 1
    return Packed(list(by_item.values()), budget, used, chunks)


def _cut(text: str, chars: int) -> str:
    """The first ``chars`` characters, ending at a line or word boundary when one is near."""
    if len(text) <= chars:
        return text
    head = text[:max(chars - 2, 0)]
    for sep in ("\n", " "):
        pos = head.rfind(sep)
        if pos > chars * 0.7:
            head = head[:pos]
            break
    return head + " …"


def user_message(context: str, question: str) -> str:
    return f"Sources:\n\n{context}\n\nQuestion: {question}"


def build_messages(packed: Packed, question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_message(packed.context, question)}]


@dataclass(frozen=True)
class PackPlan:
    """How the hits were packed, kept so they can be packed again for a smaller context."""

    hits: list[Hit]
    k: int
    chunks_per_source: int
    chars_per_token: float
    context_tokens: int  # the context the prompt was packed for
    context_source: str  # where that number came from


@dataclass
class Prepared:
    """A question with its retrieved, packed sources: everything before the LLM call."""

    question: str
    packed: Packed
    messages: list[dict[str, str]]
    answer_tokens: int
    retrieve_ms: float
    started: float
    plan: PackPlan | None = None

    def timings(self, first_token_ms: float | None = None, llm_ms: float | None = None) -> dict[str, float]:
        out = {"retrieve_ms": round(self.retrieve_ms, 1)}
        if first_token_ms is not None:
            out["llm_first_token_ms"] = round(first_token_ms, 1)
        if llm_ms is not None:
            out["llm_ms"] = round(llm_ms, 1)
        out["total_ms"] = round((time.monotonic() - self.started) * 1000, 1)
        return out

    def prompt_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"budget_tokens": self.packed.budget, "sources_tokens_est": self.packed.used,
                                "chunks": self.packed.chunks}
        if self.plan is not None:
            info["context_tokens"] = self.plan.context_tokens
            info["context_source"] = self.plan.context_source
        return info

    def result(self, answer: str | None, model: str | None, timings: dict[str, float]) -> dict[str, Any]:
        return {"answer": answer, "citations": self.packed.citations, "model": model, "timings": timings,
                "prompt": self.prompt_info()}


def validate_question(question: Any) -> str:
    if not isinstance(question, str) or not question.strip():
        raise AskInputError("question is required: a non-empty string", "question")
    question = question.strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise AskInputError(f"question is longer than {MAX_QUESTION_CHARS} characters", "question")
    return question


def prepare(conn: sqlite3.Connection, searcher: Searcher, cfg: ServerConfig, question: str, k: int | None = None,
            **filters: Any) -> Prepared:
    """Retrieve and pack. Raises AskInputError when the question leaves no room for sources."""
    started = time.monotonic()
    question = validate_question(question)
    k = k or cfg.ask.k
    cpt = cfg.llm.chars_per_token
    budget = source_budget(question, cfg.llm.context_tokens, cfg.llm.answer_tokens, cpt)
    if budget < MIN_SOURCE_TOKENS:
        raise AskInputError(
            f"question is too long for llm.context_tokens={cfg.llm.context_tokens} minus "
            f"llm.answer_tokens={cfg.llm.answer_tokens}: no room left for sources", "question")
    hits = searcher.search(conn, question, k=k * cfg.ask.chunks_per_source * 2, per_item=False, **filters)
    packed = pack(hits, budget, k, cfg.ask.chunks_per_source, cpt)
    retrieve_ms = (time.monotonic() - started) * 1000
    plan = PackPlan(hits, k, cfg.ask.chunks_per_source, cpt, cfg.llm.context_tokens, "llm.context_tokens")
    return Prepared(question, packed, build_messages(packed, question), cfg.llm.answer_tokens,
                    retrieve_ms, started, plan)


def repack(prep: Prepared, context_tokens: int, source: str) -> Prepared | None:
    """The same hits packed for a smaller context; None when that context leaves no room for sources."""
    plan = prep.plan
    if plan is None:
        return None
    budget = source_budget(prep.question, context_tokens, prep.answer_tokens, plan.chars_per_token)
    if budget < MIN_SOURCE_TOKENS:
        return None
    packed = pack(plan.hits, budget, plan.k, plan.chunks_per_source, plan.chars_per_token)
    new_plan = PackPlan(plan.hits, plan.k, plan.chunks_per_source, plan.chars_per_token, context_tokens, source)
    return Prepared(prep.question, packed, build_messages(packed, prep.question), prep.answer_tokens,
                    prep.retrieve_ms, prep.started, new_plan)


_WARNED: set[tuple[int, int, str]] = set()


def fit_to_server(prep: Prepared, llm: LLMClient) -> Prepared:
    """Pack for the server's context when it reports one smaller than the prompt was packed for.

    Raises AskLLMError (``context``) when the server's context cannot hold the question and the
    answer; a server that reports nothing leaves the prompt as it is."""
    if llm.context is None or prep.plan is None:
        return prep
    server = llm.context.get()
    if server.tokens is None or server.tokens >= prep.plan.context_tokens:
        return prep
    shrunk = repack(prep, server.tokens, server.source)
    if shrunk is None:
        raise _too_small(prep, llm, server.tokens, server.source)
    key = (prep.plan.context_tokens, server.tokens, server.source)
    log.log(logging.INFO if key in _WARNED else logging.WARNING,
            "packing the prompt for the LLM's %d-token context (%s) instead of llm.context_tokens=%d",
            server.tokens, server.source, prep.plan.context_tokens)
    _WARNED.add(key)
    return shrunk


def _too_small(prep: Prepared, llm: LLMClient, tokens: int, source: str) -> AskLLMError:
    err = LLMError(f"LLM at {llm.endpoint} (model {llm.model}): its context of {tokens} tokens ({source}) "
                   f"cannot hold the question and llm.answer_tokens={prep.answer_tokens} with any source",
                   endpoint=llm.endpoint, reason="context", context_tokens=tokens)
    return AskLLMError(err, prep.packed.citations, prep.timings())


def refit_after_refusal(prep: Prepared, llm: LLMClient, exc: LLMError) -> Prepared | None:
    """After the server refused the prompt as too long: the prompt packed for the context it
    named, when that is smaller than the one it was packed for (else None: nothing to gain)."""
    if exc.reason != "context" or not exc.context_tokens or prep.plan is None:
        return None
    if exc.context_tokens >= prep.plan.context_tokens:
        return None
    source = "the LLM's refusal of a longer prompt"
    if llm.context is not None:
        llm.context.learn(exc.context_tokens, source)
    log.warning("the LLM refused a prompt packed for %d tokens; packing again for its %d-token context",
                prep.plan.context_tokens, exc.context_tokens)
    return repack(prep, exc.context_tokens, source)


T = TypeVar("T")


def _call_fitted(prep: Prepared, llm: LLMClient, call: Callable[[Any, int], T]) -> tuple[Prepared, T]:
    """``call(messages, answer_tokens)`` with the prompt packed for the server's context, and once
    more, packed smaller, when the server refuses it as too long. Any other LLM failure (or a second
    refusal) raises AskLLMError with the citations. Shared by the whole answer and the stream."""
    prep = fit_to_server(prep, llm)
    try:
        try:
            return prep, call(prep.messages, prep.answer_tokens)
        except LLMError as exc:
            again = refit_after_refusal(prep, llm, exc)
            if again is None:
                raise
            prep = again
            return prep, call(prep.messages, prep.answer_tokens)
    except LLMError as exc:
        raise AskLLMError(exc, prep.packed.citations, prep.timings()) from exc


def answer(prep: Prepared, llm: LLMClient, show_thinking: bool = False) -> dict[str, Any]:
    """The whole answer. Raises AskLLMError (with the citations) when the LLM fails."""
    if not prep.packed.sources:
        return prep.result(NO_SOURCES_ANSWER, None, prep.timings())
    prep, done = _call_fitted(prep, llm, llm.complete)
    out = prep.result(done.answer, done.model, prep.timings(done.first_token_ms, done.total_ms))
    if show_thinking:
        out["thinking"] = done.thinking
    out["finish_reason"] = done.finish_reason
    return out


def open_stream(prep: Prepared, llm: LLMClient, show_thinking: bool = False) -> Iterator[tuple[str, Any]]:
    """Start the LLM now (so a dead LLM raises AskLLMError before anything is sent), then yield
    ``(event, data)``: ``token``/``thinking`` pieces, and last ``done`` (the full result) or
    ``error`` (the failure and the citations)."""
    if not prep.packed.sources:
        return iter([("done", prep.result(NO_SOURCES_ANSWER, None, prep.timings()))])
    prep, stream = _call_fitted(prep, llm, llm.stream)
    return _events(prep, llm, stream, show_thinking)


class _Answering:
    """One streamed answer: the prompt and stream in use, replaced once if the server refuses the
    prompt as too long before its first piece (a server that says so inside the stream)."""

    def __init__(self, prep: Prepared, llm: LLMClient, stream: ChatStream):
        self.prep, self.llm, self.stream = prep, llm, stream

    def pieces(self) -> Iterator[Piece]:
        try:
            first = True
            for piece in self.stream:
                first = False
                yield piece
            return
        except LLMError as exc:
            again = refit_after_refusal(self.prep, self.llm, exc) if first else None
            if again is None:
                raise
        self.prep = again
        self.stream = self.llm.stream(again.messages, again.answer_tokens)
        yield from self.stream

    def timings(self) -> dict[str, float]:
        return self.prep.timings(self.stream.first_token_ms, self.stream.total_ms)


def _events(prep: Prepared, llm: LLMClient, stream: ChatStream, show_thinking: bool) -> Iterator[tuple[str, Any]]:
    """``token``/``thinking`` pieces, then ``done`` or ``error`` (see :func:`open_stream`)."""
    run = _Answering(prep, llm, stream)
    text: list[str] = []
    thinking: list[str] = []
    try:
        for piece in run.pieces():
            if piece.kind == "answer":
                text.append(piece.text)
                yield "token", {"text": piece.text}
            else:
                thinking.append(piece.text)
                if show_thinking:
                    yield "thinking", {"text": piece.text}
    except LLMError as exc:
        yield "error", error_payload(exc, run.prep.packed.citations, run.timings())
        return
    finally:
        run.stream.close()
    out = run.prep.result("".join(text), run.stream.model, run.timings())
    if show_thinking:
        out["thinking"] = "".join(thinking)
    out["finish_reason"] = run.stream.finish_reason
    yield "done", out


def error_payload(exc: LLMError, citations: list[dict[str, Any]], timings: dict[str, float]) -> dict[str, Any]:
    """The JSON of an LLM failure: the error, plus the memory that was found.

    A prompt the server refused as too long is ``llm_context_exceeded`` (still a 503: the question
    is fine, the brain's packing and the server's context disagree), with a message that says
    which settings to align."""
    if exc.reason == "context":
        return {"error": {"code": "llm_context_exceeded", "message": f"{exc} — {_context_hint(exc)}",
                          "reason": exc.reason, "context_tokens": exc.context_tokens},
                "citations": citations, "timings": timings}
    return {"error": {"code": "llm_unavailable", "message": str(exc), "reason": exc.reason},
            "citations": citations, "timings": timings}


def _context_hint(exc: LLMError) -> str:
    size = f"{exc.context_tokens} tokens" if exc.context_tokens else "smaller than the prompt"
    return (f"the LLM's context is {size}: raise it on the server (Ollama: OLLAMA_CONTEXT_LENGTH; llama.cpp: "
            "--ctx-size), or lower llm.context_tokens (or llm.chars_per_token, so prompts are estimated larger)")


def retrieval_only(prep: Prepared, note: str, reason: str) -> dict[str, Any]:
    """No LLM call because the GPU VM is stopped and may not be started (issue 7): the sources,
    with ``note`` saying why as the answer, so every client shows it without knowing the flag."""
    out = prep.result(note, None, prep.timings())
    out["retrieval_only"] = True
    out["reason"] = reason
    return out


def context_only(prep: Prepared) -> dict[str, Any]:
    """``--no-llm``: the retrieved, packed context exactly as the model would see it."""
    out = prep.result(None, None, prep.timings())
    out["context"] = prep.packed.context
    return out
