"""Code and text files -> one ``file:<host>:<absolute path>`` item per file.

The rules that shape this module:

* Roots and globs come from config; ``.gitignore`` files are honoured the way git does
  (nested files, negation, a nested repository starts afresh) using ``pathspec``;
  ``.git``, ``node_modules``, virtualenvs (also recognised by ``pyvenv.cfg``), binaries (a NUL
  byte in the first 8 KiB) and files over the size cap are skipped.
* ``.env``-style files and files matching the deny globs are never opened.
* Incremental: an unchanged (mtime, size) costs one ``stat``; the index lives in the state
  database next to the outbox. A file that disappeared (or became ignored/too big) is deleted
  from the brain through the outbox, so a delete is never lost either.
* The project of a file is its nearest git root (the scan root if there is none).
* One bad file stops nothing: invalid UTF-8 is decoded with U+FFFD (the file is collected and
  named in the run's ``repaired``); a binary, unreadable or unnameable (not UTF-8) file is left
  out and named in ``dropped``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pathspec

from brain.collect import RunStats, expand, host_name, prepare
from brain.collect.outbox import Queued, Sink, State
from brain.shared import timeutil
from brain.shared.settings import LaptopConfig

BINARY_SNIFF = 8192
# meta values derived from stat() and the path that is also the id: not redacted (see prepare)
PLAIN_META = ("language", "size", "mtime", "line_count", "path", "rel_path", "host")
CHECKPOINT_EVERY = 500
LANGUAGES = {
    ".py": "python", ".pyi": "python", ".ipynb": "jupyter", ".js": "javascript", ".jsx": "javascript",
    ".mjs": "javascript", ".cjs": "javascript", ".ts": "typescript", ".tsx": "typescript", ".vue": "vue",
    ".svelte": "svelte", ".go": "go", ".rs": "rust", ".java": "java", ".kt": "kotlin", ".kts": "kotlin",
    ".scala": "scala", ".rb": "ruby", ".php": "php", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp",
    ".hpp": "cpp", ".cs": "csharp", ".swift": "swift", ".m": "objective-c", ".lua": "lua", ".pl": "perl",
    ".r": "r", ".R": "r", ".jl": "julia", ".ex": "elixir", ".exs": "elixir", ".erl": "erlang",
    ".hs": "haskell", ".ml": "ocaml", ".clj": "clojure", ".dart": "dart", ".sh": "shell", ".bash": "shell",
    ".zsh": "shell", ".fish": "shell", ".sql": "sql", ".md": "markdown", ".rst": "rst", ".txt": "text",
    ".adoc": "asciidoc", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".ini": "ini",
    ".cfg": "ini", ".conf": "config", ".html": "html", ".css": "css", ".scss": "css", ".tf": "terraform",
    ".hcl": "hcl", ".nix": "nix", ".proto": "protobuf", ".graphql": "graphql", ".j2": "jinja",
    ".mk": "makefile", ".cmake": "cmake", ".gradle": "gradle",
}
NAME_LANGUAGES = {"Dockerfile": "dockerfile", "Containerfile": "dockerfile", "Makefile": "makefile",
                  "CMakeLists.txt": "cmake", "GNUmakefile": "makefile"}
_SIMPLE_EXT = re.compile(r"\*(\.[A-Za-z0-9_+\-]+)")
_SIMPLE_NAME = re.compile(r"[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]*")


def is_env_file(name: str) -> bool:
    """``.env``, ``.env.local``, ``prod.env``, ``.envrc``: never read, whatever the config says."""
    return name in (".env", ".envrc") or name.startswith(".env.") or name.endswith(".env")


def language_of(name: str) -> str:
    if name in NAME_LANGUAGES:
        return NAME_LANGUAGES[name]
    return LANGUAGES.get(os.path.splitext(name)[1], "text")


class GlobSet:
    """gitignore-style globs matched against a path relative to the scan root.

    Why not only pathspec: with ~80 default globs, testing each pattern's regex per file would
    dominate a 50k-file re-run. ``*.ext`` and plain names (most globs) become set lookups;
    anything else goes to a ``pathspec.GitIgnoreSpec``.
    """

    def __init__(self, patterns: list[str]):
        self.exts: set[str] = set()
        self.names: set[str] = set()
        rest: list[str] = []
        for raw in patterns:
            p = raw.strip()
            if not p or p.startswith("#"):
                continue
            if m := _SIMPLE_EXT.fullmatch(p):
                self.exts.add(m.group(1))
            elif _SIMPLE_NAME.fullmatch(p):
                self.names.add(p)
            else:
                rest.append(p)
        self.spec = pathspec.GitIgnoreSpec.from_lines(rest) if rest else None

    def match(self, name: str, rel: str) -> bool:
        if name in self.names:
            return True
        dot = name.rfind(".")
        if dot > 0 and name[dot:] in self.exts:
            return True
        return bool(self.spec is not None and self.spec.match_file(rel))


@dataclass(frozen=True)
class DirCtx:
    path: str
    project: str
    ignores: tuple[tuple[str, pathspec.GitIgnoreSpec], ...]


def _read_ignore(path: str) -> pathspec.GitIgnoreSpec | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return pathspec.GitIgnoreSpec.from_lines(lines) if lines else None


def is_ignored(ignores: tuple[tuple[str, pathspec.GitIgnoreSpec], ...], path: str, is_dir: bool) -> bool:
    """git's verdict for ``path``: the deepest .gitignore with a matching rule decides."""
    verdict = False
    for base, spec in ignores:
        rel = path[len(base) + 1:] + ("/" if is_dir else "")
        result = spec.check_file(rel)
        if result.include is not None:
            verdict = result.include
    return verdict


def _git_root(start: str) -> str | None:
    cur = start
    while True:
        if os.path.exists(os.path.join(cur, ".git")):
            return cur
        parent = os.path.dirname(cur)
        if parent == cur:
            return None
        cur = parent


def _initial_ctx(root: str) -> DirCtx:
    """A root inside a repository inherits that repository's ignore files above it."""
    repo = _git_root(root)
    ignores: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    if repo is not None:
        exclude = _read_ignore(os.path.join(repo, ".git", "info", "exclude"))
        if exclude is not None:
            ignores.append((repo, exclude))
        # the ignore files of the folders from the repository down to the root's parent (the
        # root's own .gitignore is read when the scan enters it)
        parents, cur = [], repo
        for part in Path(root).relative_to(repo).parts:
            parents.append(cur)
            cur = os.path.join(cur, part)
        for folder in parents:
            spec = _read_ignore(os.path.join(folder, ".gitignore"))
            if spec is not None:
                ignores.append((folder, spec))
    return DirCtx(root, repo or root, tuple(ignores))


@dataclass
class Candidate:
    path: str
    name: str
    project: str
    size: int
    mtime_ns: int


class Scanner:
    """Walks one root with ``os.scandir`` and yields the files worth looking at."""

    def __init__(self, cfg: LaptopConfig, stats: RunStats):
        self.globs = GlobSet(cfg.collect.files_globs)
        self.deny = GlobSet(cfg.collect.files_deny_globs)
        self.skip_dirs = set(cfg.collect.files_skip_dirs)
        self.max_bytes = cfg.collect.files_max_bytes
        self.stats = stats
        self.failed_dirs: list[str] = []

    def _enter(self, ctx: DirCtx) -> tuple[list[os.DirEntry[str]], DirCtx] | None:
        try:
            with os.scandir(ctx.path) as it:
                entries = list(it)
        except OSError as exc:
            self.failed_dirs.append(ctx.path)
            self.stats.warnings.append(f"files: cannot list {ctx.path}: {exc.strerror or exc}")
            return None
        names = {e.name for e in entries}
        ignores = ctx.ignores
        project = ctx.project
        if ".git" in names and ctx.path != ctx.project:
            project = ctx.path  # a nested repository: its own rules only
            ignores = ()
            exclude = _read_ignore(os.path.join(ctx.path, ".git", "info", "exclude"))
            if exclude is not None:
                ignores = ((ctx.path, exclude),)
        if ".gitignore" in names:
            spec = _read_ignore(os.path.join(ctx.path, ".gitignore"))
            if spec is not None:
                ignores = ignores + ((ctx.path, spec),)
        return entries, DirCtx(ctx.path, project, ignores)

    def scan(self, root: str) -> Iterator[Candidate]:
        stack = [_initial_ctx(root)]
        cut = len(root) + 1
        while stack:
            entered = self._enter(stack.pop())
            if entered is None:
                continue
            entries, ctx = entered
            for e in entries:
                try:
                    if e.is_dir(follow_symlinks=False):
                        if e.name in self.skip_dirs or is_ignored(ctx.ignores, e.path, True) or \
                                os.path.exists(os.path.join(e.path, "pyvenv.cfg")):
                            continue
                        stack.append(DirCtx(e.path, ctx.project, ctx.ignores))
                        continue
                    if not e.is_file(follow_symlinks=False):
                        continue
                except OSError:
                    continue
                name = e.name
                if is_env_file(name):
                    self.stats.skipped["env file"] += 1
                    continue
                rel = e.path[cut:]
                if self.deny.match(name, rel):
                    self.stats.skipped["denied"] += 1
                    continue
                if not self.globs.match(name, rel) or is_ignored(ctx.ignores, e.path, False):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                yield Candidate(e.path, name, ctx.project, st.st_size, st.st_mtime_ns)


def file_id(host: str, path: str) -> str:
    return f"file:{host}:{path}"


def build_item(host: str, c: Candidate, text: str) -> dict[str, Any]:
    mtime = timeutil.fmt(datetime.fromtimestamp(c.mtime_ns / 1e9, UTC))
    rel = os.path.relpath(c.path, c.project)
    title = f"{os.path.basename(c.project)}/{rel}" if rel != "." else c.name
    return {
        "id": file_id(host, c.path), "source": "file", "title": title,
        "uri": f"file://{host}{quote(c.path)}", "project": c.project, "created_at": mtime, "updated_at": mtime,
        "content": text,
        "meta": {"language": language_of(c.name), "size": c.size, "mtime": mtime,
                 "line_count": text.count("\n") + (1 if text and not text.endswith("\n") else 0),
                 "path": c.path, "rel_path": rel, "host": host},
    }


def _read_text(path: str, limit: int) -> tuple[str, bool] | None:
    """The file as text and whether it held invalid UTF-8 (replaced with U+FFFD), or None when
    it is binary (a NUL byte in the first 8 KiB)."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if b"\x00" in data[:BINARY_SNIFF]:
        return None
    try:
        return data.decode("utf-8").replace("\x00", ""), False
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").replace("\x00", ""), True


def _printable_path(path: str) -> str:
    """A path as text even when its name is not UTF-8 (``os.scandir`` keeps such bytes as
    surrogates, which no outbox can store)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class FilesCollector:
    """One run over all configured roots."""

    def __init__(self, cfg: LaptopConfig, state: State, sink: Sink, redactor: Any, since: datetime | None = None):
        self.cfg, self.state, self.sink, self.redactor = cfg, state, sink, redactor
        self.host = host_name(cfg)
        self.since_ns = int(since.timestamp() * 1e9) if since else None
        self.stats = RunStats("files")
        self.reads = 0  # files opened this run (tests check that an unchanged re-run opens none)
        self._index_writes: list[tuple[str, str, int, int, str]] = []

    def run(self) -> RunStats:
        roots = expand(self.cfg.collect.files_roots)
        if not roots:
            self.stats.warnings.append("files: no roots configured (set collect.files_roots)")
        for root in roots:
            root_s = os.path.abspath(root)
            if not os.path.isdir(root_s):
                self.stats.errors.append(f"files: root {root_s} is not a folder; nothing deleted for it")
                continue
            self._scan_root(root_s)
        return self.stats

    def _flush_index(self) -> None:
        self.state.conn.executemany(
            "INSERT INTO files_index(path, root, size, mtime_ns, status) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(path) DO UPDATE SET root = excluded.root, size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, status = excluded.status", self._index_writes)
        self._index_writes.clear()
        self.state.checkpoint()

    def _scan_root(self, root: str) -> None:
        index = {row[0]: (row[1], row[2], row[3]) for row in self.state.conn.execute(
            "SELECT path, size, mtime_ns, status FROM files_index WHERE root = ?", (root,))}
        seen: set[str] = set()
        scanner = Scanner(self.cfg, self.stats)
        max_bytes = self.cfg.collect.files_max_bytes
        for c in scanner.scan(root):
            self.stats.scanned += 1
            if c.size > max_bytes:
                self.stats.skipped["too big"] += 1
                continue
            known = index.get(c.path)
            if known is not None and known[0] == c.size and known[1] == c.mtime_ns:
                seen.add(c.path)
                self.stats.unchanged += 1
                continue
            if self.since_ns is not None and c.mtime_ns < self.since_ns:
                if known is not None:
                    seen.add(c.path)  # not re-read now, but still there: never delete it
                self.stats.skipped["before --since"] += 1
                continue
            self._collect_file(root, c, seen)
            if len(self._index_writes) >= CHECKPOINT_EVERY:
                self._flush_index()
        self._flush_index()
        self._delete_missing(root, index, seen, scanner.failed_dirs)

    def _collect_file(self, root: str, c: Candidate, seen: set[str]) -> None:
        try:
            c.path.encode("utf-8")
        except UnicodeEncodeError:
            self.stats.dropped.append((_printable_path(c.path), "file name is not valid UTF-8"))
            return
        try:
            self.reads += 1
            read = _read_text(c.path, self.cfg.collect.files_max_bytes)
        except OSError as exc:
            self.stats.dropped.append((c.path, f"cannot be read: {exc.strerror or exc}"))
            return
        seen.add(c.path)
        if read is None:
            self.stats.skipped["binary"] += 1
            self.stats.dropped.append((c.path, "binary (a NUL byte in the first 8 KiB)"))
            self._index_writes.append((c.path, root, c.size, c.mtime_ns, "binary"))
            return
        text, invalid_utf8 = read
        if invalid_utf8:
            self.stats.repaired.append((c.path, "invalid UTF-8 replaced with U+FFFD"))
        try:
            item, counts = prepare(build_item(self.host, c, text), self.redactor, self.cfg.collect.max_item_bytes,
                                   PLAIN_META, self.stats)
            queued = self.sink.upsert(Queued(item, counts))
        except (UnicodeError, ValueError, TypeError) as exc:
            self.stats.dropped.append((c.path, f"cannot be queued: {type(exc).__name__}"))
            return
        if queued:
            self.stats.queued += 1
            self.stats.redacted.update(counts)
        else:
            self.stats.unchanged += 1
        self._index_writes.append((c.path, root, c.size, c.mtime_ns, "sent"))

    def _delete_missing(self, root: str, index: dict[str, tuple[int, int, str]], seen: set[str],
                        failed_dirs: list[str]) -> None:
        """Files indexed before but not seen now: gone (or now ignored) -> delete from the brain."""
        guarded = tuple(d + os.sep for d in failed_dirs)
        gone = [p for p in index if p not in seen and not (guarded and p.startswith(guarded))]
        for path in gone:
            if index[path][2] == "sent":
                self.sink.delete(file_id(self.host, path))
                self.stats.deleted += 1
        self.state.conn.executemany("DELETE FROM files_index WHERE path = ?", [(p,) for p in gone])
        self.state.checkpoint()


def collect(cfg: LaptopConfig, state: State, sink: Sink, redactor: Any, since: datetime | None = None) -> RunStats:
    return FilesCollector(cfg, state, sink, redactor, since).run()
