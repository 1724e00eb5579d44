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
from brain.shared import config as config_mod
from brain.shared.config import Setting

_list, _bool, _str, _int = config_mod._list, config_mod._bool, config_mod._str, config_mod._int

DEFAULT_GLOBS = [
    "*.py", "*.pyi", "*.ipynb", "*.js", "*.jsx", "*.mjs", "*.cjs", "*.ts", "*.tsx", "*.vue", "*.svelte",
    "*.go", "*.rs", "*.java", "*.kt", "*.kts", "*.scala", "*.rb", "*.php", "*.c", "*.h", "*.cc", "*.cpp",
    "*.hpp", "*.cs", "*.swift", "*.m", "*.lua", "*.pl", "*.r", "*.R", "*.jl", "*.ex", "*.exs", "*.erl",
    "*.hs", "*.ml", "*.clj", "*.dart", "*.sh", "*.bash", "*.zsh", "*.fish", "*.sql", "*.md", "*.rst",
    "*.txt", "*.adoc", "*.toml", "*.yaml", "*.yml", "*.json", "*.ini", "*.cfg", "*.conf", "*.html",
    "*.css", "*.scss", "*.tf", "*.hcl", "*.nix", "*.proto", "*.graphql", "*.j2", "Dockerfile",
    "Containerfile", "Makefile", "*.mk", "CMakeLists.txt", "*.cmake", "*.gradle",
]
DEFAULT_DENY_GLOBS = [
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx", "id_rsa*", "id_dsa*", "id_ecdsa*",
    "id_ed25519*", ".netrc", ".pgpass", ".npmrc", ".pypirc", ".git-credentials", "credentials",
    "credentials.*", "*.tfstate", "*.tfstate.*", "*.tfvars", "secrets.*", ".htpasswd",
]
DEFAULT_SKIP_DIRS = [
    ".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".nox", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".cache", ".next", ".nuxt", ".terraform", ".gradle", ".idea",
]
DEFAULT_EXCLUDE_DOMAINS = ["localhost", "127.0.0.1", "0.0.0.0", "::1"]

config_mod.register(
    Setting("collect.claude_roots", _list, [],
            "Claude Code config dirs whose projects/ is read; empty = ~/.claude, $CLAUDE_CONFIG_DIR "
            "(comma-separated) and ~/.config/claude"),
    Setting("collect.include_thinking", _bool, False, "include assistant thinking blocks in Claude items"),
    Setting("collect.archive_days", _int(0), 365,
            "days an archived Claude transcript is kept after it last changed (0 = forever); the archive "
            "holds redacted copies only"),
    Setting("collect.tool_result_chars", _int(0, 1_000_000), 2000, "longest tool result kept per call, in characters"),
    Setting("collect.tool_input_chars", _int(20, 100_000), 500, "longest tool input shown per call, in characters"),
    Setting("collect.browser_roots", _list, [],
            "extra Chrome-family user-data dirs (holding Default/, Profile 1/ ...) besides the standard ones"),
    Setting("collect.browser_exclude_domains", _list, DEFAULT_EXCLUDE_DOMAINS,
            "domains (and their subdomains) whose pages are never collected"),
    Setting("collect.browser_include_file_urls", _bool, False, "collect file:// pages from browser history"),
    Setting("collect.browser_include_hidden", _bool, False,
            "collect URLs the browser hides (redirect hops, subframes)"),
    Setting("collect.files_roots", _list, [], "folders scanned by the files collector (e.g. ~/projects)"),
    Setting("collect.aider_roots", _list, [],
            "folders searched for Aider's .aider.chat.history.md (4 levels deep); empty = collect.files_roots, "
            "else the home folder"),
    Setting("collect.files_globs", _list, DEFAULT_GLOBS, "gitignore-style patterns of files to collect"),
    Setting("collect.files_deny_globs", _list, DEFAULT_DENY_GLOBS,
            "gitignore-style patterns of files never read (.env files are always skipped)"),
    Setting("collect.files_skip_dirs", _list, DEFAULT_SKIP_DIRS,
            "directory names never entered (virtualenvs are also recognised by pyvenv.cfg)"),
    Setting("collect.files_max_bytes", _int(1), 1_048_576, "files larger than this are skipped"),
    Setting("collect.host", _str, "", "host name used in file ids (default: this machine's hostname)"),
    Setting("collect.max_item_bytes", _int(1024), 2_000_000,
            "largest item content sent; longer content keeps its head and tail"),
    Setting("collect.batch_items", _int(1, 500), 100, "items per POST /api/v1/items"),
    Setting("collect.batch_bytes", _int(10_000), 500_000,
            "bytes per POST /api/v1/items (a batch is one write transaction on the server)"),
)
config_mod.register(  # the Claude Code hooks (hooks.py, session_context.py)
    Setting("hooks.context_tokens", _int(50, 20_000), 1000,
            "most tokens (about 4 characters each) the SessionStart hook adds to a Claude Code session"),
    Setting("hooks.start_budget", config_mod._float(0.1), 1.2,
            "seconds the SessionStart hook may spend on brain-api (Python's start-up comes on top); "
            "with no answer by then it prints nothing"),
)


def host_name(cfg: config_mod.Config) -> str:
    return cfg["collect.host"] or socket.gethostname()


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
            parts.append(f"{len(self.errors)} errors")
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


def cap_content(text: str, max_bytes: int) -> tuple[str, bool]:
    """Keep head and tail of an over-long text (the server rejects items above its byte limit)."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text, False
    keep = max_bytes - 200
    head = data[: keep * 2 // 3].decode("utf-8", "ignore")
    tail = data[len(data) - keep // 3:].decode("utf-8", "ignore")
    return f"{head}\n\n[... {len(data) - keep} bytes cut by the collector ...]\n\n{tail}", True


def prepare(item: dict[str, Any], redactor: Redactor, max_bytes: int,
            plain_meta: tuple[str, ...] = (), stats: RunStats | None = None) -> tuple[dict[str, Any], Counter[str]]:
    """Repair text the outbox could not encode (see ``repair_text``; named in ``stats.repaired``),
    redact the item (content, title, uri, project, meta but ``plain_meta`` keys), then cap its
    size and title length.

    The real run and ``--dry-run`` both go through here, so a dry run meets (and reports) the
    same bad text the outbox would."""
    item, surrogates = repair_text(item)
    if surrogates and stats is not None:
        stats.repaired.append((str(item.get("id")), f"{surrogates} lone surrogates replaced with U+FFFD"))
    clean, counts = redactor.redact_item(item, plain_meta)
    clean["content"], cut = cap_content(clean.get("content", ""), max_bytes)
    if cut:
        clean.setdefault("meta", {})["truncated"] = True
    if clean.get("title") and len(clean["title"]) > 500:
        clean["title"] = clean["title"][:497] + "..."
    return clean, counts
