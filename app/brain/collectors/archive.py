"""A compressed, checksummed, append-only copy of every Claude Code transcript seen.

Why: Claude Code deletes session files older than ``cleanupPeriodDays`` (30 by default), and
users lose their history that way. The archive (``~/.local/share/brain/claude-archive``) keeps
its own copy, grows it as sessions grow, never deletes anything, and can rebuild every item
on its own (``brain collect claude --from-archive``).

Layout: ``<archive>/<root-key>/<rel>.gz`` where ``<rel>`` mirrors the path under ``projects/``
and ``<root-key>`` names the projects folder (several roots may exist). A transcript is
append-only while a session runs, so growth is stored as one more gzip *member* appended to
the blob (gzip readers concatenate members). A manifest (SQLite, ``manifest.db``) records for
each file its raw size, sha256 and the blob's length in bytes:

* the blob is cut back to the recorded length before appending, so a member left by a crash
  between writing and recording can never be read twice;
* a file whose start changed (rewritten, not appended) gets a new version blob
  (``<rel>.v2.gz``), and the old one is kept.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sqlite3
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS roots (root_key TEXT PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    root_key TEXT NOT NULL, rel TEXT NOT NULL, version INTEGER NOT NULL, blob TEXT NOT NULL,
    raw_size INTEGER NOT NULL, sha256 TEXT NOT NULL, gz_bytes INTEGER NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    PRIMARY KEY (root_key, rel, version)
);
"""


class ArchiveCorrupt(ValueError):
    """An archived copy does not match its recorded size or checksum."""


def root_key(projects: Path) -> str:
    """A stable folder name for one ``projects/`` root: readable tail plus a short hash."""
    real = os.path.realpath(projects)
    tail = "-".join(Path(real).parts[-2:]).strip("-./") or "root"
    return f"{tail}-{hashlib.sha256(real.encode()).hexdigest()[:10]}"


def _write_new(path: Path, data: bytes) -> int:
    """Write a gzip blob atomically (temp file, fsync, rename); return its length."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    blob = gzip.compress(data, compresslevel=6, mtime=0)
    with open(tmp, "wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return len(blob)


def _append(path: Path, keep: int, data: bytes) -> int:
    """Cut the blob back to ``keep`` bytes, append one gzip member, fsync; return the new length."""
    member = gzip.compress(data, compresslevel=6, mtime=0)
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.seek(keep)
        fh.write(member)
        fh.flush()
        os.fsync(fh.fileno())
    return keep + len(member)


class Archive:
    """The transcript archive under ``base`` (created on first use)."""

    def __init__(self, base: Path):
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o700)
        self.conn = sqlite3.connect(base / "manifest.db", timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(SCHEMA)
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def _latest(self, key: str, rel: str) -> sqlite3.Row | None:
        self.conn.row_factory = sqlite3.Row
        return self.conn.execute("SELECT * FROM files WHERE root_key = ? AND rel = ? ORDER BY version DESC LIMIT 1",
                                 (key, rel)).fetchone()

    def add(self, projects: Path, rel: str, data: bytes) -> str:
        """Record the current bytes of a transcript. Returns new | unchanged | appended | version."""
        key = root_key(projects)
        self.conn.execute("INSERT OR IGNORE INTO roots(root_key, path) VALUES (?, ?)", (key, str(projects)))
        now = time.time()
        digest = hashlib.sha256(data).hexdigest()
        row = self._latest(key, rel)
        if row is not None and row["raw_size"] == len(data) and row["sha256"] == digest:
            self.conn.execute("UPDATE files SET last_seen = ? WHERE root_key = ? AND rel = ? AND version = ?",
                              (now, key, rel, row["version"]))
            self.conn.commit()
            return "unchanged"
        if row is not None and len(data) > row["raw_size"] and \
                hashlib.sha256(data[: row["raw_size"]]).hexdigest() == row["sha256"]:
            blob = self.base / row["blob"]
            gz_bytes = _append(blob, row["gz_bytes"], data[row["raw_size"]:])
            self.conn.execute("UPDATE files SET raw_size = ?, sha256 = ?, gz_bytes = ?, last_seen = ? "
                              "WHERE root_key = ? AND rel = ? AND version = ?",
                              (len(data), digest, gz_bytes, now, key, rel, row["version"]))
            self.conn.commit()
            return "appended"
        version = 1 if row is None else row["version"] + 1
        blob_rel = f"{key}/{rel}.gz" if version == 1 else f"{key}/{rel}.v{version}.gz"
        gz_bytes = _write_new(self.base / blob_rel, data)
        self.conn.execute("INSERT INTO files(root_key, rel, version, blob, raw_size, sha256, gz_bytes, first_seen, "
                          "last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (key, rel, version, blob_rel, len(data), digest, gz_bytes, now, now))
        self.conn.commit()
        return "new" if version == 1 else "version"

    def files(self) -> Iterator[tuple[str, str]]:
        """(root_key, rel) of every archived transcript (its latest version is what ``read`` gives)."""
        rows = self.conn.execute("SELECT DISTINCT root_key, rel FROM files ORDER BY root_key, rel").fetchall()
        yield from ((r[0], r[1]) for r in rows)

    def read(self, key: str, rel: str, version: int | None = None) -> bytes:
        """The archived bytes, verified against the recorded size and sha256."""
        if version is None:
            row = self._latest(key, rel)
        else:
            self.conn.row_factory = sqlite3.Row
            row = self.conn.execute("SELECT * FROM files WHERE root_key = ? AND rel = ? AND version = ?",
                                    (key, rel, version)).fetchone()
        if row is None:
            raise KeyError(f"{key}/{rel} is not in the archive")
        path = self.base / row["blob"]
        try:
            with open(path, "rb") as fh:
                data = gzip.decompress(fh.read(row["gz_bytes"]))
        except (OSError, EOFError, zlib.error) as exc:
            raise ArchiveCorrupt(f"archived copy {path} is unreadable: {exc}") from None
        if len(data) != row["raw_size"] or hashlib.sha256(data).hexdigest() != row["sha256"]:
            raise ArchiveCorrupt(f"archived copy {path} does not match its checksum")
        return data

    def verify(self) -> list[str]:
        """Problems found when reading back every version (empty list: all good)."""
        problems = []
        for key, rel, version in self.conn.execute("SELECT root_key, rel, version FROM files").fetchall():
            try:
                self.read(key, rel, version)
            except ArchiveCorrupt as exc:
                problems.append(str(exc))
        return problems
