"""Split an item's content into chunks bounded in model tokens.

Why two strategies: prose reads best cut at paragraph boundaries, code at function/class
boundaries (a chunk that starts mid-function retrieves badly). Both then pack whole units
greedily up to the token limit and repeat the tail of one chunk at the head of the next
(overlap), so a passage that straddles a boundary is still found whole in one of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from brain.core import code_units

CountTokens = Callable[[list[str]], list[int]]

# A top-level (or class-level) definition starts a new unit in code. Covers Python, JS/TS,
# Go, Rust, Java/Kotlin/C#, C/C++ function heads are caught by the blank-line fallback.
_DEF = re.compile(
    r"^(\s{0,4})(?:@\w|(?:async\s+)?def\s|class\s|(?:export\s+)?(?:default\s+)?(?:async\s+)?function\b|"
    r"(?:export\s+)?(?:const|let|var)\s+\w+\s*=\s*(?:async\s*)?\(|func\s|(?:pub(?:\(\w+\))?\s+)?(?:fn|impl|struct|enum|trait|mod)\s|"
    r"(?:public|private|protected|internal|static)\s|interface\s|type\s+\w+\s*(?:=|struct|interface)|"
    r"#{1,6}\s)"
)

CODE_LANGUAGES = {
    "python", "javascript", "typescript", "go", "rust", "java", "kotlin", "c", "cpp", "csharp", "ruby",
    "php", "swift", "scala", "shell", "lua", "sql", "yaml", "toml", "json", "html", "css", "makefile",
    "dockerfile", "terraform", "hcl",
}


@dataclass
class Chunk:
    text: str
    tokens: int
    start_line: int  # 1-based, inclusive
    end_line: int
    # what the chunk's code defines, with enclosing names (``class A(B) > def f(self, x)``), from a
    # tree-sitter grammar (brain.core.code_units); empty for prose and for the line patterns
    symbols: list[str] = field(default_factory=list)


@dataclass
class _Unit:
    lines: list[str]
    start: int  # 1-based line number of lines[0]
    tokens: int = 0
    scope: str = ""

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _prose_units(lines: list[str]) -> list[_Unit]:
    """Paragraphs: runs of lines separated by blank lines (the blank line stays with its paragraph)."""
    units: list[_Unit] = []
    cur: list[str] = []
    start = 1
    for i, line in enumerate(lines, 1):
        if not cur:
            start = i
        cur.append(line)
        if not line.strip():
            units.append(_Unit(cur, start))
            cur = []
    if cur:
        units.append(_Unit(cur, start))
    return units


def _code_units(lines: list[str]) -> list[_Unit]:
    """Blocks that begin at a definition line (decorators and leading comments stay attached)."""
    units: list[_Unit] = []
    cur: list[str] = []
    start = 1
    for i, line in enumerate(lines, 1):
        starts_def = bool(_DEF.match(line)) and not (cur and _DEF.match(cur[-1]) and cur[-1].lstrip().startswith("@"))
        if starts_def and cur and any(x.strip() for x in cur):
            # keep comment lines immediately above the definition with it
            tail: list[str] = []
            while cur and cur[-1].lstrip().startswith(("#", "//", "/*", "*", "--")) and cur[-1].strip():
                tail.insert(0, cur.pop())
            if cur:
                units.append(_Unit(cur, start))
                start = i - len(tail)
            cur = tail
        if not cur:
            start = i
        cur.append(line)
    if cur:
        units.append(_Unit(cur, start))
    return units


def _split_oversize(unit: _Unit, line_tokens: list[int], specials: int, max_tokens: int,
                    count: CountTokens) -> list[_Unit]:
    """A unit larger than a chunk: cut by lines, and a single huge line by characters."""
    pieces: list[_Unit] = []
    for offset, line in enumerate(unit.lines):
        n = line_tokens[unit.start - 1 + offset] + specials
        if n <= max_tokens:
            pieces.append(_Unit([line], unit.start + offset, n, unit.scope))
            continue
        width = max(16, int(len(line) * max_tokens / max(n, 1) * 0.9))
        parts = [line[pos:pos + width] for pos in range(0, len(line), width)]
        for part, m in zip(parts, count(parts)):
            pieces.append(_Unit([part], unit.start + offset, m, unit.scope))
    return pieces


def split_lines(content: str) -> list[str]:
    return content.replace("\r\n", "\n").split("\n")


def line_token_counts(contents: list[str], count: CountTokens) -> tuple[list[list[int]], int]:
    """Tokens of every line of several texts, in ONE tokenizer call, without the special tokens;
    and the number of special tokens the model adds to any text.

    One call lets the tokenizer spread a whole batch over every core (measured 3x faster than a
    call per text on 2 cores). For a BERT-style tokenizer, which splits at whitespace before
    anything else, a text's count is exactly the sum of its lines' counts plus the specials."""
    specials = count([""])[0]
    per_text = [split_lines(c) for c in contents]
    flat = count([line for lines in per_text for line in lines])
    out: list[list[int]] = []
    pos = 0
    for lines in per_text:
        out.append([n - specials for n in flat[pos:pos + len(lines)]])
        pos += len(lines)
    return out, specials


def _parsed_units(lines: list[str], language: str, per_line: list[int], max_tokens: int) -> list[_Unit] | None:
    """Units that follow the definitions a tree-sitter grammar finds (None: no grammar or tree)."""
    found = code_units.spans("\n".join(lines), language, per_line, max_tokens)
    if not found:
        return None
    return [_Unit(lines[s.start:s.end + 1], s.start + 1, scope=s.scope) for s in found]


def chunk_text(content: str, *, code: bool, max_tokens: int, overlap: int, count: CountTokens,
               line_tokens: tuple[list[int], int] | None = None, language: str | None = None) -> list[Chunk]:
    """Split ``content`` into chunks of at most ``max_tokens`` (as counted by ``count``).

    The text is tokenized once, line by line (``line_tokens`` from ``line_token_counts`` when the
    caller counted a whole batch at once): a unit's count is the sum of its lines' counts plus the
    model's special tokens, so no unit is tokenized again. Code in a ``language`` with a
    tree-sitter grammar (brain.core.code_units) is cut at its definitions and each chunk says what
    it defines (``Chunk.symbols``); other code by the line patterns above."""
    if not content.strip():
        return []
    lines = split_lines(content)
    if line_tokens is None:
        counted, specials = line_token_counts([content], count)
        per_line = counted[0]
    else:
        per_line, specials = line_tokens
    units = None
    if code and language and code_units.available(language):
        units = _parsed_units(lines, language, per_line, max_tokens - specials)
    if units is None:
        units = _code_units(lines) if code else _prose_units(lines)
    flat: list[_Unit] = []
    for u in units:
        u.tokens = sum(per_line[u.start - 1:u.start - 1 + len(u.lines)]) + specials
        flat.extend(_split_oversize(u, per_line, specials, max_tokens, count) if u.tokens > max_tokens
                    else [u])
    return _pack(flat, max_tokens, overlap)


def _pack(units: list[_Unit], max_tokens: int, overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    cur: list[_Unit] = []
    used = 0
    for u in units:
        if cur and used + u.tokens > max_tokens:
            chunks.append(_emit(cur, used))
            carry: list[_Unit] = []
            carried = 0
            for prev in reversed(cur):
                if carried + prev.tokens > overlap or carried + prev.tokens + u.tokens > max_tokens:
                    break
                carry.insert(0, prev)
                carried += prev.tokens
            cur, used = carry, carried
        cur.append(u)
        used += u.tokens
    if cur and (not chunks or any(x.text.strip() for x in cur)):
        chunks.append(_emit(cur, used))
    return [c for c in chunks if c.text.strip()]


def _emit(units: list[_Unit], tokens: int) -> Chunk:
    """Join units; blank lines at either end are dropped and the line range says so."""
    lines: list[str] = []
    for u in units:
        lines.extend(u.lines)
    symbols = list(dict.fromkeys(u.scope for u in units if u.scope.strip() and any(x.strip() for x in u.lines)))
    start = units[0].start
    end = units[-1].start + len(units[-1].lines) - 1
    while lines and not lines[0].strip():
        lines.pop(0)
        start += 1
    while lines and not lines[-1].strip():
        lines.pop()
        end -= 1
    return Chunk("\n".join(lines), tokens, start, max(start, end), symbols)
