"""What a chunk is, in words its text may lack: its header, and its identifiers split into words.

Why (issue 13, point 2): a chunk from the middle of a file or a page does not say which file,
class or site it belongs to, and a question often names exactly that ("the retry decorator in
tenacity", "that blog post on jitter"). The header is embedded with the chunk's text and indexed
with it (not shown): a file's path and the definitions the chunk holds with their enclosing names
(brain.core.code_units), a page's URL, a session's project. The item's title comes first anyway
(``store.embed_input``), so the header does not repeat it.

Identifiers: ``RetryCallState`` is one token to FTS5 and tantivy (``snake_case`` and ``dotted.names``
are already cut at ``_`` and ``.`` by both), so a question saying "retry call state" would not match
it. ``identifier_terms`` gives the split words of a text's mixed-case identifiers for the index
alone, and ``split_identifier`` splits a query's words the same way (brain.core.search).
"""

from __future__ import annotations

import re
from typing import Any

HEADER_CHARS = 240  # about 60 model tokens: the header is embedded before the text, within the model's cap
TERMS_MAX = 200  # distinct split words indexed per chunk

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def split_identifier(word: str) -> list[str]:
    """``RetryCallState`` -> retry, call, state; ``HTTPServer2`` -> http, server, 2;
    ``parse_qs`` -> parse, qs; ``os.path`` -> os, path. Lower-cased; one part for a plain word."""
    parts = [p.lower() for piece in re.split(r"[_.]+", word) for p in _CAMEL.findall(piece)]
    return [p for p in parts if p]


# a run of letters and digits with a hump: lower then upper (getUser), or an acronym then a word (HTTPServer)
_HUMPED = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]*(?:[a-z0-9][A-Z]|[A-Z]{2}[a-z])[A-Za-z0-9]*")


def identifier_terms(text: str) -> str:
    """The split words of ``text``'s mixed-case identifiers (``getUserName``, ``RetryError``), each
    once, space-separated: what the text index holds beside the text so that the words match.
    (One regex pass finds the humped runs: a run per identifier piece, ``_`` and ``.`` end it.)"""
    seen: dict[str, None] = {}
    for piece in dict.fromkeys(_HUMPED.findall(text)):
        for part in split_identifier(piece):
            if len(part) > 1:
                seen.setdefault(part)
                if len(seen) >= TERMS_MAX:
                    return " ".join(seen)
    return " ".join(seen)


def render_symbols(symbols: list[str]) -> str:
    """``class A(B) > def f``, ``class A(B) > def g`` -> ``class A(B) > def f, def g``."""
    groups: dict[str, list[str]] = {}
    for scope in symbols:
        parent, _, leaf = scope.rpartition(" > ")
        groups.setdefault(parent, [])
        if leaf not in groups[parent]:
            groups[parent].append(leaf)
    parts = []
    for parent, leaves in groups.items():
        listed = ", ".join(leaves)
        parts.append(f"{parent} > {listed}" if parent else listed)
    return "; ".join(parts)


def chunk_header(item: dict[str, Any], symbols: list[str]) -> str:
    """A chunk's header: a file's path and the definitions the chunk holds; a page's URL; a
    session's project. At most ``HEADER_CHARS`` characters."""
    source, meta = item["source"], item.get("meta") or {}
    lines = []
    if source == "file":
        path = str(meta.get("rel_path") or meta.get("path") or "")
        if path and path not in item["title"]:
            lines.append(path)
        if symbols:
            lines.append(render_symbols(symbols))
    elif item.get("uri"):
        lines.append(str(item["uri"]))
    if item.get("project") and source != "file":
        lines.append(f"project {item['project']}")
    header = "\n".join(lines)
    return header if len(header) <= HEADER_CHARS else header[:HEADER_CHARS].rsplit(" ", 1)[0]
