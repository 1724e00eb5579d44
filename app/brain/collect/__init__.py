"""Local collectors (Claude Code sessions, browser history, code files) and what they share.

Data flows one way: collector -> redaction -> outbox (SQLite, under the XDG state dir) ->
HTTP -> brain-api. Settings are registered here so ``brain config show`` and the TOML loader
know them as soon as any collector module is imported.
"""

from __future__ import annotations

import re
import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brain.collect.redact import Redactor
from brain.shared.settings import LaptopConfig
from brain.shared.words import counted


def host_name(cfg: LaptopConfig) -> str:
    return cfg.collect.host or socket.gethostname()


def expand(paths: list[str]) -> list[Path]:
    return [Path(p).expanduser() for p in paths if p]


Problem = tuple[str, str]  # (what: a file and line, a profile and row, an item id; why)
SUMMARY_NAMES = 3  # problems named in the one-line summary; the lists hold them all


@dataclass
class RunStats:
    """What one collector run did, printed as one summary line.

    ``repaired`` and ``dropped`` name the bad records of the run as ``(what, why)``: a record
    that was repaired and collected (a lone surrogate or invalid UTF-8 replaced with U+FFFD),
    and one that was left out (a line that is not JSON, a row or file that cannot be read) while
    everything else was collected. ``what`` never holds content, so it cannot hold a secret.
    """

    name: str
    scanned: int = 0
    queued: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    redacted: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)
    dropped: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.name}: {self.scanned} scanned", f"{self.queued} queued", f"{self.unchanged} unchanged"]
        if self.deleted:
            parts.append(f"{self.deleted} deleted")
        if self.skipped:
            parts.append("skipped " + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())))
        if self.redacted:
            parts.append("redacted " + ", ".join(f"{k} {v}" for k, v in sorted(self.redacted.items())))
        for label, problems in (("repaired", self.repaired), ("dropped", self.dropped)):
            if problems:
                named = "; ".join(f"{what}: {why}" for what, why in problems[:SUMMARY_NAMES])
                more = f"; {len(problems) - SUMMARY_NAMES} more" if len(problems) > SUMMARY_NAMES else ""
                parts.append(f"{label} {len(problems)} ({named}{more})")
        if self.errors:
            parts.append(counted(len(self.errors), "error"))
        return ", ".join(parts)


_SURROGATE = re.compile("[\ud800-\udfff]")


def repair_text(value: Any) -> tuple[Any, int]:
    """``value`` (a string, or a JSON-like dict/list of them) with every lone surrogate replaced
    by U+FFFD, and how many were replaced.

    Why: ``json.loads`` turns the escape ``"\\ud83d"`` (half of an emoji, cut by a tool that split
    a string) into a lone surrogate, which no UTF-8 encoder accepts: SQLite's outbox refused the
    whole item, and with it every later run. Invalid UTF-8 bytes are decoded with U+FFFD where
    they are read (transcript lines, browser rows, files).
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            fixed, n = _SURROGATE.subn("\ufffd", value)
            return fixed, n
        return value, 0
    if isinstance(value, dict):
        total, out = 0, {}
        for k, v in value.items():
            k2, n1 = repair_text(k) if isinstance(k, str) else (k, 0)
            v2, n2 = repair_text(v)
            out[k2] = v2
            total += n1 + n2
        return (out, total) if total else (value, 0)
    if isinstance(value, list):
        items = [repair_text(v) for v in value]
        total = sum(n for _, n in items)
        return ([v for v, _ in items], total) if total else (value, 0)
    return value, 0


TITLE_CHARS = 500  # the longest title sent
TITLE_SOURCE_CHARS = 4000  # how much of a title's source (a first prompt) is redacted and made a title


def one_line(text: str, limit: int = TITLE_CHARS) -> str:
    """``text`` on one line (each run of whitespace one space), cut to ``limit`` characters with ``…``."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def cap_content(text: str, max_bytes: int) -> tuple[str, bool]:
    """Keep head and tail of an over-long text (the server rejects items above its byte limit)."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text, False
    keep = max_bytes - 200
    head = data[: keep * 2 // 3].decode("utf-8", "ignore")
    tail = data[len(data) - keep // 3:].decode("utf-8", "ignore")
    return f"{head}\n\n[... {len(data) - keep} bytes cut by the collector ...]\n\n{tail}", True


def prepare(item: dict[str, Any], redactor: Redactor, max_bytes: int, plain_meta: tuple[str, ...] = (),
            stats: RunStats | None = None, title_chars: int = TITLE_CHARS) -> tuple[dict[str, Any], Counter[str]]:
    """Repair text the outbox could not encode (see ``repair_text``; named in ``stats.repaired``),
    redact the item (content, title, uri, project, meta but ``plain_meta`` keys), then cap its
    size, and make its title one line of at most ``title_chars`` characters.

    Why the title is shortened only here, after redaction: a collector's title is often the
    first prompt, and cut or joined onto one line first, a secret in it loses the shape its
    detector knows (a token cut in half, a private key's lines run together and its END line
    cut off), so the piece that is left would be sent. Collectors hand over the whole text
    (a long prompt cut with ``claude._clip``, which never cuts inside a token).

    The real run and ``--dry-run`` both go through here, so a dry run meets (and reports) the
    same bad text the outbox would."""
    item, surrogates = repair_text(item)
    if surrogates and stats is not None:
        stats.repaired.append((str(item.get("id")), f"{surrogates} lone surrogates replaced with U+FFFD"))
    clean, counts = redactor.redact_item(item, plain_meta)
    clean["content"], cut = cap_content(clean.get("content", ""), max_bytes)
    if cut:
        clean.setdefault("meta", {})["truncated"] = True
    if isinstance(clean.get("title"), str):
        clean["title"] = one_line(clean["title"], min(title_chars, TITLE_CHARS))
    return clean, counts
