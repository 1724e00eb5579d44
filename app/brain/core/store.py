"""The SQLite store: items, their chunks, FTS5 index, embedding cache, migrations.

Why one file: the brain runs on a free VM and on a laptop; SQLite in WAL mode gives concurrent
readers with one writer, online backups, and no server to run. Every write of a batch is one
``BEGIN IMMEDIATE`` transaction, so a failed batch leaves the store exactly as it was.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import math
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError as PydanticValidationError

from brain.core.chunking import CODE_LANGUAGES, Chunk, chunk_text, line_token_counts
from brain.core.embed import TextModel, text_hash
from brain.core.headers import chunk_header, identifier_terms
from brain.shared import timeutil
from brain.shared.schema import DEFAULT_MAX_CONTENT_BYTES, ITEM_FIELDS, Item, explain
from brain.shared.schema import SOURCES as SOURCES  # the item schema is shared with the collectors
from brain.shared.schema import text_problem as text_problem
from brain.shared.tombstones import Rule, first_match, rules_from

log = logging.getLogger(__name__)


MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "items, chunks, fts, embeddings", """
CREATE TABLE items(
  id TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  title TEXT NOT NULL DEFAULT '',
  uri TEXT,
  project TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  content TEXT NOT NULL,
  meta TEXT NOT NULL DEFAULT '{}',
  content_hash TEXT NOT NULL,
  ingested_at TEXT NOT NULL
);
CREATE INDEX items_source_updated ON items(source, updated_at);
CREATE INDEX items_project_updated ON items(project, updated_at);
CREATE INDEX items_updated ON items(updated_at);
CREATE TABLE chunks(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  item_id TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  text TEXT NOT NULL,
  embed_hash TEXT NOT NULL,
  tokens INTEGER NOT NULL,
  start_line INTEGER,
  end_line INTEGER,
  UNIQUE(item_id, seq)
);
CREATE INDEX chunks_embed_hash ON chunks(embed_hash);
CREATE VIRTUAL TABLE chunks_fts USING fts5(text, title, tokenize = 'porter unicode61 remove_diacritics 2');
CREATE TABLE embeddings(
  model TEXT NOT NULL,
  text_hash TEXT NOT NULL,
  dim INTEGER NOT NULL,
  vector BLOB NOT NULL,
  PRIMARY KEY(model, text_hash)
) WITHOUT ROWID;
CREATE TABLE chunk_deletions(seq INTEGER PRIMARY KEY AUTOINCREMENT, chunk_id INTEGER NOT NULL);
CREATE TRIGGER chunks_after_insert AFTER INSERT ON chunks BEGIN
  INSERT INTO chunks_fts(rowid, text, title) VALUES (new.id, new.text, (SELECT title FROM items WHERE id = new.item_id));
END;
CREATE TRIGGER chunks_after_delete AFTER DELETE ON chunks BEGIN
  DELETE FROM chunks_fts WHERE rowid = old.id;
  INSERT INTO chunk_deletions(chunk_id) VALUES (old.id);
END;
CREATE TABLE embed_usage(
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  model TEXT NOT NULL,
  texts INTEGER NOT NULL,
  tokens INTEGER NOT NULL,
  cost_usd REAL NOT NULL
);
CREATE INDEX embed_usage_at ON embed_usage(at);
CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""),
    # issue 7 (app/brain/gpu/control.py): the GPU VM's cost ledger, its last seen state, requests in flight
    (2, "gpu ledger, state, requests in flight", """
CREATE TABLE gpu_ledger(
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  event TEXT NOT NULL CHECK (event IN ('start', 'stop')),
  rate_hourly REAL NOT NULL,
  origin TEXT NOT NULL,
  note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX gpu_ledger_at ON gpu_ledger(at);
CREATE INDEX gpu_ledger_instance ON gpu_ledger(instance_id, id);
CREATE TABLE gpu_state(
  instance_id TEXT PRIMARY KEY,
  status TEXT NOT NULL DEFAULT '',
  ip TEXT NOT NULL DEFAULT '',
  rate_hourly REAL,
  observed_at TEXT,
  start_requested_at TEXT,
  last_ask_at TEXT
);
CREATE TABLE gpu_inflight(
  id INTEGER PRIMARY KEY,
  started_at TEXT NOT NULL,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  what TEXT NOT NULL
);
"""),
    # issue 11: ingest stores, embedding follows. Vectors get a rowid, so each process's vector index
    # can load the vectors added since it last looked (and a 1.5 kB vector shares a page instead of
    # taking an overflow page of its own as it did in the WITHOUT ROWID table); the queue holds the
    # chunk texts still waiting for a vector of a model, oldest first.
    (3, "embedding queue, vectors by rowid", """
CREATE TABLE embeddings_v3(
  id INTEGER PRIMARY KEY,
  model TEXT NOT NULL,
  text_hash TEXT NOT NULL,
  dim INTEGER NOT NULL,
  vector BLOB NOT NULL,
  UNIQUE(model, text_hash)
);
INSERT INTO embeddings_v3(model, text_hash, dim, vector) SELECT model, text_hash, dim, vector FROM embeddings;
DROP TABLE embeddings;
ALTER TABLE embeddings_v3 RENAME TO embeddings;
CREATE TABLE embed_queue(
  id INTEGER PRIMARY KEY,
  model TEXT NOT NULL,
  text_hash TEXT NOT NULL,
  queued_at TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  UNIQUE(model, text_hash)
);
CREATE INDEX embed_queue_model_attempts ON embed_queue(model, attempts, id);
"""),
    # issue 16: forgetting that sticks. A tombstone is the rule (brain.shared.tombstones) that deleted some
    # items; ingest refuses what it matches, the collectors fetch the rules and skip such items.
    (4, "tombstones", """
CREATE TABLE tombstones(
  id INTEGER PRIMARY KEY,
  rule_key TEXT NOT NULL UNIQUE,
  rule TEXT NOT NULL,
  created_at TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0
);
"""),
    # issue 12: times before year 1000 were written with an unpadded year ("1-01-01T..."), which sorts
    # after "2026-..." as text; left-pad them to the canonical 24 characters (timeutil.fmt)
    (5, "zero-padded years", """
UPDATE items SET created_at = substr('000' || created_at, -24) WHERE length(created_at) BETWEEN 21 AND 23;
UPDATE items SET updated_at = substr('000' || updated_at, -24) WHERE length(updated_at) BETWEEN 21 AND 23;
"""),
    # issue 16: the web page's sign-in (app/brain/api/web_auth.py): sessions by the sha256 of their
    # cookie, and failed sign-ins for the rate limit, shared by every gunicorn worker
    (6, "web sessions, failed sign-ins", """
CREATE TABLE web_sessions(
  key TEXT PRIMARY KEY,
  csrf TEXT NOT NULL,
  token_fp TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL
);
CREATE TABLE web_signin_failures(id INTEGER PRIMARY KEY, at TEXT NOT NULL, client TEXT NOT NULL);
CREATE INDEX web_signin_failures_at ON web_signin_failures(at);
"""),
    # issue 13, point 2: each chunk's header (what it is: a file's symbols, a page's URL, a session's
    # project; embedded with its text and indexed) and its split identifiers (indexed only); the FTS
    # row's title column holds the item's title, the header and the terms. Rows written before keep
    # '' and are embedded and indexed as before until their item is chunked again: items.chunking is
    # the chunker that cut an item (1 before this), and the embedding worker chunks older ones again
    # (Store.rechunk)
    (7, "chunk headers and identifier terms", """
ALTER TABLE chunks ADD COLUMN header TEXT NOT NULL DEFAULT '';
ALTER TABLE chunks ADD COLUMN terms TEXT NOT NULL DEFAULT '';
ALTER TABLE items ADD COLUMN chunking INTEGER NOT NULL DEFAULT 1;
CREATE INDEX items_chunking ON items(chunking);
DROP TRIGGER chunks_after_insert;
CREATE TRIGGER chunks_after_insert AFTER INSERT ON chunks BEGIN
  INSERT INTO chunks_fts(rowid, text, title) VALUES (new.id, new.text,
    rtrim((SELECT title FROM items WHERE id = new.item_id) || char(10) || new.header || char(10) || new.terms, char(10)));
END;
"""),
    # the web page's known browsers (web_auth.remember_browser): one that has signed in before is
    # not held back by the cap on everyone's failed sign-ins, so guessers cannot lock the owner out
    (8, "known browsers", """
CREATE TABLE web_browsers(key TEXT PRIMARY KEY, created_at TEXT NOT NULL, seen_at TEXT NOT NULL);
CREATE INDEX web_browsers_seen ON web_browsers(seen_at);
"""),
]

# the chunker's version: 2 = tree-sitter definitions, chunk headers, split identifiers (issue 13). An item
# cut by an older one is chunked again by the embedding worker when it has nothing else to do (Store.rechunk)
CHUNKING = 2

# a queued text the embedder refused this many times (a permanent error, e.g. input too long) is
# parked: it stays in the queue, counted as failed in the stats, and no longer blocks the rest
MAX_EMBED_ATTEMPTS = 5


class ValidationError(ValueError):
    """Bad input: names the field and, within a batch, the item index."""

    def __init__(self, message: str, field: str | None = None, index: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.index = index


def _create_private(path: Path) -> None:
    """Create the database's directory (0700) and an empty database file (0600) if missing.

    Why before SQLite opens it: SQLite creates a new file with the process umask (0644 under
    a hand-started ``brain serve``), and gives its ``-wal``/``-shm`` files the database file's
    mode. An empty file is a valid empty database. Existing files and folders keep their mode.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect(db_path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a connection with the pragmas every user of the store relies on."""
    path = str(db_path)
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    else:
        _create_private(Path(path))
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction: committed when the block ends, rolled back if it raises.

    IMMEDIATE takes the write lock up front, so a read-then-write inside the block cannot be
    interleaved with another writer (and waits up to busy_timeout instead of failing midway)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # a full or failing disk (SQLITE_FULL, SQLITE_IOERR) may have rolled the transaction back
        # already, or failed the COMMIT itself: roll back what is left, and keep the first error
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.warning("rollback failed after an error: %s", exc)
        raise


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply pending numbered migrations, each recorded in ``schema_migrations``; return those applied."""
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "applied_at TEXT NOT NULL)")
    done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in MIGRATIONS:
        if version in done:
            continue
        with write_transaction(conn):
            if conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone():
                continue  # another process applied it meanwhile
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                         (version, name, timeutil.now()))
        applied.append(version)
    return applied


def _statements(sql: str) -> Iterable[str]:
    """Split a migration script on complete statements (triggers contain inner semicolons)."""
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf.strip()
            buf = ""
    if buf.strip():
        yield buf.strip()


# ------------------------------------------------------------------ validation


def validate_item(item: Any, index: int, max_content_bytes: int = DEFAULT_MAX_CONTENT_BYTES) -> dict[str, Any]:
    """Check one incoming item (``brain.shared.schema.Item``) and return it as the store writes it.

    An :class:`Item` already validated (brain-api validates the whole batch) is taken as it is."""
    if not isinstance(item, Item):
        try:
            item = Item.model_validate(item, context={"max_content_bytes": max_content_bytes})
        except PydanticValidationError as exc:
            problem = explain(exc, at=("items", index))
            raise ValidationError(problem.message, problem.field, index) from None
    return item.stored()


def item_hash(item: dict[str, Any]) -> str:
    """Hash of everything the client sent: unchanged hash means nothing to do."""
    canonical = json.dumps({k: item[k] for k in ITEM_FIELDS}, sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


# ------------------------------------------------------------------ ingest


@dataclass
class IngestResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    queued: int = 0  # chunk texts of this batch that wait for a vector of the configured model
    forgotten: int = 0  # items a tombstone refuses (brain.core.forgetting): dropped, the rest is stored

    def as_dict(self) -> dict[str, int]:
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged,
                "queued": self.queued, "forgotten": self.forgotten}


@dataclass
class _Prepared:
    item: dict[str, Any]
    hash: str
    exists: bool
    chunks: list[Chunk] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    embed_texts: list[str] = field(default_factory=list)


@dataclass
class QueuedText:
    """A chunk text the embedding worker is to embed (``text`` is None when no chunk holds it any more)."""

    queue_id: int
    text_hash: str
    text: str | None
    attempts: int


def _is_code(item: dict[str, Any]) -> bool:
    return item["source"] == "file" and str(item["meta"].get("language", "")).lower() in CODE_LANGUAGES


def embed_input(title: str, text: str, header: str = "") -> str:
    """What is embedded for a chunk: its item's title and the chunk's header (brain.core.headers)
    give the vector context the text may lack."""
    return "\n".join(x for x in (title, header, text) if x) if header else (f"{title}\n{text}" if title else text)


class Store:
    """Operations on one open connection (a request's, or a CLI command's)."""

    def __init__(self, conn: sqlite3.Connection, chunk_tokens: int = 200, chunk_overlap: int = 32, *,
                 parse_code: bool = True, headers: bool = True, embed_headers: bool = False, terms: bool = True):
        """``parse_code``, ``headers``, ``terms``: cut code at the definitions a tree-sitter grammar
        finds, give each chunk a header, index its split identifiers (issue 13, point 2; off only to
        measure the search without them, bench/retrieval_eval.py). ``embed_headers``: the header is
        embedded with the text too (column ``header``); by default it is indexed only (column
        ``terms``), because embedding it made the vectors worse on the evaluation's development half
        (docs/PERFORMANCE.md)."""
        self.conn = conn
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.parse_code = parse_code
        self.headers = headers
        self.embed_headers = embed_headers
        self.terms = terms

    # -- ingest ----------------------------------------------------------------

    def upsert(self, items: Sequence[Any], model: TextModel, max_content_bytes: int = DEFAULT_MAX_CONTENT_BYTES) -> IngestResult:
        """Validate, chunk and write the whole batch in one transaction; queue new texts for embedding.

        Why no embedding here: the embedder (a CPU model or a remote API) may be slow, busy or down,
        and a collector must not hold a request open for it. The text is searchable by BM25 as soon
        as this returns; the embedding worker adds the vectors (``brain embed-worker``)."""
        clean = [validate_item(it, i, max_content_bytes) for i, it in enumerate(items)]
        seen: dict[str, int] = {}
        for i, it in enumerate(clean):
            if it["id"] in seen:
                raise ValidationError(f"items[{i}].id {it['id']!r} repeats items[{seen[it['id']]}]", "id", i)
            seen[it["id"]] = i
        result = IngestResult()
        clean = self._drop_forgotten(clean, result)
        existing = self._existing_hashes([it["id"] for it in clean])
        todo: list[_Prepared] = []
        for it in clean:
            h = item_hash(it)
            if existing.get(it["id"]) == h:
                result.unchanged += 1
                continue
            todo.append(_Prepared(it, h, it["id"] in existing))
        self._chunk(todo, model)
        self._write(todo, model.model_id, result)
        return result

    def _chunk(self, todo: list[_Prepared], model: TextModel) -> None:
        """Chunk each prepared item, with its chunks' headers, terms and embedded texts."""
        max_tokens = max(16, min(self.chunk_tokens, model.max_tokens - 8))
        counted, specials = line_token_counts([p.item["content"] for p in todo], model.count_tokens)
        for p, per_line in zip(todo, counted):
            code = _is_code(p.item)
            language = str(p.item["meta"].get("language", "")).lower() if code and self.parse_code else None
            p.chunks = chunk_text(p.item["content"], code=code, max_tokens=max_tokens,
                                  overlap=min(self.chunk_overlap, max_tokens // 2), count=model.count_tokens,
                                  line_tokens=(per_line, specials), language=language)
            headers = [chunk_header(p.item, c.symbols) if self.headers else "" for c in p.chunks]
            p.headers = headers if self.embed_headers else [""] * len(headers)
            p.terms = [" ".join(x for x in ("" if self.embed_headers else h, identifier_terms(f"{h}\n{c.text}")
                                            if self.terms else "") if x) for c, h in zip(p.chunks, headers)]
            p.embed_texts = [embed_input(p.item["title"], c.text, h) for c, h in zip(p.chunks, p.headers)]

    def rechunk(self, model: TextModel, limit: int = 20) -> int:
        """Chunk again, as ingest does now, up to ``limit`` items an older chunker cut
        (``items.chunking`` < ``CHUNKING``); return how many. Their unchanged leading chunks keep
        their rows; new texts are queued for the embedding worker, which calls this when its queue
        is empty (so a store written before issue 13 moves to the new chunks by itself). One short
        transaction per call: an ingest of the same item in between is not overwritten."""
        with write_transaction(self.conn):
            rows = self.conn.execute(
                "SELECT id, source, title, uri, project, created_at, updated_at, content, meta, content_hash "
                "FROM items WHERE chunking < ? LIMIT ?", (CHUNKING, limit)).fetchall()
            if not rows:
                return 0
            todo = [_Prepared({"id": r[0], "source": r[1], "title": r[2], "uri": r[3], "project": r[4],
                               "created_at": r[5], "updated_at": r[6], "content": r[7],
                               "meta": json.loads(r[8] or "{}")}, r[9], True) for r in rows]
            self._chunk(todo, model)
            now = timeutil.now()
            for p in todo:
                self._write_chunks(p, p.item["title"])
                self.conn.execute("UPDATE items SET chunking = ? WHERE id = ?", (CHUNKING, p.item["id"]))
            self._queue(model.model_id, list(dict.fromkeys(text_hash(t) for p in todo for t in p.embed_texts)), now)
        return len(rows)

    def _drop_forgotten(self, items: list[dict[str, Any]], result: IngestResult) -> list[dict[str, Any]]:
        """The items no tombstone matches; the others are counted in ``result.forgotten``.

        Why dropped and not a 400: a collector that has not learnt a new tombstone yet must still
        deliver the rest of its batch. ``_write`` checks again inside its transaction, so a forget
        that lands between this check and the write still wins."""
        rules = load_tombstone_rules(self.conn)
        if not rules:
            return items
        kept = [it for it in items if first_match(rules, it) is None]
        result.forgotten += len(items) - len(kept)
        return kept

    def _existing_hashes(self, ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for row in self.conn.execute(f"SELECT id, content_hash FROM items WHERE id IN ({marks})", part):
                out[row[0]] = row[1]
        return out

    def missing_hashes(self, model: str, hashes: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(hashes))
        have: set[str] = set()
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            marks = ",".join("?" * len(part))
            have.update(r[0] for r in self.conn.execute(
                f"SELECT text_hash FROM embeddings WHERE model = ? AND text_hash IN ({marks})", [model, *part]))
        return set(wanted) - have

    def _write(self, todo: list[_Prepared], model: str, result: IngestResult) -> None:
        now = timeutil.now()
        conn = self.conn
        with write_transaction(conn):
            kept = {id(it) for it in self._drop_forgotten([p.item for p in todo], result)}
            todo = [p for p in todo if id(p.item) in kept]
            for p in todo:
                self._write_item(p, now)
                if p.exists:
                    result.updated += 1
                else:
                    result.inserted += 1
            if todo:
                hashes = list(dict.fromkeys(text_hash(t) for p in todo for t in p.embed_texts))
                result.queued = self._queue(model, hashes, now)
                # the deletion log only needs to outlive the slowest process's last sync
                conn.execute("DELETE FROM chunk_deletions WHERE seq < (SELECT max(seq) FROM chunk_deletions) - 500000")
                conn.execute("INSERT INTO kv(key, value) VALUES ('last_ingest_at', ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (now,))

    def _queue(self, model: str, hashes: list[str], now: str) -> int:
        """Queue the hashes that have no vector of ``model``; return how many of them now wait (new or not)."""
        waiting = 0
        for h in hashes:
            if self.conn.execute("SELECT 1 FROM embeddings WHERE model = ? AND text_hash = ?", (model, h)).fetchone():
                continue
            self.conn.execute("INSERT OR IGNORE INTO embed_queue(model, text_hash, queued_at) VALUES (?, ?, ?)",
                              (model, h, now))
            waiting += 1
        return waiting

    def _write_item(self, p: _Prepared, now: str) -> None:
        it = p.item
        meta = json.dumps(it["meta"], ensure_ascii=False, sort_keys=True)
        old_title, old_created = None, None
        if p.exists:
            row = self.conn.execute("SELECT title, created_at FROM items WHERE id = ?", (it["id"],)).fetchone()
            if row:
                old_title, old_created = row[0], row[1]
        created = it["created_at"] or old_created or it["updated_at"] or now
        updated = it["updated_at"] or (now if p.exists else created)
        self.conn.execute(
            "INSERT INTO items(id, source, title, uri, project, created_at, updated_at, content, meta, content_hash, "
            "ingested_at, chunking) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET source=excluded.source, "
            "title=excluded.title, uri=excluded.uri, project=excluded.project, created_at=excluded.created_at, "
            "updated_at=excluded.updated_at, content=excluded.content, meta=excluded.meta, "
            "content_hash=excluded.content_hash, ingested_at=excluded.ingested_at, chunking=excluded.chunking",
            (it["id"], it["source"], it["title"], it["uri"], it["project"], created, updated,
             it["content"], meta, p.hash, now, CHUNKING))
        self._write_chunks(p, old_title)

    def _write_chunks(self, p: _Prepared, old_title: str | None) -> None:
        """Replace an item's chunks by ``p.chunks``, keeping the unchanged leading ones (rows, ids, vectors)."""
        it = p.item
        keep = 0
        if p.exists and old_title == it["title"]:
            # a grown session or an appended file keeps its unchanged leading chunks (and their vectors)
            # (a chunk whose indexed terms changed is written again, so the text index holds them)
            old = self.conn.execute("SELECT seq, embed_hash, terms FROM chunks WHERE item_id = ? ORDER BY seq",
                                    (it["id"],)).fetchall()
            new_keys = [(text_hash(t), terms) for t, terms in zip(p.embed_texts, p.terms)]
            while keep < min(len(old), len(new_keys)) and (old[keep][1], old[keep][2]) == new_keys[keep]:
                keep += 1
        self.conn.execute("DELETE FROM chunks WHERE item_id = ? AND seq >= ?", (it["id"], keep))
        self.conn.executemany(
            "INSERT INTO chunks(item_id, seq, text, embed_hash, tokens, start_line, end_line, header, terms) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            [(it["id"], seq, c.text, text_hash(t), c.tokens, c.start_line, c.end_line, h, terms)
             for seq, (c, t, h, terms) in enumerate(zip(p.chunks, p.embed_texts, p.headers, p.terms)) if seq >= keep])

    # -- read / delete -----------------------------------------------------------

    def get(self, item_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT i.*, (SELECT count(*) FROM chunks c WHERE c.item_id = i.id) AS chunks "
                                "FROM items i WHERE id = ?", (item_id,)).fetchone()
        return row_to_item(row, with_content=True) if row else None

    def list(self, *, source: str | None = None, project: str | None = None, since: str | None = None,
             until: str | None = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        where, args = filter_sql("i", source=source, project=project, since=since, until=until)
        rows = self.conn.execute(
            f"SELECT i.id, i.source, i.title, i.uri, i.project, i.created_at, i.updated_at, i.meta FROM items i "
            f"WHERE {where} ORDER BY i.updated_at DESC, i.id LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        return [row_to_item(r) for r in rows]

    def delete(self, item_id: str) -> int:
        with write_transaction(self.conn):
            n = self.conn.execute("DELETE FROM items WHERE id = ?", (item_id,)).rowcount
        return n

    def forget(self, *, source: str | None = None, project: str | None = None, id_prefix: str | None = None,
               since: str | None = None, until: str | None = None) -> int:
        """Delete every item matching all given filters (at least one is required)."""
        if not any((source, project, id_prefix, since, until)):
            raise ValidationError("forget needs at least one of source, project, id_prefix, since, until")
        where, args = filter_sql("items", source=source, project=project, since=since, until=until)
        if id_prefix:
            where += " AND substr(items.id, 1, ?) = ?"
            args += [len(id_prefix), id_prefix]
        with write_transaction(self.conn):
            n = self.conn.execute(f"DELETE FROM items WHERE {where}", args).rowcount
        return n

    def stats(self, model: str) -> dict[str, Any]:
        items = {r[0]: r[1] for r in self.conn.execute("SELECT source, count(*) FROM items GROUP BY source")}
        chunks = {r[0]: r[1] for r in self.conn.execute(
            "SELECT i.source, count(*) FROM chunks c JOIN items i ON i.id = c.item_id GROUP BY i.source")}
        vectors = self.conn.execute(
            "SELECT count(*) FROM chunks c JOIN embeddings e ON e.model = ? AND e.text_hash = c.embed_hash",
            (model,)).fetchone()[0]
        total_chunks = sum(chunks.values())
        page = self.conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        last = self.conn.execute("SELECT value FROM kv WHERE key = 'last_ingest_at'").fetchone()
        return {"items": items, "chunks": chunks, "total_items": sum(items.values()), "total_chunks": total_chunks,
                "vectors": vectors, "missing_vectors": total_chunks - vectors, "db_bytes": page * pages,
                "embedding_model": model, "last_ingest_at": last[0] if last else None,
                "embedding": self.backlog(model)}

    # -- the embedding queue ---------------------------------------------------------

    def queue_all(self, model: str) -> int:
        """Queue every chunk text that has no vector of ``model`` (a new model: ``brain reindex``)."""
        with write_transaction(self.conn):
            return self.conn.execute(
                "INSERT OR IGNORE INTO embed_queue(model, text_hash, queued_at) "
                "SELECT DISTINCT ?, c.embed_hash, ? FROM chunks c WHERE NOT EXISTS "
                "(SELECT 1 FROM embeddings e WHERE e.model = ? AND e.text_hash = c.embed_hash)",
                (model, timeutil.now(), model)).rowcount

    def claim(self, model: str, limit: int) -> builtins.list[QueuedText]:
        """The oldest queued texts of ``model`` not yet parked, with the text each hash stands for.

        Nothing is locked or marked: only the embedding worker (one per database, by its lock file)
        takes from the queue, and a batch leaves it in the same transaction that stores its vectors,
        so a worker killed mid-batch simply finds the same batch again."""
        rows = self.conn.execute(
            "SELECT id, text_hash, attempts FROM embed_queue WHERE model = ? AND attempts < ? ORDER BY attempts, id "
            "LIMIT ?", (model, MAX_EMBED_ATTEMPTS, limit)).fetchall()
        out = []
        for r in rows:
            src = self.conn.execute("SELECT i.title, c.text, c.header FROM chunks c JOIN items i ON i.id = c.item_id "
                                    "WHERE c.embed_hash = ? LIMIT 1", (r[1],)).fetchone()
            out.append(QueuedText(r[0], r[1], embed_input(src[0], src[1], src[2]) if src else None, r[2]))
        return out

    def store_vectors(self, model: str, done: Sequence[tuple[QueuedText, np.ndarray]], dropped: Sequence[QueuedText],
                      tokens: int, price_per_mtok: float) -> None:
        """Store a batch's vectors and take it (and texts no chunk holds any more) off the queue, atomically."""
        now = timeutil.now()
        with write_transaction(self.conn):
            for q, vec in done:
                self.conn.execute("INSERT OR IGNORE INTO embeddings(model, text_hash, dim, vector) VALUES (?, ?, ?, ?)",
                                  (model, q.text_hash, int(vec.shape[0]), np.asarray(vec, np.float32).tobytes()))
            ids = [q.queue_id for q, _ in done] + [q.queue_id for q in dropped]
            for start in range(0, len(ids), 500):
                part = ids[start:start + 500]
                self.conn.execute(f"DELETE FROM embed_queue WHERE id IN ({','.join('?' * len(part))})", part)
            if done:
                self.conn.execute("INSERT INTO embed_usage(at, model, texts, tokens, cost_usd) VALUES (?, ?, ?, ?, ?)",
                                  (now, model, len(done), tokens, tokens * price_per_mtok / 1_000_000))

    def mark_failed(self, model: str, texts: Sequence[QueuedText], error: str) -> None:
        """Count a refusal against each text; after MAX_EMBED_ATTEMPTS it is parked (see ``claim``)."""
        with write_transaction(self.conn):
            self.conn.executemany("UPDATE embed_queue SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                                  [(error[:500], q.queue_id) for q in texts])

    def backlog(self, model: str | None = None, now: str | None = None) -> dict[str, dict[str, Any]]:
        """Per model: texts queued, parked after repeated failures, vectors held, the last minute's rate, time left."""
        now = now or timeutil.now()
        minute_ago = timeutil.fmt(timeutil.parse(now) - timedelta(seconds=60))
        out: dict[str, dict[str, Any]] = {}
        for r in self.conn.execute("SELECT model, count(*), coalesce(sum(attempts >= ?), 0) FROM embed_queue "
                                   "GROUP BY model", (MAX_EMBED_ATTEMPTS,)):
            out[r[0]] = {"queued": r[1] - r[2], "failed": r[2]}
        for r in self.conn.execute("SELECT model, count(*) FROM embeddings GROUP BY model"):
            out.setdefault(r[0], {"queued": 0, "failed": 0})["embedded"] = r[1]
        if model:
            out.setdefault(model, {"queued": 0, "failed": 0})
        for name, entry in out.items():
            entry.setdefault("embedded", 0)
            done = _rate_per_min(self.conn.execute(
                "SELECT at, texts FROM embed_usage WHERE model = ? AND at >= ? AND at <= ? ORDER BY at",
                (name, minute_ago, now)).fetchall())
            entry["rate_per_min"] = done
            entry["eta_seconds"] = math.ceil(entry["queued"] * 60 / done) if done and entry["queued"] else (
                0 if not entry["queued"] else None)
            err = self.conn.execute("SELECT last_error FROM embed_queue WHERE model = ? AND last_error != '' "
                                    "ORDER BY id DESC LIMIT 1", (name,)).fetchone()
            entry["last_error"] = err[0] if err else None
        return out

    def embed_usage(self, since: str, until: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT coalesce(sum(texts),0), coalesce(sum(tokens),0), coalesce(sum(cost_usd),0) "
                                "FROM embed_usage WHERE at >= ? AND at < ?", (since, until)).fetchone()
        return {"texts": row[0], "tokens": row[1], "cost_usd": row[2]}


def _rate_per_min(batches: list[sqlite3.Row]) -> int:
    """Texts a minute over the last minute's batches (``at`` is when each batch was stored).

    With two or more batches the rate is measured between the first and the last (the first one's
    own duration is unknown, so its texts are left out); one batch alone counts as its texts a
    minute, which is a floor, not a guess."""
    if len(batches) < 2:
        return sum(b[1] for b in batches)
    span = (timeutil.parse(batches[-1][0]) - timeutil.parse(batches[0][0])).total_seconds()
    later = sum(b[1] for b in batches[1:])
    return round(later * 60 / span) if span > 0 else sum(b[1] for b in batches)


def load_tombstone_rules(conn: sqlite3.Connection) -> list[Rule]:
    """Every tombstone's rule, oldest first: a small table, read on each ingest (brain.core.forgetting
    writes it)."""
    return rules_from(json.loads(r[0]) for r in conn.execute("SELECT rule FROM tombstones ORDER BY id"))


def filter_sql(alias: str, *, source: str | None = None, project: str | None = None, since: str | None = None,
               until: str | None = None) -> tuple[str, list[Any]]:
    """WHERE fragment for the item filters; since/until select items active in the window."""
    where = ["1"]
    args: list[Any] = []
    if source:
        where.append(f"{alias}.source = ?")
        args.append(source)
    if project:
        where.append(f"{alias}.project = ?")
        args.append(project)
    if since:
        where.append(f"{alias}.updated_at >= ?")
        args.append(since)
    if until:
        where.append(f"{alias}.created_at <= ?")
        args.append(until)
    return " AND ".join(where), args


def row_to_item(row: sqlite3.Row, with_content: bool = False) -> dict[str, Any]:
    keys = row.keys()
    out = {k: row[k] for k in ("id", "source", "title", "uri", "project", "created_at", "updated_at")}
    out["meta"] = json.loads(row["meta"]) if row["meta"] else {}
    if with_content:
        out["content"] = row["content"]
        out["content_hash"] = row["content_hash"]
        out["ingested_at"] = row["ingested_at"]
    if "chunks" in keys:
        out["chunks"] = row["chunks"]
    return out
