"""The MCP side of ``brain mcp``: five read-only tools over brain-api, stdio and streamable HTTP.

Why failures are tool results, not exceptions: an MCP client shows a crashed server as gone for the
rest of the session. API down, a rejected token, a bad argument or an unknown id come back as an
``isError`` result whose text says what failed and what to change (:func:`explain`); anything
unexpected is caught by the SDK and reported as an ``isError`` result too.

Why each tool answers with text *and* structured content: the text is what a model reads (compact,
with the resume command / URL / path on their own lines); the structured content carries the same
facts as JSON for programs and tests.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import click
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

from brain import __version__
from brain.client.http import ApiClient, ApiError, ApiUnavailable
from brain.mcp import check_http_exposure, render
from brain.shared.settings import LaptopConfig
from brain.shared.timeline_text import now_in
from brain.shared.timeline_text import render as render_timeline
from brain.shared.words import counted
from brain.shared.zones import local_tz_name

log = logging.getLogger(__name__)

SERVER_NAME = "brain"
HTTP_PATH = "/mcp"
META_CHARS = 600
ISO_PATTERN = r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"
ISO_HINT = "must be an ISO-8601 date or date-time, e.g. 2026-11-27 or 2026-11-27T10:00:00Z"

INSTRUCTIONS = """\
This server is the user's "second brain": a searchable memory of their past Claude Code sessions \
(source "claude") and other coding agents' sessions (Codex CLI, Gemini CLI, Aider, opencode, Cursor: "agent"), the web \
pages they visited ("browser"), their code and text files ("file") and notes ("note"). Use it to recall how the user solved a problem before, what they read about it and \
which files they changed, before solving it again from scratch.

- search_memory: find items by meaning and keywords; each result says how to reopen it.
- get_item: read one item's full text (paged; follow next_offset).
- ask_memory: a written answer with numbered citations (falls back to the retrieved context when \
the LLM is unavailable).
- recent_activity: what was worked on lately, newest first.
- timeline: one day (or a few) across all sources in time order, grouped by project: sessions with \
their first prompt and duration, pages visited, files changed ("what was I doing on Tuesday?").

Filter by project with the absolute project directory (for Claude Code: its working directory). \
Times are ISO-8601, UTC unless an offset is given."""

SourceName = Literal["claude", "agent", "browser", "file", "note"]
SourceArg = Annotated[SourceName | None, Field(
    description="Only items from this source: claude = Claude Code sessions, agent = the other coding agents' "
                "sessions (Codex CLI, Gemini CLI, Aider, opencode, Cursor), browser = visited web pages, file = code "
                "and text files, note = notes. Omit for all sources.")]
ProjectArg = Annotated[str | None, Field(
    min_length=1, max_length=4096,
    description="Only items of this project: its absolute directory exactly as recorded, e.g. "
                "/home/marco/projects/spotter (for Claude Code sessions the working directory, for files "
                "the git root). Omit for all projects.")]
SinceArg = Annotated[str | None, Field(
    pattern=ISO_PATTERN,
    description="Only items active at or after this time. ISO-8601 date or date-time, UTC unless an offset "
                "is given, e.g. 2026-11-01 or 2026-11-27T10:00:00Z.")]
UntilArg = Annotated[str | None, Field(
    pattern=ISO_PATTERN,
    description="Only items active at or before this time. Same format as since, e.g. 2026-11-30.")]

SEARCH_DESCRIPTION = """\
Search the user's memory (past Claude Code and other coding agents' sessions, visited web pages, \
code files, notes) with hybrid keyword + semantic search. Returns up to k items, best first, one per \
item with its best matching snippet.

Each result carries what is needed to act on it:
- claude: session_id, project (directory) and `open`, the shell command that resumes the session \
(`cd <project> && claude --resume <session id>`)
- agent: agent (codex, gemini, aider, opencode, cursor), session_id, project and `open`, the command that reopens the \
session in its own agent (e.g. `cd <project> && codex resume <session id>`) where it has one
- browser: url and visited_at (last visit, ISO-8601 UTC)
- file: path, host and the matching line range (start_line-end_line); `open` is path:start-end
- every result: id (pass it to get_item for the full text), title, updated_at, snippet.

Use specific words (error messages, library, command or file names) for best results."""

GET_ITEM_DESCRIPTION = """\
Read the full text of one remembered item by its id (from search_memory, ask_memory or \
recent_activity results), e.g. "claude:55604662-cf2a-4331-851a-ec234028f8ca". Long content is \
returned in pages of at most max_chars characters: when the result has a next_offset, call again \
with offset=next_offset to continue. Also returns the item's metadata and how to reopen it \
(resume command, URL or file path)."""

ASK_DESCRIPTION = """\
Ask a question in natural language and get an answer written by the brain's LLM from the user's own \
memory, with numbered citations [n] pointing at the items used (each with its id and how to reopen \
it). If the LLM is unavailable, the result has status "llm_unavailable" and contains the retrieved \
context (the sources the LLM would have read) instead, so you can answer from it yourself. \
Slower than search_memory (the LLM writes the answer): prefer search_memory to locate things and \
ask_memory to summarise or explain across several sources."""

RECENT_DESCRIPTION = """\
List what the user worked on recently, newest first (by last activity): Claude Code and other \
agents' sessions (with their resume command and project), web pages visited (URL, visit time) and \
files touched (path). Useful to pick up where the user left off or to see the recent history of a project."""

TIMELINE_DESCRIPTION = """\
Show one day of the user's work (or several days) across all sources, in time order and grouped by \
project: Claude Code and other agents' sessions with their first prompt, duration and resume command, \
web pages visited (URL), files changed (path). Days are cut at midnight in the user's time zone \
(this machine's unless tz is given). Use it for "what was I doing on Tuesday afternoon?" or to pick \
up yesterday's work; use search_memory to find something by its content."""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)


def result(text: str, data: dict[str, Any]) -> CallToolResult:
    """Readable text for the model, the same facts as structured content for programs."""
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


# ---------------------------------------------------------------------------------------- errors

def explain(exc: ApiError | ApiUnavailable, action: str, token_set: bool = True) -> str:
    """One message that says what failed and what to change (never the token itself)."""
    if isinstance(exc, ApiUnavailable):
        return (f"{action} failed: brain-api is unreachable at {exc.url} ({exc.reason}). Check that brain-api "
                f"is running and that client.api_url / BRAIN_API_URL points at it.")
    if exc.status == 401:
        hint = ("no token is configured: set client.token / BRAIN_TOKEN" if not token_set else
                "set client.token / BRAIN_TOKEN to one of the server's api_tokens")
        return f"{action} failed: brain-api rejected the token (401 {exc.code}: {exc.message}); {hint}."
    if exc.status == 400:
        what = f" {exc.field!r}" if exc.field else ""
        return f"{action} failed: invalid argument{what}: {exc.message}"
    if exc.status == 404:
        return f"{action} failed: {exc.message} (ids come from search_memory, ask_memory or recent_activity)."
    return f"{action} failed: brain-api answered {exc.status} {exc.code}: {exc.message}"


def validation_message(tool: str, exc: ValidationError) -> str:
    """Pydantic's report reduced to "field: problem (got value)", which a model can act on."""
    problems = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "arguments"
        if err["type"] == "string_pattern_mismatch" and field in ("since", "until"):
            msg = ISO_HINT
        else:
            msg = err["msg"][:1].lower() + err["msg"][1:]
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
        problems.append(f"{field}: {msg}{got}")
    return f"invalid arguments for {tool}: " + "; ".join(problems)


class BrainMCP(MCPServer):
    """MCPServer whose argument errors read like the API's: field, problem, value.

    Unknown argument names are refused too (the SDK would drop them silently), so a model that
    guesses ``limit`` instead of ``k`` learns the real name instead of getting unfiltered results.
    """

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        schema = next((t.input_schema for t in await self.list_tools() if t.name == name), None)
        if schema is not None:
            allowed = set(schema.get("properties", {}))
            unknown = sorted(set(arguments) - allowed)
            if unknown:
                raise ToolError(f"invalid arguments for {name}: unknown argument {unknown[0]!r}; "
                                f"accepted: {', '.join(sorted(allowed))}")
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(validation_message(name, exc.__cause__)) from exc.__cause__
            raise


# ---------------------------------------------------------------------------------------- tools

class MemoryTools:
    """The five tools, over two clients: ``api`` (with retries) and ``ask_api`` (no retries).

    Why ask has no client-side retries: brain-api already retries the LLM (``llm.max_retries``),
    and a 503 from ask means the LLM is down; retrying would re-run retrieval and the LLM
    connection attempts several times while the model waits, then fail the same way. Any answer
    other than a 4xx falls back to the retrieved context instead.
    """

    def __init__(self, api: ApiClient, ask_api: ApiClient, max_chars: int):
        self.api = api
        self.ask_api = ask_api
        self.max_chars = max_chars

    @contextmanager
    def _api_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (ApiError, ApiUnavailable) as exc:
            raise ToolError(explain(exc, action, bool(self.api.token))) from None

    @staticmethod
    def _project(project: str | None) -> str | None:
        """Projects are stored without a trailing slash; accept one from the caller."""
        if project is None:
            return None
        return project.rstrip("/") or "/"

    def search_memory(
        self,
        query: Annotated[str, Field(min_length=1, max_length=1000,
                                    description="What to look for: words, an error message, a question.")],
        source: SourceArg = None,
        project: ProjectArg = None,
        since: SinceArg = None,
        until: UntilArg = None,
        k: Annotated[int, Field(ge=1, le=50, description="Most results to return (1-50).")] = 10,
    ) -> CallToolResult:
        with self._api_errors("search_memory"):
            data = self.api.search(query, k=k, source=source, project=self._project(project), since=since,
                                   until=until)
        results = [{**render.public(r), **render.locate(r, r.get("chunk")), "snippet": r.get("snippet"),
                    "score": r.get("score")} for r in data.get("results", [])]
        if not results:
            filtered = any((source, project, since, until))
            text = f"No results for {query!r}{' with these filters' if filtered else ''}."
        else:
            text = "\n\n".join([f"{len(results)} results for {query!r}, best first:"]
                               + [render.entry(n, r, r["snippet"]) for n, r in enumerate(results, 1)])
            text += "\n\nRead an item in full with get_item(id)."
        return result(text, {"query": query, "results": results})

    def get_item(
        self,
        id: Annotated[str, Field(min_length=1, max_length=512, description=(
            "The item id as returned by the other tools, e.g. claude:<session id>, "
            "browser:<profile>:<hash>, file:<host>:<absolute path>."))],
        offset: Annotated[int, Field(ge=0, description=(
            "Character offset to start reading at: 0 for the beginning, or next_offset from the previous "
            "call."))] = 0,
        max_chars: Annotated[int | None, Field(ge=1000, le=60_000, description=(
            "Most characters of content to return (1000-60000; default 20000)."))] = None,
    ) -> CallToolResult:
        with self._api_errors(f"get_item {id!r}"):
            item = self.api.get_item(id, offset=offset, limit=max_chars or self.max_chars)
        total = int(item.get("content_total") or 0)
        if offset and offset >= total:
            raise ToolError(f"get_item {id!r} failed: offset {offset} is past the end of the content "
                            f"({total} characters); start at 0.")
        content = item.get("content") or ""
        next_offset = item.get("next_offset")
        loc = render.locate(item)
        data = {**render.public(item), **loc, "content": content, "offset": offset, "content_total": total,
                "next_offset": next_offset}
        lines = [str(item.get("title") or id), *render.describe(item, loc), f"id: {id}"]
        if item.get("meta"):
            lines.append("meta: " + render.one_line(json.dumps(item["meta"], ensure_ascii=False), META_CHARS))
        more = f"; more follows: call get_item with offset={next_offset}" if next_offset is not None else ""
        lines.append(f"content: characters {offset}-{offset + len(content)} of {total}{more}")
        text = "\n".join(lines) + "\n---\n" + content
        if next_offset is not None:
            text += f"\n---\n[continues: get_item(id={id!r}, offset={next_offset})]"
        return result(text, data)

    def ask_memory(
        self,
        question: Annotated[str, Field(min_length=1, max_length=4000,
                                       description="The question, in natural language.")],
        source: SourceArg = None,
        project: ProjectArg = None,
        since: SinceArg = None,
        until: UntilArg = None,
        k: Annotated[int | None, Field(ge=1, le=20, description=(
            "Most sources (items) the answer may draw on (1-20; default: the server's ask.k)."))] = None,
    ) -> CallToolResult:
        kw = {"source": source, "project": self._project(project), "since": since, "until": until, "k": k}
        try:
            data = self.ask_api.ask(question, **kw)
        except ApiError as exc:
            if not exc.retryable:  # 400/401/...: asking again fails the same way
                raise ToolError(explain(exc, "ask_memory", bool(self.api.token))) from None
            return self._context_fallback(question, kw, f"the LLM is unavailable ({exc.code}: {exc.message})")
        except ApiUnavailable as exc:
            return self._context_fallback(question, kw, f"no answer from brain-api's ask ({exc.reason})")
        citations = self._enrich(data.get("citations") or [])
        out = {"status": "answered", "question": question, "answer": data.get("answer"),
               "model": data.get("model"), "citations": citations}
        text = (f"{data.get('answer') or ''}\n\nSources (answer by {data.get('model') or 'no model'}):\n\n"
                f"{self._render_citations(citations)}")
        return result(text.strip(), out)

    def _context_fallback(self, question: str, kw: dict[str, Any], why: str) -> CallToolResult:
        """What retrieval found, for the calling model to answer from, when the LLM cannot answer."""
        try:
            data = self.api.ask(question, llm=False, **kw)
        except (ApiError, ApiUnavailable) as exc:
            detail = explain(exc, "retrieving the context instead", bool(self.api.token))
            raise ToolError(f"ask_memory failed: {why}; then {detail}") from None
        citations = self._enrich(data.get("citations") or [])
        context = data.get("context") or ""
        out = {"status": "llm_unavailable", "question": question, "answer": None, "reason": why,
               "citations": citations, "context": context}
        text = (f"No written answer: {why}. Below are the sources retrieved for the question; answer "
                f"from them directly.\n\nSources:\n\n{self._render_citations(citations)}\n\n"
                f"Retrieved context:\n\n{context or '(nothing in the brain matches this question)'}")
        return result(text, out)

    def _enrich(self, citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Citations carry id/title/uri only; read each item's meta so it says how to reopen it."""
        out = []
        for c in citations:
            item: dict[str, Any] = {**c, "meta": {}, "project": None}
            try:
                full = self.api.get_item(c["id"], limit=1)
                item.update({k: full.get(k) for k in ("project", "meta", "created_at", "updated_at")})
            except (ApiError, ApiUnavailable) as exc:  # the citation stays usable by its id and uri
                log.warning("citation %s: cannot read its metadata: %s", c.get("id"), exc)
            out.append({**item, **render.locate(item)})
        return out

    @staticmethod
    def _render_citations(citations: list[dict[str, Any]]) -> str:
        if not citations:
            return "(none)"
        return "\n\n".join(render.entry(c.get("n") or n, c, c.get("snippet")) for n, c in enumerate(citations, 1))

    def recent_activity(
        self,
        project: ProjectArg = None,
        days: Annotated[int, Field(ge=1, le=365, description="How many days back to look (1-365).")] = 7,
        source: SourceArg = None,
        limit: Annotated[int, Field(ge=1, le=200, description="Most items to return (1-200).")] = 30,
    ) -> CallToolResult:
        since = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._api_errors("recent_activity"):
            data = self.api.list_items(source=source, project=self._project(project), since=since, limit=limit)
        items = [{**render.public(it), **render.locate(it)} for it in data.get("items", [])]
        more = data.get("next_offset") is not None
        scope = f" in {project}" if project else ""
        if not items:
            text = f"No activity{scope} in the last {days} days" + (f" from source {source}." if source else ".")
        else:
            text = "\n\n".join([f"{counted(len(items), 'item')}{scope} active in the last {days} days, newest first "
                                f"({render.count_by(items, 'source')}):"]
                               + [render.entry(n, it) for n, it in enumerate(items, 1)])
            if more:
                text += "\n\nMore items exist: raise limit (at most 200) or narrow by source, project or days."
        return result(text, {"since": since, "items": items, "more": more})

    def timeline(
        self,
        day: Annotated[str | None, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description=(
            "The day, YYYY-MM-DD (e.g. 2026-11-24). Omit for today."))] = None,
        days: Annotated[int, Field(ge=1, le=31, description="How many days from day on (1-31).")] = 1,
        project: ProjectArg = None,
        source: SourceArg = None,
        tz: Annotated[str | None, Field(min_length=1, max_length=64, description=(
            "Time zone the days are cut in: an IANA name (Europe/Rome) or an offset (+01:00). "
            "Omit for this machine's zone."))] = None,
    ) -> CallToolResult:
        tz_name = tz or local_tz_name()
        if day is None:
            try:
                day = now_in(tz_name).date().isoformat()
            except ValueError as exc:
                raise ToolError(f"invalid arguments for timeline: tz: {exc}") from None
        with self._api_errors("timeline"):
            data = self.api.timeline(day=day, days=days, tz=tz_name, source=source, project=self._project(project))
        text = render_timeline(data)
        text += (f"\n\nPrevious: timeline(day={data['prev_day']!r}); next: timeline(day={data['next_day']!r}). "
                 "Read an item in full with get_item(id).")
        return result(text, data)


def build_server(cfg: LaptopConfig, log_level: str = "WARNING") -> BrainMCP:
    """The MCP server with its five tools, talking to the brain-api of ``cfg``."""
    api = ApiClient.from_config(cfg)
    ask_api = ApiClient.from_config(cfg, retries=0)
    ask_api.timeout = cfg.mcp.ask_timeout
    tools = MemoryTools(api, ask_api, cfg.mcp.max_chars)
    server = BrainMCP(SERVER_NAME, title="brain: the developer's second brain", instructions=INSTRUCTIONS,
                      version=__version__, log_level=log_level)  # type: ignore[arg-type]
    specs: list[tuple[Callable[..., CallToolResult], str, str]] = [
        (tools.search_memory, "Search memory", SEARCH_DESCRIPTION),
        (tools.get_item, "Read a remembered item", GET_ITEM_DESCRIPTION),
        (tools.ask_memory, "Ask memory", ASK_DESCRIPTION),
        (tools.recent_activity, "Recent activity", RECENT_DESCRIPTION),
        (tools.timeline, "Timeline of a day", TIMELINE_DESCRIPTION),
    ]
    for fn, title, description in specs:
        server.add_tool(fn, title=title, description=description, annotations=READ_ONLY)
    return server


# ---------------------------------------------------------------------------------------- HTTP

class BearerGuard:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer <mcp.http_token>``.

    Why not the SDK's OAuth resource-server support: this server has one user, and a static token
    is what ``claude mcp add --header`` and generic MCP client configs can carry.
    """

    def __init__(self, app: Any, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = json.dumps({"error": {"code": "unauthorized",
                                             "message": "missing or wrong bearer token (mcp.http_token)"}})
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body.encode()})
                return
        await self.app(scope, receive, send)


def run_http(server: BrainMCP, host: str, port: int, token: str, log_level: str) -> None:
    """Serve streamable HTTP at ``http://host:port/mcp`` with uvicorn until interrupted."""
    import uvicorn

    check_http_exposure(host, token)
    app: Any = server.streamable_http_app(streamable_http_path=HTTP_PATH, host=host)
    if token:
        app = BearerGuard(app, token)
    click.echo(f"brain MCP server on http://{host}:{port}{HTTP_PATH}", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower())
