"""Local state of the collectors: the outbox, cursors, file index, and the run lock.

Why one SQLite file (``~/.local/state/brain/collect.db``) for all of it: a collector enqueues
items and advances its cursor in the *same* transaction, so a crash (or SIGKILL from cron)
either keeps both or neither. Items leave the outbox only after brain-api answered 2xx; a
re-sent batch is harmless because the API's upsert is idempotent on the item id, so every item
ends up in the store exactly once.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brain.client.http import ApiClient, ApiError, ApiUnavailable
from brain.shared.tombstones import Rule, first_match

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL UNIQUE,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
    body TEXT,
    bytes INTEGER NOT NULL DEFAULT 0,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS item_hashes (item_id TEXT PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files_index (
    path TEXT PRIMARY KEY, root TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_index_root ON files_index(root);
CREATE TABLE IF NOT EXISTS claude_files (
    path TEXT PRIMARY KEY, session_id TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL
);
"""

# Status codes that concern one item of a batch (the rest of the batch can still go through).
ITEM_ERRORS = frozenset({400, 413, 422})
LOCK_POLL_S = 0.25  # how often a run waiting for the collectors' lock tries it again


class LockBusy(Exception):
    """Another ``brain collect`` holds the lock; ``holder`` says which kind (``collect``, or
    ``hook`` for a Claude Code hook's background collection of one session) and ``pid`` its pid."""

    def __init__(self, message: str, holder: str = "collect", pid: str = "?"):
        super().__init__(message)
        self.holder, self.pid = holder, pid


class AuthFailed(Exception):
    """brain-api refused the token: nothing can be sent until the configuration is fixed."""


class RunLock:
    """An exclusive ``flock`` on ``<state>/collect.lock`` so cron runs never overlap.

    Why flock: the kernel drops it when the process dies (even on SIGKILL), so a crashed run
    never leaves a stale lock behind.
    """

    def __init__(self, path: Path, holder: str = "collect"):
        self.path = path
        self.holder = holder  # written beside the pid: who waits for whom depends on it
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        if self._fd is not None:  # taken already (wait_for_run_lock): a `with` keeps it
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid, _, holder = os.read(fd, 64).decode(errors="replace").strip().partition(" ")
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                what = ", a Claude Code hook's collection of one session" if holder == "hook" else ""
                raise LockBusy(f"another brain collect run holds {self.path} (pid {pid or '?'}{what})",
                               holder or "collect", pid or "?") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.holder}".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def wait_for_run_lock(lock: RunLock, wait: float, waiting: Callable[[LockBusy], None] = lambda busy: None,
                      only_for: str | None = None) -> RunLock:
    """``lock`` taken, waiting up to ``wait`` seconds for its holder (only a holder of kind
    ``only_for`` when that is given; any other raises LockBusy at once); ``waiting`` is told once
    when the wait begins. Raises the last LockBusy when the wait runs out."""
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            return lock.__enter__()
        except LockBusy as busy:
            if (only_for is not None and busy.holder != only_for) or time.monotonic() >= deadline:
                raise
            if not told:
                waiting(busy)
                told = True
        time.sleep(LOCK_POLL_S)  # flock has no timeout; its holder ends within the wait or it is not waited for


def item_hash(item: dict[str, Any]) -> str:
    """Hash of an item as it would be sent (canonical JSON)."""
    canonical = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def item_body(item: dict[str, Any]) -> str:
    """The JSON the outbox stores and later sends, checked to be UTF-8 as SQLite will write it.

    Why a function of its own: ``--dry-run`` encodes every item with it too, so a string that
    cannot be stored (a lone surrogate) fails the dry run exactly where it fails a real run."""
    body = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    body.encode("utf-8")  # raises UnicodeEncodeError where the INSERT would
    return body


@dataclass
class FlushResult:
    """What one flush did. ``error`` is set when sending stopped early (items stay queued)."""

    sent: int = 0
    deleted: int = 0
    failed: int = 0
    batches: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    error: str = ""
    failures: list[str] = field(default_factory=list)


class State:
    """The collectors' SQLite state. In dry-run mode nothing is ever committed."""

    def __init__(self, path: Path, dry_run: bool = False):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.dry_run = dry_run
        self.conn = sqlite3.connect(path, timeout=30)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.conn.commit()
        os.chmod(path, 0o600)

    def close(self) -> None:
        if self.dry_run:
            self.conn.rollback()
        else:
            self.conn.commit()
        self.conn.close()

    def checkpoint(self) -> None:
        """Commit what a collector did so far (enqueued items together with cursors/index)."""
        if not self.dry_run:
            self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    # ------------------------------------------------------------------ cursors

    def get_cursor(self, name: str, default: str = "") -> str:
        row = self.conn.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return row[0] if row else default

    def set_cursor(self, name: str, value: str) -> None:
        self.conn.execute("INSERT INTO cursors(name, value) VALUES (?, ?) "
                          "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value))

    def cursors(self, prefix: str) -> list[tuple[str, str]]:
        """Every cursor whose name starts with ``prefix``, by name (``run:`` holds each collector's last run)."""
        rows = self.conn.execute("SELECT name, value FROM cursors WHERE substr(name, 1, ?) = ? ORDER BY name",
                                 (len(prefix), prefix)).fetchall()
        return [(row[0], row[1]) for row in rows]

    # ------------------------------------------------------------------ outbox

    def is_unchanged(self, item: dict[str, Any]) -> bool:
        """True when exactly this item was enqueued before (pending or delivered)."""
        row = self.conn.execute("SELECT hash FROM item_hashes WHERE item_id = ?", (item["id"],)).fetchone()
        return row is not None and row[0] == item_hash(item)

    def enqueue_upsert(self, item: dict[str, Any]) -> bool:
        """Queue an item unless the identical item was queued before; replaces a pending version."""
        digest = item_hash(item)
        row = self.conn.execute("SELECT hash FROM item_hashes WHERE item_id = ?", (item["id"],)).fetchone()
        if row is not None and row[0] == digest:
            return False
        body = item_body(item)
        self._put(item["id"], "upsert", body)
        self.conn.execute("INSERT INTO item_hashes(item_id, hash) VALUES (?, ?) "
                          "ON CONFLICT(item_id) DO UPDATE SET hash = excluded.hash", (item["id"], digest))
        return True

    def enqueue_delete(self, item_id: str) -> None:
        """Queue a delete (it replaces a pending upsert of the same item)."""
        self._put(item_id, "delete", None)
        self.conn.execute("DELETE FROM item_hashes WHERE item_id = ?", (item_id,))

    def _put(self, item_id: str, op: str, body: str | None) -> None:
        self.conn.execute("DELETE FROM outbox WHERE item_id = ?", (item_id,))
        self.conn.execute("INSERT INTO outbox(item_id, op, body, bytes, enqueued_at) VALUES (?, ?, ?, ?, ?)",
                          (item_id, op, body, len(body.encode("utf-8", "surrogatepass")) if body else 0,
                           time.time()))

    def pending(self) -> dict[str, int]:
        """Counts of queued upserts/deletes and of items that failed with a 4xx."""
        out = {"upsert": 0, "delete": 0, "failed": 0}
        for op, failed, n in self.conn.execute("SELECT op, failed, COUNT(*) FROM outbox GROUP BY op, failed"):
            out["failed" if failed else op] += n
        return out

    def failures(self, limit: int = 20) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT item_id, op, last_status, last_error, attempts FROM outbox "
                                 "WHERE failed = 1 ORDER BY seq LIMIT ?", (limit,)).fetchall()

    def drop_forgotten(self, rules: list[Rule]) -> list[str]:
        """Take queued upserts that a tombstone forgets out of the outbox (queued before it was
        learnt, e.g. while brain-api was down); return their ids. They are never sent."""
        if not rules:
            return []
        dropped = []
        for row in self.conn.execute("SELECT seq, item_id, body FROM outbox WHERE op = 'upsert'").fetchall():
            if first_match(rules, json.loads(row["body"])) is not None:
                dropped.append(row["item_id"])
                self.conn.execute("DELETE FROM outbox WHERE seq = ?", (row["seq"],))
                self.conn.execute("DELETE FROM item_hashes WHERE item_id = ?", (row["item_id"],))
        self.checkpoint()
        return dropped

    def retry_failed(self) -> int:
        """Put items that failed with a 4xx back in the queue (e.g. after a server upgrade)."""
        n = self.conn.execute("UPDATE outbox SET failed = 0 WHERE failed = 1").rowcount
        self.checkpoint()
        return n

    # ------------------------------------------------------------------ sending

    def _rows(self, op: str) -> Iterator[sqlite3.Row]:
        last = 0
        while True:
            rows = self.conn.execute("SELECT seq, item_id, body, bytes FROM outbox WHERE op = ? AND failed = 0 "
                                     "AND seq > ? ORDER BY seq LIMIT 500", (op, last)).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1]["seq"]

    def _batches(self, max_items: int, max_bytes: int) -> Iterator[list[sqlite3.Row]]:
        batch: list[sqlite3.Row] = []
        size = 0
        for row in self._rows("upsert"):
            if batch and (len(batch) >= max_items or size + row["bytes"] > max_bytes):
                yield batch
                batch, size = [], 0
            batch.append(row)
            size += row["bytes"]
        if batch:
            yield batch

    def _mark_failed(self, row: sqlite3.Row, err: ApiError, result: FlushResult) -> None:
        self.conn.execute("UPDATE outbox SET failed = 1, attempts = attempts + 1, last_status = ?, last_error = ? "
                          "WHERE seq = ?", (err.status, f"{err.code}: {err.message}"[:1000], row["seq"]))
        self.conn.commit()
        result.failed += 1
        result.failures.append(f"{row['item_id']}: {err.status} {err.code}: {err.message}")

    def _send_batch(self, client: ApiClient, batch: list[sqlite3.Row], result: FlushResult) -> None:
        """POST one batch; on an item-level 4xx set that item aside and send the rest."""
        while batch:
            try:
                answer = client.post_items([json.loads(r["body"]) for r in batch])
            except ApiError as err:
                if err.status in (401, 403):
                    raise AuthFailed(str(err)) from None
                if err.retryable or err.status not in ITEM_ERRORS:
                    raise
                if err.index is not None and 0 <= err.index < len(batch):
                    self._mark_failed(batch[err.index], err, result)
                    batch = batch[:err.index] + batch[err.index + 1:]
                    continue
                if len(batch) == 1:
                    self._mark_failed(batch[0], err, result)
                    return
                half = len(batch) // 2  # no index (e.g. 413 for the whole body): bisect to find the culprit
                self._send_batch(client, batch[:half], result)
                batch = batch[half:]
                continue
            self.conn.executemany("DELETE FROM outbox WHERE seq = ?", [(r["seq"],) for r in batch])
            self.conn.commit()
            result.sent += len(batch)
            result.batches += 1
            result.answers.update({k: v for k, v in answer.items() if isinstance(v, int)})
            return

    def _send_delete(self, client: ApiClient, row: sqlite3.Row, result: FlushResult) -> None:
        try:
            client.delete_item(row["item_id"])
        except ApiError as err:
            if err.status in (401, 403):
                raise AuthFailed(str(err)) from None
            if err.retryable:
                raise
            if err.status != 404:  # 404: already gone, which is what we wanted
                self._mark_failed(row, err, result)
                return
        self.conn.execute("DELETE FROM outbox WHERE seq = ?", (row["seq"],))
        self.conn.commit()
        result.deleted += 1

    def flush(self, client: ApiClient, max_items: int = 100, max_bytes: int = 4_000_000,
              progress: Callable[[FlushResult], None] | None = None) -> FlushResult:
        """Send everything queued. Stops at the first transport failure or persistent 429/5xx,
        keeping what was not acknowledged; raises AuthFailed on 401/403."""
        result = FlushResult()
        self.conn.commit()
        try:
            for batch in self._batches(max_items, max_bytes):
                self._send_batch(client, batch, result)
                if progress:
                    progress(result)
            for row in list(self._rows("delete")):
                self._send_delete(client, row, result)
        except (ApiUnavailable, ApiError) as exc:
            result.error = str(exc)
        return result


# ---------------------------------------------------------------------- sinks


@dataclass
class Queued:
    """One prepared item (already redacted) plus what redaction replaced."""

    item: dict[str, Any]
    redacted: Counter[str]


class Sink:
    """Where collectors put their items: the outbox, or the screen for ``--dry-run``.

    ``rules`` are the tombstones learnt from brain-api (``collectors.forgotten``): an item one of
    them matches is not queued (``upsert`` answers False and counts it in ``forgotten``), so the
    text of a forgotten item never leaves the laptop again."""

    def __init__(self, state: State, rules: list[Rule] | None = None):
        self.state = state
        self.rules: list[Rule] = list(rules or [])
        self.queued = 0
        self.unchanged = 0
        self.forgotten = 0
        self.deletes = 0
        self.redacted: Counter[str] = Counter()
        self.on_item: Callable[[Sink], None] | None = None  # called after each item (a progress bar)

    def seen(self) -> None:
        if self.on_item is not None:
            self.on_item(self)

    def forgets(self, item: dict[str, Any]) -> Rule | None:
        """The tombstone that forgets ``item`` (counted), or None."""
        rule = first_match(self.rules, item) if self.rules else None
        if rule is not None:
            self.forgotten += 1
        return rule

    def upsert(self, q: Queued) -> bool:
        raise NotImplementedError

    def delete(self, item_id: str) -> None:
        raise NotImplementedError


class OutboxSink(Sink):
    def upsert(self, q: Queued) -> bool:
        try:
            if self.forgets(q.item) is not None:
                return False
            if self.state.enqueue_upsert(q.item):
                self.queued += 1
                self.redacted.update(q.redacted)
                return True
            self.unchanged += 1
            return False
        finally:
            self.seen()

    def delete(self, item_id: str) -> None:
        self.state.enqueue_delete(item_id)
        self.deletes += 1


class DryRunSink(Sink):
    """Prints what would be sent; the state transaction is rolled back at the end."""

    def __init__(self, state: State, echo: Callable[[str], None]):
        super().__init__(state)
        self.echo = echo

    def upsert(self, q: Queued) -> bool:
        self.seen()
        rule = self.forgets(q.item)
        if rule is not None:
            self.echo(f"forgotten {q.item['id']}  (tombstone: {rule.describe()}; not sent)")
            return False
        if self.state.is_unchanged(q.item):
            self.unchanged += 1
            return False
        item_body(q.item)  # what the real run stores: it fails (or passes) here the same way
        self.queued += 1
        self.redacted.update(q.redacted)
        size = len(q.item.get("content", "").encode("utf-8", "surrogatepass"))
        red = ", ".join(f"{k} x{n}" for k, n in sorted(q.redacted.items())) or "nothing"
        title = (q.item.get("title") or "").replace("\n", " ")[:80]
        self.echo(f"upsert {q.item['id']}  \"{title}\"  {size} bytes  redacted: {red}")
        return True

    def delete(self, item_id: str) -> None:
        self.deletes += 1
        self.echo(f"delete {item_id}")
