"""The item schema: what a collector sends and brain-api stores, declared once (pydantic).

Why shared: an item is built on the laptop (``brain.collect``), carried by the client, checked by
brain-api and written by the store; one model says what a valid item is on every side, and the
same model publishes it in the API's OpenAPI document (``brain.api.schema``). This module imports
nothing of either side (pydantic and the time helpers only).

A refusal names where the bad value is — ``items[3].created_at: '2026-13-45' is not an ISO-8601
date or time``: :func:`explain` turns pydantic's errors into that sentence with the field and,
inside a batch, the item's index, for every model of the API (``brain.api.schema`` builds its
request models from the same field types).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from brain.shared import timeutil

SOURCES = ("claude", "agent", "browser", "file", "note")
ITEM_FIELDS = ("id", "source", "title", "uri", "project", "created_at", "updated_at", "content", "meta")
MAX_ID_LEN = 512
MAX_TITLE_LEN = 2000
MAX_URI_LEN = 8192
MAX_PROJECT_LEN = 4096
DEFAULT_MAX_CONTENT_BYTES = 2 * 1024 * 1024  # brain-api passes server.max_item_bytes (see Item)

Source = Literal["claude", "agent", "browser", "file", "note"]
assert Source.__args__ == SOURCES  # type: ignore[attr-defined]  # one list of sources, checked at import


# ------------------------------------------------------------------ the text rule


def text_problem(text: str) -> str | None:
    """Why a string cannot be stored, or None: the one rule for every string of every field.

    No NUL (SQLite and most tools cut text there, so what is stored is not what is shown) and no
    lone surrogate (not Unicode: it has no UTF-8 form, so SQLite cannot store it and the request
    ended in a 500). The API applies it to every string and key of a body (``api.params``)."""
    if "\x00" in text:
        return "contains a NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid Unicode)"
    return None


def unstorable(value: Any) -> str | None:
    """Why a value (a string, or anything inside a JSON value) cannot be stored, or None.

    :func:`text_problem` for every string and key, and no NaN or Infinity (``json.dumps`` writes
    them, but the result is not JSON and would be served back as such). Iterative: a deeply nested
    ``meta`` cannot raise RecursionError here."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            why = text_problem(v)
            if why:
                return why
        elif isinstance(v, float) and not math.isfinite(v):
            return "contains NaN or Infinity (not JSON)"
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def refuse(message: str, field: str | None = None) -> PydanticCustomError:
    """An error in our own words; ``message`` follows the field's name (``since`` + ``: ...``).

    ``field``: for a check of the whole model (``id`` against ``source``), the field to blame."""
    ctx: dict[str, Any] = {"message": message}
    if field is not None:
        ctx["field"] = field
    return PydanticCustomError("brain", "{message}", ctx)


def _storable(value: Any) -> Any:
    why = unstorable(value)
    if why:
        raise refuse(why)
    return value


def _time(value: str) -> str:
    try:
        return timeutil.normalise(value)
    except ValueError as exc:
        raise refuse(f": {exc}") from None


# Field types every model of the API is built from: strings that obey the text rule, and times.
STORABLE = AfterValidator(_storable)  # put after a Field's length limits: they apply to the string itself
Text = Annotated[str, STORABLE]
Time = Annotated[str, STORABLE, AfterValidator(_time), Field(
    description="ISO-8601: any offset (`2026-11-27T10:00:00Z`, `...+01:00`) or a bare date (midnight UTC); "
                "answered in UTC as `YYYY-MM-DDTHH:MM:SS.mmmZ`. Outside years 1-9999 once in UTC: 400.",
    examples=["2026-11-27T10:00:00Z", "2026-11-27"])]
_DIGITS = re.compile(r"[+-]?[0-9]{1,19}")


def _query_int(value: Any) -> Any:
    """A query string's integer: ASCII digits only (not ``3.0``, ``1e3``, `` 3`` or ``٣``)."""
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise PydanticCustomError("int_parsing", "not an integer")
        return int(value)
    return value


QUERY_INT = BeforeValidator(_query_int)  # after a Field's bounds, so that they stay the integer's own


# ------------------------------------------------------------------ the item


class Item(BaseModel):
    """One thing remembered, as a collector sends it (``POST /api/v1/items``)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Item")

    id: Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN, description=(
        "Stable, chosen by the collector; starts with `<source>:` (`claude:<sessionId>`, "
        "`file:<host>:<path>`, `agent:<agent>:<session id>`).")), STORABLE]
    source: Source
    title: Annotated[str, Field(max_length=MAX_TITLE_LEN), STORABLE] | None = ""
    uri: Annotated[str, Field(max_length=MAX_URI_LEN), STORABLE] | None = None
    project: Annotated[str, Field(max_length=MAX_PROJECT_LEN), STORABLE] | None = Field(
        None, description="The project's directory.")
    created_at: Time | None = Field(None, description="Default: now.")
    updated_at: Time | None = Field(None, description="Default: created_at.")
    content: Annotated[str, Field(description=(
        "The text (may be empty), at most server.max_item_bytes bytes of UTF-8.")), STORABLE]
    meta: Annotated[dict[str, Any], STORABLE] | None = Field(None, description=(
        "Free-form JSON object (`resume`, `agent`, `git_branch`, ...)."))

    @field_validator("content")
    @classmethod
    def _content_fits(cls, value: str, info: ValidationInfo) -> str:
        limit = (info.context or {}).get("max_content_bytes", DEFAULT_MAX_CONTENT_BYTES)
        if len(value.encode("utf-8", "surrogatepass")) > limit:
            raise refuse(f"is larger than {limit} bytes")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Item:
        if not self.id.startswith(self.source + ":"):
            raise refuse(f"must start with '{self.source}:'", "id")
        if self.created_at and self.updated_at and self.created_at > self.updated_at:
            raise refuse("is after its updated_at", "created_at")
        return self

    def stored(self) -> dict[str, Any]:
        """The item as the store writes it: defaults filled; missing times stay None (see Store.upsert)."""
        return {"id": self.id, "source": self.source, "title": self.title or "", "uri": self.uri,
                "project": self.project, "created_at": self.created_at, "updated_at": self.updated_at,
                "content": self.content, "meta": self.meta if self.meta is not None else {}}


class ItemBatch(BaseModel):
    """The body of ``POST /api/v1/items``: one transaction, all stored or none."""

    model_config = ConfigDict(extra="forbid", strict=True, title="ItemBatch")

    items: list[Item] = Field(description="At most server.max_batch_items (500) items.")


# ------------------------------------------------------------------ refusals in our words


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with a value: the sentence, and where (``loc``: names and indexes)."""

    message: str
    loc: tuple[str | int, ...]

    @property
    def field(self) -> str | None:
        """The field to name: inside ``items[i]`` the item's field, else the top-level one."""
        names = self.loc[2:3] if self.index is not None else self.loc[:1]
        return str(names[0]) if names else None

    @property
    def index(self) -> int | None:
        if len(self.loc) >= 2 and self.loc[0] == "items" and isinstance(self.loc[1], int):
            return self.loc[1]
        return None


def where(loc: Sequence[str | int]) -> str:
    """``("items", 3, "created_at")`` → ``items[3].created_at``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{printable(p)}" for p in loc).lstrip(".")


def printable(key: Any) -> str:
    """A key as an error message may show it: a NUL or lone surrogate spelled as an escape."""
    text = str(key)
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


_TYPES = {"string_type": "a string", "int_type": "a JSON integer", "int_parsing": "an integer",
          "int_from_float": "a JSON integer", "bool_type": "true or false", "bool_parsing": "true or false",
          "dict_type": "a JSON object", "model_type": "a JSON object", "model_attributes_type": "a JSON object",
          "list_type": "a list", "float_type": "a number", "float_parsing": "a number"}


def explain(exc: ValidationError, model: type[BaseModel] | None = None, at: tuple[str | int, ...] = ()) -> Problem:
    """The one refusal to answer for ``exc``: unknown top-level fields first (all of them named),
    else the first error in the document's order, with the unknown fields of the same object.

    ``model`` (the validated model) lets a range error name both of a field's bounds; ``at`` is
    where the validated value sits in the request (``("items", 3)`` for one item of a batch)."""
    errors: list[dict[str, Any]] = [{**e, "loc": (*at, *e["loc"])} for e in exc.errors(include_url=False)]
    model = model if not at else None  # bounds are looked up from the top level only
    top_extra = [e for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == len(at) + 1]
    first = top_extra[0] if top_extra else errors[0]
    loc = tuple(first["loc"])
    if first["type"] == "extra_forbidden":
        parent = loc[:-1]
        unknown = sorted(str(e["loc"][-1]) for e in errors
                         if e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == parent)
        names = ", ".join(map(printable, unknown))
        message = f"{where(parent)} has unknown field(s): {names}" if parent else f"unknown field(s): {names}"
        return Problem(message, (*parent, unknown[0]))
    ctx = first.get("ctx") or {}
    if first["type"] == "brain":
        if "field" in ctx:
            loc = (*loc, ctx["field"])
        text = ctx["message"]
        return Problem(f"{where(loc) or 'the body'}{'' if text.startswith(':') else ' '}{text}", loc)
    return Problem(f"{where(loc) or 'the body'} {_phrase(first, ctx, model, loc)}", loc)


def _phrase(error: Any, ctx: dict[str, Any], model: type[BaseModel] | None, loc: tuple[str | int, ...]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind in _TYPES:
        return f"must be {_TYPES[kind]}"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected')} (got {_shown(error.get('input'))})"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"is shorter than {ctx['min_length']} characters"
    if kind == "string_too_long":
        return f"is longer than {ctx['max_length']} characters"
    if kind == "too_long":
        return f"has more than {ctx.get('max_length')} entries"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bounds = _bounds(model, loc)
        if bounds:
            return f"must be between {bounds[0]} and {bounds[1]}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')} (got {_shown(error.get('input'))})"
    msg = str(error.get("msg") or kind)
    return "must be " + msg[len("Input should be "):] if msg.startswith("Input should be ") else f": {msg}"


def _bounds(model: type[BaseModel] | None, loc: tuple[str | int, ...]) -> tuple[Any, Any] | None:
    """(lowest, highest) of a top-level number field with both bounds declared (from its JSON schema)."""
    if model is None or len(loc) != 1:
        return None
    prop = _properties(model).get(str(loc[0]), {})
    for branch in (prop, *prop.get("anyOf", ())):
        if "minimum" in branch and "maximum" in branch:
            return branch["minimum"], branch["maximum"]
    return None


@functools.cache
def _properties(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema().get("properties", {})


def _shown(value: Any) -> str:
    text = repr(value)
    return printable(text if len(text) <= 80 else text[:77] + "...")
