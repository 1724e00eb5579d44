"""Local collectors (Claude Code sessions, browser history, code files) and what they share.

Data flows one way: collector -> redaction -> outbox (SQLite, under the XDG state dir) ->
HTTP -> brain-api. Settings are registered here so ``brain config show`` and the TOML loader
know them as soon as any collector module is imported.
"""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config as config_mod
from ..config import Setting
from ..redact import Redactor

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
            "bytes per POST /api/v1/items (kept small: the server embeds a batch before it answers)"),
)


def host_name(cfg: config_mod.Config) -> str:
    return cfg["collect.host"] or socket.gethostname()


def expand(paths: list[str]) -> list[Path]:
    return [Path(p).expanduser() for p in paths if p]


@dataclass
class RunStats:
    """What one collector run did, printed as one summary line."""

    name: str
    scanned: int = 0
    queued: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    redacted: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.name}: {self.scanned} scanned", f"{self.queued} queued", f"{self.unchanged} unchanged"]
        if self.deleted:
            parts.append(f"{self.deleted} deleted")
        if self.skipped:
            parts.append("skipped " + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())))
        if self.redacted:
            parts.append("redacted " + ", ".join(f"{k} {v}" for k, v in sorted(self.redacted.items())))
        if self.errors:
            parts.append(f"{len(self.errors)} errors")
        return ", ".join(parts)


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
            plain_meta: tuple[str, ...] = ()) -> tuple[dict[str, Any], Counter[str]]:
    """Redact an item (content, title, uri, project, meta but ``plain_meta`` keys), then cap its
    size and title length."""
    clean, counts = redactor.redact_item(item, plain_meta)
    clean["content"], cut = cap_content(clean.get("content", ""), max_bytes)
    if cut:
        clean.setdefault("meta", {})["truncated"] = True
    if clean.get("title") and len(clean["title"]) > 500:
        clean["title"] = clean["title"][:497] + "..."
    return clean, counts
