"""brain-api's contract as code: each route's request and response models, declared once.

The same declarations do three things:

* **validate** a request: :func:`operation` parses the query string or the JSON body of a route
  into its model, and a refusal is the contract's JSON 400 naming the field (and, inside a batch,
  the item's index) in the words of :func:`brain.shared.schema.explain`;
* **publish** the OpenAPI 3.1 document at ``GET /api/v1/openapi.json`` (:func:`openapi`), built
  from the routes of the running app, so a route without its models cannot hide from it;
* **check** the answers: the property-based run (``tests/core/test_api_schema.py``) validates every
  response of the real server against that document.

What pydantic does not do stays where it was: the body's transport rules (UTF-8, no NaN, depth, no
NUL or lone surrogate anywhere: ``brain.api.params``), rules that need settings (the batch size,
the content size passed as validation context) and rules that need the store (a repeated id).
The item itself is ``brain.shared.schema.Item``, shared with the collectors.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from flask import Flask, request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator
from pydantic.json_schema import models_json_schema

from brain.api.errors import ApiError
from brain.api.params import body_bytes, json_body
from brain.core.search import MODES
from brain.rag.ask import MAX_QUESTION_CHARS
from brain.shared.schema import MAX_PROJECT_LEN, QUERY_INT, STORABLE, ItemBatch, Source, Text, Time, explain, refuse
from brain.shared.tombstones import MAX_FIELD as RULE_TEXT

MAX_QUERY_CHARS = 2000
Mode = Literal["hybrid", "vector", "bm25"]
assert Mode.__args__ == MODES  # type: ignore[attr-defined]  # brain.core.search's modes, one list
M = TypeVar("M", bound=BaseModel)

def _not_blank(value: str) -> str:
    if not value.strip():
        raise refuse("is required: a non-empty string (not only blanks)")
    return value.strip()


NOT_BLANK = AfterValidator(_not_blank)


def _day(value: str) -> str:
    """YYYY-MM-DD exactly (``date.fromisoformat`` alone also reads ``20260310``)."""
    try:
        if len(value) != 10:
            raise ValueError(value)
        date.fromisoformat(value)
    except ValueError:
        raise refuse(f"must be YYYY-MM-DD, e.g. 2026-03-10 (got {value[:40]!r})") from None
    return value


Day = Annotated[str, Field(json_schema_extra={"format": "date"}), AfterValidator(_day)]
Project = Annotated[str, Field(max_length=MAX_PROJECT_LEN, description="A project directory."), STORABLE]


def _query_config(title: str) -> ConfigDict:
    """A query string's model: text in, unknown parameters ignored (as they always were)."""
    return ConfigDict(extra="ignore", title=title)


_BODY = ConfigDict(extra="forbid", strict=True)


class _Window(BaseModel):
    """``since`` must not be after ``until`` (both given)."""

    @model_validator(mode="after")
    def _ordered(self) -> Any:
        since, until = getattr(self, "since", None), getattr(self, "until", None)
        if since and until and since > until:
            raise refuse("must not be after until", "since")
        return self


class Filters(_Window):
    """What list, search and ask narrow by: activity overlapping since..until, a source, a project."""

    source: Source | None = None
    project: Project | None = None
    since: Time | None = Field(None, description="Keeps items updated at or after it.")
    until: Time | None = Field(None, description="Keeps items created at or before it.")

    def filters(self) -> dict[str, Any]:
        return {"source": self.source, "project": self.project, "since": self.since, "until": self.until}


# ------------------------------------------------------------------ requests


class ItemsQuery(Filters):
    model_config = _query_config(title="ItemsQuery")

    limit: Annotated[int, Field(ge=1, le=500), QUERY_INT] = 50
    offset: Annotated[int, Field(ge=0, le=10_000_000), QUERY_INT] = 0


class ItemPageQuery(BaseModel):
    model_config = _query_config(title="ItemPageQuery")

    offset: Annotated[int, Field(ge=0, le=1 << 40, description="First character of content to send."), QUERY_INT] = 0
    limit: Annotated[int, Field(ge=0, le=1 << 40, description="Characters of content to send (0: all)."), QUERY_INT] = 0


class SearchQuery(Filters):
    model_config = _query_config(title="SearchQuery")

    q: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, json_schema_extra={"pattern": r"\S"},
                            description="The search text (surrounding blanks are ignored)."), STORABLE, NOT_BLANK]
    k: Annotated[int, Field(ge=1, le=100), QUERY_INT] = 10
    mode: Mode = "hybrid"


class AskRequest(Filters):
    model_config = ConfigDict(**_BODY, title="AskRequest")

    question: Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS, json_schema_extra={"pattern": r"\S"}),
                        STORABLE, NOT_BLANK]
    k: Annotated[int, Field(ge=1, le=50, description="Sources to retrieve (default ask.k).")] | None = None
    stream: bool | None = Field(None, description="Answer as server-sent events (default false).")
    show_thinking: bool | None = Field(None, description="Include a reasoning model's thinking (default "
                                                         "llm.show_thinking).")
    llm: bool | None = Field(None, description="false: no LLM call, the packed sources only (default true).")


class TimelineQuery(_Window):
    model_config = _query_config(title="TimelineQuery")

    day: Annotated[Day, Field(description="YYYY-MM-DD (default: today in tz).")] | None = None
    days: Annotated[int, Field(ge=1, le=31), QUERY_INT] = 1
    tz: Annotated[str, Field(max_length=64, description="IANA zone or offset."), STORABLE] = "UTC"
    since: Time | None = None
    until: Time | None = None
    source: Source | None = None
    project: Project | None = None
    limit: Annotated[int, Field(ge=1, le=5000), QUERY_INT] = 1000


RuleText = Annotated[str, Field(max_length=RULE_TEXT), STORABLE]


class ForgetRequest(_Window):
    """A rule (the AND of its fields, at least one) and whether to only count (``brain.shared.tombstones``)."""

    model_config = ConfigDict(**_BODY, title="ForgetRequest")

    id: RuleText | None = Field(None, description="Exactly this item id.")
    source: Source | None = None
    project: RuleText | None = Field(None, description="Exactly this project (a trailing / is ignored).")
    id_prefix: RuleText | None = Field(None, description="Ids starting with it (`agent:codex:`).")
    domain: RuleText | None = Field(None, description="Pages of this host or its subdomains.")
    path_glob: RuleText | None = Field(None, description="Files whose absolute path matches; `*` matches `/`.")
    since: Time | None = None
    until: Time | None = None
    dry_run: bool | None = Field(None, description="Only count the matches: nothing deleted or recorded.")

    def rule(self) -> dict[str, Any]:
        return self.model_dump(exclude={"dry_run"}, exclude_none=True)


class GpuStartRequest(BaseModel):
    model_config = ConfigDict(**_BODY, title="GpuStartRequest")

    force: bool = Field(False, description="Start even past gpu.monthly_budget_usd.")
    wait: bool = Field(False, description="Answer once Ollama answers (at most gpu.start_timeout).")


class GpuStopRequest(BaseModel):
    model_config = ConfigDict(**_BODY, title="GpuStopRequest")

    force: bool = Field(False, description="Stop even while asks use the LLM.")


class CostQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", title="CostQuery")

    month: Annotated[str, Field(description="YYYY-MM (default: this month, UTC)."), STORABLE] | None = None


# ------------------------------------------------------------------ responses


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


Meta = dict[str, JsonValue]
Stamp = Annotated[str, Field(description="UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ`.")]


class ErrorDetail(_Answer):
    code: str = Field(description="snake_case, e.g. invalid_parameter, invalid_item, not_found.")
    message: str = Field(description="A sentence naming what is wrong.")
    field: str | None = Field(None, description="The field (or parameter) at fault.")
    index: int | None = Field(None, description="Inside a batch: the item's index.")
    reason: str | None = None
    context_tokens: int | None = None


class Citation(_Answer):
    n: int
    id: str
    title: str
    uri: str | None
    source: str
    snippet: str


Timings = dict[str, float]


class ErrorAnswer(BaseModel):
    """Every error: ``error``; ask's 503s add the memory found (``citations``, ``timings``), the GPU
    calls their details (``budget``, ...)."""

    model_config = ConfigDict(extra="allow", title="Error")

    error: ErrorDetail
    citations: list[Citation] | None = None
    timings: Timings | None = None


class TextPiece(_Answer):
    """A ``token`` (or ``thinking``) event's data: the next piece of the answer."""

    text: str


class GpuProgress(_Answer):
    """A ``status`` event's data while a stopped GPU VM starts (``brain.gpu.control``)."""

    stage: str = Field(description="checking | vm_starting | waiting_ollama | ready | retrieval_only")
    message: str
    state: str
    elapsed_s: float
    usual_s: float | None = Field(None, description="Median of the last starts an ask waited for.")
    timeout_s: float | None = Field(None, description="gpu.start_timeout.")


SSE_EVENTS: dict[str, type[BaseModel]] = {}  # filled below: event name → the model of its JSON data


class IngestAnswer(_Answer):
    inserted: int
    updated: int
    unchanged: int
    queued: int = Field(description="Chunk texts of this batch waiting for a vector.")
    forgotten: int = Field(description="Items a tombstone refused (dropped, not an error).")


class ItemSummary(_Answer):
    id: str
    source: str
    title: str
    uri: str | None
    project: str | None
    created_at: Stamp
    updated_at: Stamp
    meta: Meta


class ItemList(_Answer):
    items: list[ItemSummary]
    next_offset: int | None


class StoredItem(ItemSummary):
    content: str
    content_hash: str
    ingested_at: Stamp
    chunks: int
    content_total: int = Field(description="Characters of the whole content.")
    next_offset: int | None = Field(description="Where the next page of content starts (null at the end).")


class Deleted(_Answer):
    deleted: int


class ChunkRef(_Answer):
    seq: int
    start_line: int | None
    end_line: int | None


class SearchHit(ItemSummary):
    chunk: ChunkRef
    snippet: str
    score: float
    scores: dict[str, float]
    vectors_pending: bool


class SearchAnswer(_Answer):
    query: str
    mode: str
    model: str
    took_ms: float
    results: list[SearchHit]
    degraded: str | None = Field(None, description="Why the vector half was skipped (the embedder is down).")


class PromptInfo(_Answer):
    budget_tokens: int
    sources_tokens_est: int
    chunks: int
    context_tokens: int | None = None
    context_source: str | None = None


class AskAnswer(_Answer):
    answer: str | None
    citations: list[Citation]
    model: str | None
    timings: Timings
    prompt: PromptInfo
    finish_reason: str | None = None
    thinking: str | None = None
    context: str | None = Field(None, description="llm: false: the packed sources as the model would read them.")
    retrieval_only: bool | None = None
    reason: str | None = None


SSE_EVENTS.update(token=TextPiece, thinking=TextPiece, status=GpuProgress, done=AskAnswer, error=ErrorAnswer)


class TimelineEntry(_Answer):
    id: str
    source: str
    kind: Literal["session", "page", "file", "note"]
    title: str
    uri: str | None
    project: str | None
    at: Stamp
    start: Stamp
    end: Stamp
    # sessions (values from meta are the collector's JSON)
    duration_s: int | None = None
    first_prompt: str | None = None
    user_messages: JsonValue = None
    agent: JsonValue = None
    resume: JsonValue = None
    open: JsonValue = None
    # pages
    url: str | None = None
    domain: JsonValue = None
    visits: JsonValue = None
    # files
    path: JsonValue = None
    rel_path: JsonValue = None
    language: JsonValue = None
    line_count: JsonValue = None


class TimelineGroup(_Answer):
    project: str | None
    name: str | None
    first_at: Stamp
    last_at: Stamp
    counts: dict[str, int]
    entries: list[TimelineEntry]


class TimelineAnswer(_Answer):
    since: Stamp
    until: Stamp
    tz: str
    day: str | None
    days: int | None
    prev_day: str | None = None
    next_day: str | None = None
    total: int
    truncated: bool
    counts: dict[str, int]
    groups: list[TimelineGroup]


class Tombstone(_Answer):
    id: int
    rule: dict[str, str]
    created_at: Stamp
    deleted: int


class ForgetAnswer(_Answer):
    deleted: int | None = None
    tombstone: Tombstone | None = None
    matches: int | None = Field(None, description="dry_run: what the rule matches now.")
    rule: dict[str, str] | None = Field(None, description="dry_run: the rule as it would be recorded.")


class TombstoneList(_Answer):
    tombstones: list[Tombstone]


class Undone(_Answer):
    removed: int
    tombstone: Tombstone


class OllamaState(_Answer):
    url: str
    ready: bool


class GpuStatus(_Answer):
    configured: bool
    state: str
    message: str | None = Field(None, description="Without a GPU VM configured: what asks use instead.")
    instance_id: str | None = None
    ip: str | None = None
    rate_hourly: float | None = None
    rate_source: str | None = None
    up_since: Stamp | None = None
    session_seconds: float | None = None
    session_usd: float | None = None
    ollama: OllamaState | None = None
    in_flight: int | None = None
    last_ask_at: Stamp | None = None
    idle_minutes: float | None = None
    idle_stop_at: Stamp | None = None
    auto_start: bool | None = None
    monthly_budget_usd: float | None = None


class GpuAction(GpuStatus):
    action: Literal["started", "stopped", "none"]
    reason: str | None = None


class CostAnswer(BaseModel):
    """``brain.gpu.cost.month_report``: GPU hours and dollars, storage, embeddings, projection, tiers."""

    model_config = ConfigDict(extra="forbid")

    month: str
    start: Stamp
    end: Stamp
    as_of: Stamp
    complete: bool
    gpu: dict[str, float | int | bool]
    storage: dict[str, float | int]
    embeddings: dict[str, float | int]
    total: dict[str, float]
    budget: dict[str, float | bool] | None
    hourly_rate: float
    tiers: list[dict[str, str | float]]
    tier: str | None
    tier_note: str


class Health(_Answer):
    status: Literal["ok"]


class Ready(_Answer):
    status: Literal["ready"]
    db: Literal["ok"]
    embedder: str
    queued: int


class Backlog(_Answer):
    queued: int
    failed: int
    embedded: int
    rate_per_min: float
    eta_seconds: int | None
    last_error: str | None


class Stats(_Answer):
    items: dict[str, int]
    chunks: dict[str, int]
    total_items: int
    total_chunks: int
    vectors: int
    missing_vectors: int
    db_bytes: int
    embedding_model: str
    last_ingest_at: Stamp | None
    embedding: dict[str, Backlog]


# ------------------------------------------------------------------ routes


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says of one route (attached to its view as ``view.operation``)."""

    summary: str
    ok: type[BaseModel] | None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_required: bool = True
    ok_status: tuple[int, ...] = (200,)
    errors: Mapping[int, str] = field(default_factory=dict)
    public: bool = False
    stream: bool = False
    raw_ok: dict[str, Any] | None = None  # a plain JSON Schema for the answer (the document itself)
    code: str = "invalid_parameter"  # the code of a refused top-level field (POST /items: invalid_field)
    parse: bool = True  # False: the view validates the body itself (it needs settings first)


def operation(summary: str, ok: type[BaseModel] | None, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a route's models: its query (passed to the view as ``query``) or body (``body``), its
    answers. The view gets the validated model; a refusal is the contract's 400."""
    op = Operation(summary, ok, **kw)

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            if op.query is not None:
                kwargs["query"] = parse_query(op.query, request.args)
            if op.body is not None and op.parse:
                kwargs["body"] = parse_body(op.body, op.code) if op.body_required or body_bytes() else op.body()
            return view(**kwargs)

        wrapper.operation = op  # type: ignore[attr-defined]
        return wrapper

    return decorate


def refusal(exc: ValidationError, model: type[BaseModel], code: str = "invalid_parameter") -> ApiError:
    """The 400 for a failed validation: ``invalid_item`` (field and index) inside a batch's item."""
    problem = explain(exc, model)
    if problem.index is not None:
        return ApiError(400, "invalid_item", problem.message, field=problem.field, index=problem.index)
    return ApiError(400, code, problem.message, field=problem.field)


def parse_query(model: type[M], args: Mapping[str, Any]) -> M:
    """A query string's model; an empty parameter (``?source=``) counts as not given, a parameter
    without a name (``?=0``) is refused: it is no parameter of any route."""
    if "" in args:
        raise ApiError(400, "invalid_parameter", "a query parameter has no name (e.g. '?=value')")
    values = {k: v for k, v in args.items() if v != ""}  # a MultiDict's items(): each name's first value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise refusal(exc, model) from None


def parse_body(model: type[M], code: str = "invalid_parameter") -> M:
    """The JSON body's model (after the body rules of :func:`brain.api.params.json_body`)."""
    return validate(model, json_body(), code)


def validate(model: type[M], data: Any, code: str = "invalid_parameter", context: dict[str, Any] | None = None) -> M:
    """``data`` (a decoded body) as ``model``, or the 400 naming what is wrong."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise refusal(exc, model, code) from None


# ------------------------------------------------------------------ the document

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")
_STATUS_TEXT = {200: "OK", 202: "Accepted"}
COMMON_ERRORS = {400: "A parameter or the body is wrong (`field` names it; `index` the item of a batch).",
                 401: "No or a wrong bearer token.",
                 408: "The request head or body did not arrive in time.",
                 413: "The body is over server.max_body_bytes.",
                 415: "A body not sent as application/json.",
                 503: "The database's disk is read-only or failing, or a service the request needs is down.",
                 507: "The database's disk is full: nothing was stored."}


def openapi(app: Flask, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route that declares an :class:`Operation`."""
    ops: list[tuple[str, str, str, Operation, dict[str, str]]] = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        op = getattr(app.view_functions[rule.endpoint], "operation", None)
        if op is None:
            continue
        params = {name: conv or "default" for conv, name in _CONVERTER.findall(rule.rule)}
        path = _CONVERTER.sub(lambda m: "{" + m.group(2) + "}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            ops.append((path, method.lower(), rule.endpoint, op, params))
    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [(ErrorAnswer, "serialization")]
    for _, _, _, op, _ in ops:
        models += [(m, "validation") for m in (op.query, op.body) if m is not None]
        if op.ok is not None:
            models.append((op.ok, "serialization"))
        if op.stream:
            models += [(m, "serialization") for m in SSE_EVENTS.values()]
    refs, defs = models_json_schema(list(dict.fromkeys(models)), ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for path, method, endpoint, op, params in ops:
        paths.setdefault(path, {})[method] = _operation(op, endpoint, params, refs, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "brain-api", "version": version,
                 "description": "The brain's HTTP API (v1). The contract in prose: docs/API.md."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "One of server.api_tokens."}}},
    }


def _operation(op: Operation, endpoint: str, params: dict[str, str], refs: dict[Any, Any],
               schemas: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": endpoint.replace(".", "_"), "summary": op.summary,
                           "tags": [endpoint.split(".", 1)[0]]}
    if op.public:
        out["security"] = []
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "integer", "minimum": 0} if conv == "int" else {"type": "string", "minLength": 1}}
                  for name, conv in params.items()]
    if op.query is not None:
        parameters += _query_parameters(op.query, refs, schemas)
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": {
            "application/json": {"schema": refs[(op.body, "validation")]}}}
    responses: dict[str, Any] = {}
    for status in op.ok_status:
        if op.raw_ok is not None:
            content: dict[str, Any] = {"application/json": {"schema": op.raw_ok}}
        else:
            content = {"application/json": {"schema": refs[(op.ok, "serialization")]}}
        if op.stream:
            content["text/event-stream"] = {"schema": _sse_schema(refs)}
        responses[str(status)] = {"description": _STATUS_TEXT.get(status, "OK"), "content": content}
    error = {"application/json": {"schema": refs[(ErrorAnswer, "serialization")]}}
    errors = {} if op.public else {**COMMON_ERRORS, **op.errors}
    for status, text in sorted(errors.items()):
        if status in (413, 415) and op.body is None:
            continue
        responses[str(status)] = {"description": text, "content": error}
    responses["default"] = {"description": "Any other error, in the same shape.", "content": error}
    out["responses"] = responses
    return out


def _sse_schema(refs: dict[Any, Any]) -> dict[str, Any]:
    """One server-sent event (OpenAPI 3.1: ``schema`` is the per-event schema): its name, and its
    ``data`` as JSON of that event's model. ``token``/``thinking``/``status`` pieces, then one ``done``
    (the whole answer) or ``error``."""
    return {"oneOf": [
        {"type": "object", "required": ["event", "data"],
         "properties": {"event": {"const": name},
                        "data": {"type": "string", "contentMediaType": "application/json",
                                 "contentSchema": refs[(model, "serialization")]}}}
        for name, model in SSE_EVENTS.items()]}


def _query_parameters(model: type[BaseModel], refs: dict[Any, Any], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    ref = refs[(model, "validation")]["$ref"].rsplit("/", 1)[1]
    schema = schemas[ref]
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null(prop)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in prop:
            param["description"] = prop.pop("description")
        if name not in required:
            param["allowEmptyValue"] = True  # ``?source=`` is the same as no source
        out.append(param)
    return out


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is text or absent, never JSON null: drop pydantic's ``null`` branch."""
    prop = dict(prop)
    branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        prop = {**branches[0], **prop}
    elif branches:
        prop["anyOf"] = branches
    if prop.get("default") is None:
        prop.pop("default", None)
    prop.pop("title", None)
    return prop


__all__ = ["AskRequest", "CostQuery", "ForgetRequest", "GpuStartRequest", "GpuStopRequest", "ItemBatch", "ItemsQuery",
           "ItemPageQuery", "SearchQuery", "Text", "TimelineQuery", "openapi", "operation", "parse_body",
           "parse_query", "refusal"]
