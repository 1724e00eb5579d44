"""A compressed, checksummed, append-only copy of every Claude Code transcript seen.

Why: Claude Code deletes session files older than ``cleanupPeriodDays`` (30 by default), and
users lose their history that way. The archive (``~/.local/share/brain/claude-archive``) keeps
its own copy, grows it as sessions grow, never deletes anything, and can rebuild every item
on its own (``brain collect claude --from-archive``).

Layout: ``<archive>/<root-key>/<rel>.gz`` where ``<rel>`` mirrors the path under ``projects/``
and ``<root-key>`` names the projects folder (several roots may exist): the folder's last two
names and a hash of its real path, e.g. ``claude-projects-6a80684092``. The other coding agents'
files (``brain collect agents``) are kept the same way under ``agents/<agent>/<root-key>/``:
``agents/codex/codex-sessions-<hash>/2026/05/02/rollout-....jsonl.gz``,
``agents/gemini/gemini-tmp-<hash>/<projectId>/chats/session-....jsonl.gz``,
``agents/aider/<parent>-<repo>-<hash>/.aider.chat.history.md.gz`` (one root per repository),
``agents/opencode/opencode-storage-<hash>/...`` (JSON files before v1.2) or
``agents/opencode/share-opencode-<hash>/opencode.db/<session>.jsonl.gz`` and
``agents/cursor/Cursor-User-<hash>/globalStorage/state.vscdb/<composer>.jsonl.gz`` (older:
``workspaceStorage/<id>/state.vscdb/<tab>.jsonl.gz``): a database's sessions as one JSON-lines
export each. Agent files archived before this layout keep their old top-level keys. A transcript is
append-only while a session runs, so growth is stored as one more gzip *member* appended to
the blob (gzip readers concatenate members). A manifest (SQLite, ``manifest.db``) records for
each file its raw size, sha256 and the blob's length in bytes:

* the blob is cut back to the recorded length before appending, so a member left by a crash
  between writing and recording can never be read twice;
* a file whose start changed (rewritten, not appended) gets a new version blob
  (``<rel>.v2.gz``), and the old one is kept.

Redacted at rest (issue 12): what is stored is the transcript with every secret replaced, as the
items sent to brain-api are. Each JSON line is parsed and its strings redacted (a line without a
secret is kept byte for byte); a line that is not JSON is redacted as text. The unfinished last
line of a ``.jsonl`` file (still being written) is stored as the blob's last gzip member, cut off
and stored again whole once it ends, so the stored text never depends on where a write was cut.
The manifest records both the raw bytes taken (size and sha256, for telling growth from
rewrites) and the stored bytes (size and sha256, checked on every read). An archive written before redaction is rewritten redacted when it is opened, and
no unredacted blob is left behind.

Retention: ``keep_days`` (``collect.archive_days``) deletes the archived copies of transcripts
that have not changed for that many days; 0 keeps them forever.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sqlite3
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS roots (root_key TEXT PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    root_key TEXT NOT NULL, rel TEXT NOT NULL, version INTEGER NOT NULL, blob TEXT NOT NULL,
    raw_size INTEGER NOT NULL, sha256 TEXT NOT NULL, gz_bytes INTEGER NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    PRIMARY KEY (root_key, rel, version)
);
"""
# Added with redaction at rest: the stored (redacted) bytes' size and sha256; 0 = a blob written
# before redaction, rewritten when the archive is opened.
# tail_*: the unfinished last line of a .jsonl file, stored as the blob's last gzip member (raw
# bytes, member bytes, stored bytes), replaced by the next append.
REDACTED_COLUMNS = (("stored_size", "INTEGER"), ("stored_sha256", "TEXT"), ("redacted", "INTEGER NOT NULL DEFAULT 0"),
                    ("tail_raw", "INTEGER NOT NULL DEFAULT 0"), ("tail_gz", "INTEGER NOT NULL DEFAULT 0"),
                    ("tail_stored", "INTEGER NOT NULL DEFAULT 0"))
DAY_S = 86400.0
AGENTS = "agents"  # the other coding agents' roots: <archive>/agents/<agent>/<root-key>/<rel>.gz


class ArchiveCorrupt(ValueError):
    """An archived copy does not match its recorded size or checksum."""


class AgentArchive:
    """The archive as one coding agent's collector writes to it: every root under
    ``agents/<agent>/`` (a name no Claude root key can have: those hold no ``/``)."""

    def __init__(self, archive: Archive, agent: str):
        self.archive, self.agent = archive, agent

    def add(self, root: Path, rel: str, data: bytes) -> str:
        return self.archive.add(root, rel, data, agent=self.agent)


def is_claude_root(key: str) -> bool:
    """Whether an archive root key is a Claude Code ``projects/`` folder's (not another agent's)."""
    return not key.startswith(f"{AGENTS}/")


def root_key(projects: Path) -> str:
    """A stable folder name for one ``projects/`` root: readable tail plus a short hash."""
    real = os.path.realpath(projects)
    tail = "-".join(Path(real).parts[-2:]).strip("-./") or "root"
    return f"{tail}-{hashlib.sha256(real.encode()).hexdigest()[:10]}"


def _members(parts: list[bytes]) -> list[bytes]:
    """One gzip member per non-empty part."""
    return [gzip.compress(part, compresslevel=6, mtime=0) for part in parts if part]


def _write_new(path: Path, parts: list[bytes]) -> list[int]:
    """Write a gzip blob atomically (temp file, fsync, rename), one member per part; return the
    members' lengths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    members = _members(parts)
    with open(tmp, "wb") as fh:
        fh.write(b"".join(members))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return [len(m) for m in members]


def _append(path: Path, keep: int, parts: list[bytes]) -> list[int]:
    """Cut the blob back to ``keep`` bytes, append one gzip member per part, fsync; return the
    new members' lengths."""
    members = _members(parts)
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.seek(keep)
        fh.write(b"".join(members))
        fh.flush()
        os.fsync(fh.fileno())
    return [len(m) for m in members]


def _split(rel: str, data: bytes) -> tuple[bytes, bytes]:
    """A ``.jsonl`` transcript's complete lines and the line still being written after them;
    any other file (a subagent's ``.meta.json``) is complete as it is."""
    if not rel.endswith(".jsonl"):
        return data, b""
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:]


def _redact_line(line: bytes, redactor: Any) -> bytes:
    """One transcript line with its secrets replaced; the same bytes when it holds none.

    A JSON line is redacted string by string and written back as JSON (a placeholder can never
    break the syntax); anything else as text. Lone surrogates (``"\\ud83d"``) are written back as
    the same JSON escapes."""
    body, end = (line[:-1], line[-1:]) if line.endswith(b"\n") else (line, b"")
    text = body.decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict | list):
        counts: Counter[str] = Counter()
        redacted = redactor.redact_value(value, counts)
        if not counts:
            return line
        out = json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))
        return out.encode("utf-8", "backslashreplace") + end
    result = redactor.redact(text)
    return line if not result.counts else result.text.encode("utf-8", "backslashreplace") + end


def redact_transcript(rel: str, data: bytes, redactor: Any) -> bytes:
    """A ``.jsonl`` transcript line by line, any other file (a subagent's ``.meta.json``) whole,
    redacted (``_redact_line``)."""
    if not rel.endswith(".jsonl"):
        return _redact_line(data, redactor)
    return b"".join(_redact_line(line, redactor) for line in data.splitlines(keepends=True))


def _gunzip(path: Path, length: int) -> bytes:
    """The first ``length`` bytes of a blob, decompressed (every member's CRC checked)."""
    try:
        with open(path, "rb") as fh:
            return gzip.decompress(fh.read(length))
    except (OSError, EOFError, zlib.error) as exc:
        raise ArchiveCorrupt(f"archived copy {path} is unreadable: {exc}") from None


class Archive:
    """The transcript archive under ``base`` (created on first use), redacted at rest.

    ``keep_days``: delete copies of transcripts unchanged for that many days (0: keep them all).
    ``redactor``: the collectors' redactor (default: the process-wide one)."""

    def __init__(self, base: Path, keep_days: float = 0, redactor: Any = None):
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o700)
        if redactor is None:
            from brain.collect.redact import default_redactor

            redactor = default_redactor()
        self.redactor = redactor
        self.conn = sqlite3.connect(base / "manifest.db", timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(SCHEMA)
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(files)")}
        for name, decl in REDACTED_COLUMNS:
            if name not in have:
                self.conn.execute(f"ALTER TABLE files ADD COLUMN {name} {decl}")
        self.conn.commit()
        self._redact_old_blobs()
        if keep_days:
            self.prune(keep_days)

    def _redact_old_blobs(self) -> None:
        """Rewrite every blob stored before redaction, then delete blobs no row points at.

        Each blob is written redacted under a new name and the row switched to it in one commit
        before the old blob is deleted, so a crash leaves either the old row and blob (done
        again next time) or the new ones plus an orphan the sweep removes."""
        self.conn.row_factory = sqlite3.Row
        rows = self.conn.execute("SELECT * FROM files WHERE redacted = 0").fetchall()
        for row in rows:
            old = self.base / row["blob"]
            try:
                raw = self._verified(old, row["gz_bytes"], row["raw_size"], row["sha256"])
            except ArchiveCorrupt:
                continue  # left as it is: verify() reports it, read() refuses it
            blob_rel = row["blob"][: -len(".gz")] + ".r.gz"
            cols = self._store_new(blob_rel, row["rel"], raw)
            self.conn.execute(f"UPDATE files SET blob = ?, {', '.join(f'{k} = ?' for k in cols)}, redacted = 1 "
                              "WHERE root_key = ? AND rel = ? AND version = ?",
                              (blob_rel, *cols.values(), row["root_key"], row["rel"], row["version"]))
            self.conn.commit()
            old.unlink(missing_ok=True)
        if rows:
            self._sweep()

    def _sweep(self) -> None:
        """Delete blobs (and temp files) no manifest row points at."""
        known = {r[0] for r in self.conn.execute("SELECT blob FROM files")}
        for path in self.base.rglob("*"):
            if path.is_file() and path.name.endswith((".gz", ".tmp")) and \
                    path.relative_to(self.base).as_posix() not in known:
                path.unlink(missing_ok=True)

    def prune(self, keep_days: float, now: float | None = None) -> int:
        """Delete every version of the transcripts unchanged for ``keep_days``; how many files went."""
        cutoff = (time.time() if now is None else now) - keep_days * DAY_S
        old = self.conn.execute("SELECT root_key, rel FROM files GROUP BY root_key, rel HAVING max(last_seen) < ?",
                                (cutoff,)).fetchall()
        for key, rel in old:
            blobs = [r[0] for r in self.conn.execute("SELECT blob FROM files WHERE root_key = ? AND rel = ?",
                                                     (key, rel))]
            self.conn.execute("DELETE FROM files WHERE root_key = ? AND rel = ?", (key, rel))
            self.conn.commit()
            for blob in blobs:
                (self.base / blob).unlink(missing_ok=True)
        return len(old)

    @staticmethod
    def _verified(path: Path, gz_bytes: int, size: int, sha256: str) -> bytes:
        data = _gunzip(path, gz_bytes)
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            raise ArchiveCorrupt(f"archived copy {path} does not match its checksum")
        return data

    def close(self) -> None:
        self.conn.close()

    def _latest(self, key: str, rel: str) -> sqlite3.Row | None:
        self.conn.row_factory = sqlite3.Row
        return self.conn.execute("SELECT * FROM files WHERE root_key = ? AND rel = ? ORDER BY version DESC LIMIT 1",
                                 (key, rel)).fetchone()

    def _redacted_parts(self, rel: str, data: bytes) -> tuple[bytes, bytes, int]:
        """``data`` as stored: its complete lines redacted, its unfinished line redacted, and the
        unfinished line's raw length."""
        complete, tail = _split(rel, data)
        return redact_transcript(rel, complete, self.redactor), redact_transcript(rel, tail, self.redactor), len(tail)

    def _store_new(self, blob_rel: str, rel: str, data: bytes) -> dict[str, Any]:
        """Write ``data`` redacted as a new blob; the manifest columns that describe it."""
        done, tail, tail_raw = self._redacted_parts(rel, data)
        sizes = _write_new(self.base / blob_rel, [done, tail])
        return {"raw_size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "gz_bytes": sum(sizes),
                "stored_size": len(done) + len(tail), "stored_sha256": hashlib.sha256(done + tail).hexdigest(),
                "tail_raw": tail_raw, "tail_gz": sizes[-1] if tail else 0, "tail_stored": len(tail)}

    def add(self, projects: Path, rel: str, data: bytes, agent: str = "") -> str:
        """Record the current bytes of a transcript (redacted). Returns new | unchanged | appended | version.
        ``agent``: another coding agent's file, kept under ``agents/<agent>/<root-key>/``."""
        key = f"{AGENTS}/{agent}/{root_key(projects)}" if agent else root_key(projects)
        self.conn.execute("INSERT OR IGNORE INTO roots(root_key, path) VALUES (?, ?)", (key, str(projects)))
        now = time.time()
        digest = hashlib.sha256(data).hexdigest()
        row = self._latest(key, rel)
        if row is not None and row["raw_size"] == len(data) and row["sha256"] == digest:
            self.conn.execute("UPDATE files SET last_seen = ? WHERE root_key = ? AND rel = ? AND version = ?",
                              (now, key, rel, row["version"]))
            self.conn.commit()
            return "unchanged"
        if row is not None and row["redacted"] and len(data) > row["raw_size"] and \
                hashlib.sha256(data[: row["raw_size"]]).hexdigest() == row["sha256"]:
            self._grow(row, rel, data, now)
            return "appended"
        version = 1 if row is None else row["version"] + 1
        blob_rel = f"{key}/{rel}.gz" if version == 1 else f"{key}/{rel}.v{version}.gz"
        cols = {"root_key": key, "rel": rel, "version": version, "blob": blob_rel,
                **self._store_new(blob_rel, rel, data), "first_seen": now, "last_seen": now, "redacted": 1}
        self.conn.execute(f"INSERT INTO files({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                          tuple(cols.values()))
        self.conn.commit()
        return "new" if version == 1 else "version"

    def _grow(self, row: sqlite3.Row, rel: str, data: bytes, now: float) -> None:
        """Append what was added to a transcript: the unfinished line stored last time (its own
        gzip member) is cut off and stored again as part of what follows it."""
        blob = self.base / row["blob"]
        kept = self._verified(blob, row["gz_bytes"], row["stored_size"], row["stored_sha256"])
        kept = kept[: len(kept) - row["tail_stored"]]
        done, tail, tail_raw = self._redacted_parts(rel, data[row["raw_size"] - row["tail_raw"]:])
        keep_gz = row["gz_bytes"] - row["tail_gz"]
        sizes = _append(blob, keep_gz, [done, tail])
        self.conn.execute(
            "UPDATE files SET raw_size = ?, sha256 = ?, gz_bytes = ?, stored_size = ?, stored_sha256 = ?, "
            "tail_raw = ?, tail_gz = ?, tail_stored = ?, last_seen = ? WHERE root_key = ? AND rel = ? AND version = ?",
            (len(data), hashlib.sha256(data).hexdigest(), keep_gz + sum(sizes), len(kept) + len(done) + len(tail),
             hashlib.sha256(kept + done + tail).hexdigest(), tail_raw, sizes[-1] if tail else 0, len(tail), now,
             row["root_key"], row["rel"], row["version"]))
        self.conn.commit()

    def files(self) -> Iterator[tuple[str, str]]:
        """(root_key, rel) of every archived transcript (its latest version is what ``read`` gives)."""
        rows = self.conn.execute("SELECT DISTINCT root_key, rel FROM files ORDER BY root_key, rel").fetchall()
        yield from ((r[0], r[1]) for r in rows)

    def read(self, key: str, rel: str, version: int | None = None) -> bytes:
        """The archived (redacted) bytes, verified against the recorded size and sha256."""
        if version is None:
            row = self._latest(key, rel)
        else:
            self.conn.row_factory = sqlite3.Row
            row = self.conn.execute("SELECT * FROM files WHERE root_key = ? AND rel = ? AND version = ?",
                                    (key, rel, version)).fetchone()
        if row is None:
            raise KeyError(f"{key}/{rel} is not in the archive")
        path = self.base / row["blob"]
        if row["redacted"]:
            return self._verified(path, row["gz_bytes"], row["stored_size"], row["stored_sha256"])
        return self._verified(path, row["gz_bytes"], row["raw_size"], row["sha256"])  # could not be redacted

    def verify(self) -> list[str]:
        """Problems found when reading back every version (empty list: all good)."""
        problems = []
        for key, rel, version in self.conn.execute("SELECT root_key, rel, version FROM files").fetchall():
            try:
                self.read(key, rel, version)
            except ArchiveCorrupt as exc:
                problems.append(str(exc))
        return problems
