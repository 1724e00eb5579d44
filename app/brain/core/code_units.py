"""Definitions in source code, from a real parser: tree-sitter grammars (issue 13, point 2).

Why a parser and not the line patterns of ``brain.core.chunking``: a pattern sees where a
definition starts, not where it ends, nor which class a method belongs to. The grammar gives each
function or class with its line range and its enclosing names, so a chunk can be one definition
(or several small neighbours) and say what it defines: ``class Retrying(BaseRetrying) > def
wraps(self, f)``. That label goes into the chunk's header (embedded and indexed, not shown).

The grammars are optional (the server extra installs them; ``requirements-server.txt``): a
language without one, a missing package or a file the parser cannot read falls back to the
line patterns.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

# language -> (module, function giving the grammar)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_tsx"),  # TSX is a superset of TypeScript's grammar
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
}

# node types that are a definition, per language
_DEFS: dict[str, frozenset[str]] = {
    "python": frozenset({"function_definition", "class_definition"}),
    "javascript": frozenset({"function_declaration", "generator_function_declaration", "class_declaration",
                             "method_definition"}),
    "typescript": frozenset({"function_declaration", "generator_function_declaration", "class_declaration",
                             "abstract_class_declaration", "method_definition", "interface_declaration",
                             "type_alias_declaration", "enum_declaration", "module"}),
    "go": frozenset({"function_declaration", "method_declaration", "type_declaration"}),
    "rust": frozenset({"function_item", "impl_item", "struct_item", "enum_item", "trait_item", "mod_item",
                       "macro_definition"}),
    "java": frozenset({"class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
                       "method_declaration", "constructor_declaration"}),
}
# wrappers whose one definition child is the definition (decorators, export, const f = () => ...)
_WRAPPERS = frozenset({"decorated_definition", "export_statement", "lexical_declaration", "variable_declaration"})
_ARROWS = frozenset({"arrow_function", "function_expression", "function", "class"})
# the field or child type holding a container's members
_BODIES = frozenset({"block", "class_body", "declaration_list", "interface_body", "enum_body", "statement_block",
                     "object_type"})

_SPACE = re.compile(r"\s+")


@dataclass
class Span:
    """Lines ``start``..``end`` (0-based, inclusive) and what they define (empty: module-level text)."""

    start: int
    end: int
    scope: str = ""


@cache
def _language(language: str) -> Any:
    """The tree-sitter grammar of ``language``, or None when it is not installed."""
    spec = GRAMMARS.get(language)
    if spec is None:
        return None
    try:
        import tree_sitter

        return tree_sitter.Language(getattr(importlib.import_module(spec[0]), spec[1])())
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        log.debug("no tree-sitter grammar for %s: %s", language, exc)
        return None


_local = threading.local()


def parser_for(language: str) -> Any:
    """A tree-sitter parser for ``language`` (one per thread: request threads ingest at once and a
    parser is not to be shared), or None when its grammar is not installed."""
    grammar = _language(language)
    if grammar is None:
        return None
    parsers: dict[str, Any] = _local.__dict__.setdefault("parsers", {})
    if language not in parsers:
        import tree_sitter

        parsers[language] = tree_sitter.Parser(grammar)
    return parsers[language]


def available(language: str | None) -> bool:
    return bool(language) and _language(str(language)) is not None


def signature(node: Any, source: bytes) -> str:
    """A definition's short head, one line: ``def wraps``, ``class Retrying(BaseRetrying)``.

    Functions end at their name (the chunk's text holds the parameters when it holds the
    definition; a header is embedded within the model's token cap); class-like definitions keep
    what they derive from, up to the body; comment lines inside the head are left out."""
    body = node.child_by_field_name("body")
    name = node.child_by_field_name("name")
    if name is not None and "class" not in node.type and "impl" not in node.type:
        end = name.end_byte
    else:
        end = body.start_byte if body is not None else node.end_byte
    head = source[node.start_byte:min(end, node.start_byte + 400)].decode("utf-8", "replace")
    lines = [ln for ln in head.split("\n") if not ln.lstrip().startswith(("#", "//", "/*", "*"))]
    head = _SPACE.sub(" ", " ".join(lines)).strip().rstrip(":{= ").strip()
    return head[:80]


def _definition(node: Any, defs: frozenset[str]) -> Any:
    """The definition a top-level node is or wraps, else None."""
    if node.type in defs:
        return node
    if node.type in _WRAPPERS:
        for child in node.named_children:
            found = _definition(child, defs)
            if found is not None:
                return found
            if child.type == "variable_declarator":
                value = child.child_by_field_name("value")
                if value is not None and value.type in _ARROWS:
                    return child
    return None


def _members(node: Any) -> list[Any]:
    body = node.child_by_field_name("body")
    if body is None:
        body = next((c for c in node.named_children if c.type in _BODIES), None)
    return list(body.named_children) if body is not None else []


def spans(content: str, language: str, line_tokens: list[int], max_tokens: int) -> list[Span] | None:
    """The file's lines cut into spans that follow its definitions, or None (no grammar, no tree).

    A top-level definition is one span; one larger than ``max_tokens`` is opened up: its head
    (signature, docstring, fields) is one span and each member definition another, labelled with
    the enclosing names, recursively. Lines between definitions (imports, constants) are spans
    without a scope. Comments and decorators right above a definition stay with it."""
    parser = parser_for(language)
    if parser is None:
        return None
    source = content.encode("utf-8", "surrogatepass")
    try:
        tree = parser.parse(source)
    except (ValueError, RuntimeError) as exc:
        log.debug("tree-sitter could not parse a %s file: %s", language, exc)
        return None
    defs = _DEFS[language]
    n_lines = len(line_tokens)
    out: list[Span] = []

    def tokens(a: int, b: int) -> int:
        return sum(line_tokens[a:b + 1])

    def cut(nodes: list[Any], lo: int, hi: int, scope: str) -> None:
        """Lines lo..hi hold ``nodes`` (children of one parent): emit their spans in order."""
        pos = lo
        for node in nodes:
            d = _definition(node, defs)
            if d is None:
                continue
            start = node.start_point[0]
            # comments directly above (no blank line between) belong to the definition
            prev = node.prev_sibling
            while prev is not None and prev.type == "comment" and prev.end_point[0] >= start - 1:
                start = prev.start_point[0]
                prev = prev.prev_sibling
            start = max(start, pos)
            end = min(max(node.end_point[0], start), hi)
            if start > pos:
                out.append(Span(pos, start - 1, scope))
            label = f"{scope} > {signature(d, source)}" if scope else signature(d, source)
            members = [m for m in _members(d) if _definition(m, defs) is not None]
            if members and tokens(start, end) > max_tokens:
                cut(_members(d), start, end, label)
            else:
                out.append(Span(start, end, label))
            pos = end + 1
        if pos <= hi:
            out.append(Span(pos, hi, scope))

    cut(list(tree.root_node.named_children), 0, n_lines - 1, "")
    # a head span inside an opened definition carries that definition's label; the spans are
    # contiguous and cover every line once
    return [s for s in out if s.end >= s.start]
