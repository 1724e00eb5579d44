"""Tombstones: the rules that say what the brain has forgotten, shared by brain-api and the collectors.

Why one module on both sides: forgetting has to mean the same thing where it is enforced twice.
brain-api refuses a forgotten item on ingest (so nothing forgotten is stored again, whoever sends
it), and the collectors skip it before it is queued (so its text never leaves the laptop again).
If the two sides matched differently, an item could slip through one of them; here there is one
``Rule.matches``. This module imports nothing of either side (only the time helpers and the item
schema).

A rule is the AND of the fields it has (at least one):

* ``id``: exactly this item id;
* ``source``: ``claude``, ``agent``, ``browser``, ``file`` or ``note``;
* ``project``: exactly this project (its directory, without a trailing slash);
* ``id_prefix``: ids starting with it (``agent:codex:``, ``file:laptop:/home/me/secret/``);
* ``domain``: pages whose URL host is the domain or one of its subdomains (``example.com``);
* ``path_glob``: files whose absolute path matches the shell pattern, where ``*`` also matches
  ``/`` (``/home/me/private/*`` is the whole folder, ``*.pem`` every such file anywhere);
* ``since`` / ``until``: items active in that window, as the item filters read it
  (``updated_at >= since`` and ``created_at <= until``).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from brain.shared import timeutil
from brain.shared.schema import SOURCES

RULE_FIELDS = ("id", "source", "project", "id_prefix", "domain", "path_glob", "since", "until")
MAX_FIELD = 4096


class RuleError(ValueError):
    """A rule that cannot be used; ``field`` names the offending field (None: the rule as a whole)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Rule:
    """One forgetting rule (see the module docstring); empty fields do not constrain."""

    id: str | None = None
    source: str | None = None
    project: str | None = None
    id_prefix: str | None = None
    domain: str | None = None
    path_glob: str | None = None
    since: str | None = None
    until: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The rule's set fields only: its canonical JSON form, stored and sent."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def key(self) -> str:
        """Canonical text of the rule: the same rule forgotten twice is one tombstone."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """``source=browser domain=example.com``: one line for a person."""
        return " ".join(f"{k}={v}" for k, v in self.as_dict().items())

    def matches(self, item: Mapping[str, Any]) -> bool:
        """True when ``item`` (an API item: id, source, uri, project, created_at, updated_at, meta)
        falls under every field of this rule."""
        item_id = str(item.get("id") or "")
        if self.id is not None and item_id != self.id:
            return False
        if self.source is not None and item.get("source") != self.source:
            return False
        if self.project is not None and (item.get("project") or "").rstrip("/") != self.project:
            return False
        if self.id_prefix is not None and not item_id.startswith(self.id_prefix):
            return False
        if self.domain is not None and not _in_domain(url_host(item), self.domain):
            return False
        if self.path_glob is not None:
            path = file_path(item)
            if path is None or not fnmatch.fnmatchcase(path, self.path_glob):
                return False
        return self._in_window(item)

    def _in_window(self, item: Mapping[str, Any]) -> bool:
        if self.since is None and self.until is None:
            return True
        created, updated = _time(item.get("created_at")), _time(item.get("updated_at"))
        # an item without times is stored as created now (see the store), so it is "now" here too
        now = timeutil.now()
        created = created or updated or now
        updated = updated or created
        if self.since is not None and updated < self.since:
            return False
        return not (self.until is not None and created > self.until)


def _time(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return timeutil.normalise(value)
    except ValueError:
        return None


def _in_domain(host: str | None, domain: str) -> bool:
    return bool(host) and (host == domain or host.endswith("." + domain))  # type: ignore[union-attr]


def url_host(item: Mapping[str, Any]) -> str | None:
    """The lower-case host of an item's http(s) URL, or None (sessions, files, notes)."""
    uri = item.get("uri")
    if not isinstance(uri, str) or not uri.lower().startswith(("http://", "https://")):
        return None
    try:
        host = urlsplit(uri).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def file_path(item: Mapping[str, Any]) -> str | None:
    """The absolute path of a file item (``meta.path``, else from its ``file:<host>:<path>`` id)."""
    if item.get("source") != "file":
        return None
    meta = item.get("meta")
    if isinstance(meta, Mapping) and isinstance(meta.get("path"), str) and meta["path"]:
        return meta["path"]
    item_id = str(item.get("id") or "")
    parts = item_id.split(":", 2)
    if len(parts) == 3 and parts[2]:
        return parts[2]
    uri = item.get("uri")
    if isinstance(uri, str) and uri.startswith("file://"):
        return unquote(urlsplit(uri).path) or None
    return None


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_FIELD:
        raise RuleError(f"{name} must be a string of at most {MAX_FIELD} characters", name)
    return value


def _domain(value: str) -> str:
    """``Example.COM.`` or a pasted ``https://example.com/x`` → ``example.com``."""
    text = value.strip().lower()
    if "://" in text:
        text = urlsplit(text).hostname or ""
    text = text.lstrip("*").strip(".")
    if not text or any(c in text for c in "/ ?#@"):
        raise RuleError(f"domain {value!r} is not a host name (e.g. example.com)", "domain")
    return text


def parse_rule(data: Mapping[str, Any]) -> Rule:
    """A Rule from a JSON object (the API's body, a CLI's options); RuleError names what is wrong.

    Unknown fields are refused; times are normalised like every stored time, so a rule compares
    with items as text; at least one field must be set."""
    unknown = sorted(set(data) - set(RULE_FIELDS))
    if unknown:
        raise RuleError(f"unknown field(s): {', '.join(unknown)}", unknown[0])
    values = {name: _text(data, name) for name in RULE_FIELDS}
    if values["source"] is not None and values["source"] not in SOURCES:
        raise RuleError(f"source must be one of {', '.join(SOURCES)}", "source")
    if values["project"] is not None:
        values["project"] = values["project"].rstrip("/") or "/"
    if values["domain"] is not None:
        values["domain"] = _domain(values["domain"])
    if values["path_glob"] is not None and not values["path_glob"].startswith(("/", "*")):
        raise RuleError("path_glob must be an absolute path pattern (or start with *), e.g. /home/me/private/*",
                        "path_glob")
    for name in ("since", "until"):
        if (stamp := values[name]) is not None:
            try:
                values[name] = timeutil.normalise(stamp)
            except ValueError as exc:
                raise RuleError(f"{name}: {exc}", name) from None
    if values["since"] and values["until"] and values["since"] > values["until"]:
        raise RuleError("since must not be after until", "since")
    if not any(values.values()):
        raise RuleError("give at least one of " + ", ".join(RULE_FIELDS))
    return Rule(**values)


def rules_from(data: Iterable[Mapping[str, Any]]) -> list[Rule]:
    """Rules from stored or fetched JSON objects, skipping any this version cannot read.

    Why skipping and not failing: a newer brain-api may know a field this collector does not;
    brain-api still enforces that rule on ingest, so nothing forgotten is stored again."""
    out = []
    for entry in data:
        try:
            out.append(parse_rule(entry))
        except (RuleError, TypeError):
            continue
    return out


def first_match(rules: Iterable[Rule], item: Mapping[str, Any]) -> Rule | None:
    """The first rule that forgets ``item``, or None."""
    return next((r for r in rules if r.matches(item)), None)
