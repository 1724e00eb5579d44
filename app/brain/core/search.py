"""Hybrid search: FTS5 BM25 and exact vector cosine, fused with reciprocal rank fusion.

Why an in-memory NumPy matrix rather than a vector extension: measured on 2 cores, an exact
matrix-vector product over 50k x 384 float32 takes ~3 ms against ~23 ms for sqlite-vec, and the
stdlib sqlite3 here cannot load extensions anyway (docs/PERFORMANCE.md). Each process keeps the
matrix in step with the database incrementally: new chunk rows are appended by id, deleted ones
are read from the ``chunk_deletions`` log that a trigger writes, so an ingest never forces a
full reload.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brain.core.embed import Embedder, EmbedError
from brain.core.headers import split_identifier
from brain.core.search_index import (
    HAVE_FAISS,
    HAVE_TANTIVY,
    Marks,
    TextIndexReader,
    db_file,
    follows,
    index_dir,
    open_vector_snapshot,
    read_vector_pointer,
    vector_pointer,
)
from brain.core.store import filter_sql

log = logging.getLogger(__name__)

RRF_K = 60
MODES = ("hybrid", "vector", "bm25")


@dataclass(frozen=True)
class Fusion:
    """How hybrid search combines its ranked lists (reciprocal rank fusion, RRF).

    ``weights``: each signal's weight in the fused score. ``by_item``: rank items, not chunks, in each
    signal before fusing (an item's rank is that of its best chunk), and let its further chunks add
    ``extra`` times their own contribution: a file whose several chunks match is more likely the
    answer than a file with one lucky chunk. Chosen on the evaluation's development half
    (bench/retrieval_eval.py, docs/PERFORMANCE.md)."""

    weights: tuple[tuple[str, float], ...] = (("bm25", 1.0), ("vector", 1.0))
    by_item: bool = False
    extra: float = 0.0
    k: int = RRF_K
    extra_max: int | None = None  # at most this many further chunks of an item count (None: all)

    def weight(self, signal: str) -> float:
        return dict(self.weights).get(signal, 1.0)


DEFAULT_FUSION = Fusion()


def fuse_chunks(ranked: dict[str, list[tuple[int, float]]], fusion: Fusion) -> dict[int, float]:
    """Weighted RRF over chunk ranks: what each chunk scores."""
    fused: dict[int, float] = {}
    for signal, hits in ranked.items():
        w = fusion.weight(signal)
        for rank, (cid, _score) in enumerate(hits, 1):
            fused[cid] = fused.get(cid, 0.0) + w / (fusion.k + rank)
    return fused


def fuse_items(ranked: dict[str, list[tuple[int, float]]], owner: dict[int, str],
               fusion: Fusion) -> dict[int, float]:
    """Weighted RRF over item ranks, credited to each item's best chunk (the one shown).

    Within one signal an item's first chunk gives ``w / (k + item rank)``; each further chunk of the
    same item adds ``extra * w / (k + that chunk's rank)``."""
    by_item: dict[str, float] = {}
    best: dict[str, tuple[float, int]] = {}
    for signal, hits in ranked.items():
        w = fusion.weight(signal)
        seen: dict[str, int] = {}
        further: dict[str, int] = {}
        for rank, (cid, _score) in enumerate(hits, 1):
            item = owner.get(cid)
            if item is None:
                continue
            if item not in seen:
                seen[item] = len(seen) + 1
                gain = w / (fusion.k + seen[item])
                if item not in best or gain > best[item][0]:
                    best[item] = (gain, cid)
            else:
                further[item] = further.get(item, 0) + 1
                if fusion.extra_max is not None and further[item] > fusion.extra_max:
                    continue
                gain = fusion.extra * w / (fusion.k + rank)
            by_item[item] = by_item.get(item, 0.0) + gain
    return {cid: by_item[item] for item, (_gain, cid) in best.items()}


def _owners(conn: sqlite3.Connection, chunks: dict[int, Any]) -> dict[int, str]:
    """The item of each candidate chunk (one indexed read of the chunk rows)."""
    ids = list(chunks)
    out: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        out.update(conn.execute(f"SELECT id, item_id FROM chunks WHERE id IN ({','.join('?' * len(part))})",
                                part).fetchall())
    return out


@dataclass
class Hit:
    chunk_id: int
    item_id: str
    source: str
    title: str
    uri: str | None
    project: str | None
    created_at: str
    updated_at: str
    meta: dict[str, Any]
    seq: int
    text: str
    snippet: str
    start_line: int | None
    end_line: int | None
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    vectors_pending: bool = False  # some of the item's chunk texts still wait for a vector

    def as_result(self) -> dict[str, Any]:
        """The API's JSON shape of a result (one per item)."""
        return {"id": self.item_id, "source": self.source, "title": self.title, "uri": self.uri,
                "project": self.project, "created_at": self.created_at, "updated_at": self.updated_at,
                "meta": self.meta, "chunk": {"seq": self.seq, "start_line": self.start_line,
                                             "end_line": self.end_line},
                "snippet": self.snippet, "score": round(self.score, 6), "scores": self.scores,
                "vectors_pending": self.vectors_pending}


@dataclass
class SearchOutcome:
    hits: list[Hit]
    degraded: str | None = None  # why a signal was left out (hybrid without vectors)


class VectorIndex:
    """All vectors of one model for one database, as a normalised float32 matrix, and the HNSW
    snapshot the embedding worker keeps of them (brain.core.search_index) when there is one.

    Kept in step incrementally: chunks are added by chunk id, vectors the embedding worker stores
    later by embedding id (both only grow), deletions come from the ``chunk_deletions`` log. An
    unfiltered search asks the snapshot for candidates among the chunks it holds and scans the
    rest (those newer than the snapshot) exactly; every candidate is re-scored with its exact
    vector, so scores are those of the exact scan. A filtered search scans the matrix."""

    def __init__(self, model: str, ann_pointer: Path | None = None):
        self.model = model
        self.ids = np.zeros(0, np.int64)
        self.emb = np.zeros(0, np.int64)  # each row's embedding id
        self.mat = np.zeros((0, 0), np.float32)
        self.alive = np.zeros(0, bool)
        self.max_id = 0  # chunks up to this id were considered
        self.emb_id = 0  # vectors up to this embedding id were considered
        self.del_seq = 0
        self.ann_pointer = ann_pointer
        self._ann: Any = None  # the worker's HNSW snapshot and what it holds
        self._ann_marks: Marks | None = None
        self._ann_extra = 0  # deleted chunks still in it (skipped: as many more candidates are asked for)
        self._ann_stamp: tuple[int, int, int] | None = None
        self._ann_dead: set[int] = set()  # chunks deleted since the snapshot
        self._rest = np.zeros(0, np.int64)  # rows the snapshot does not hold
        self._order = np.zeros(0, np.int64)  # rows sorted by chunk id
        self._lock = threading.Lock()

    def _load(self, conn: sqlite3.Connection, sql: str,
              args: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = conn.execute(sql, args).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        emb = np.fromiter((r[1] for r in rows), np.int64, len(rows))
        mat = np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(len(rows), -1)
        return ids, emb, mat

    def _append(self, ids: np.ndarray, emb: np.ndarray, mat: np.ndarray) -> bool:
        if not ids.size:
            return False
        self.mat = mat.copy() if not self.mat.size else np.vstack([self.mat, mat])
        self.ids = np.concatenate([self.ids, ids])
        self.emb = np.concatenate([self.emb, emb])
        self.alive = np.concatenate([self.alive, np.ones(ids.size, bool)])
        return True

    def sync(self, conn: sqlite3.Connection) -> None:
        """Bring the matrix up to date with the database (cheap when nothing changed).

        One read transaction gives one snapshot: new chunks (id above ``max_id``) with the vectors
        that existed, and new vectors (id above ``emb_id``) of the chunks seen before, cover every
        (chunk, vector) pair not loaded yet, each once."""
        with self._lock:
            began = not conn.in_transaction
            if began:
                conn.execute("BEGIN")
            try:
                self._sync(conn)
            finally:
                if began:
                    conn.execute("COMMIT")

    def _sync(self, conn: sqlite3.Connection) -> None:
        state = conn.execute(
            "SELECT (SELECT coalesce(max(id), 0) FROM chunks), (SELECT coalesce(max(id), 0) FROM embeddings),"
            " (SELECT coalesce(max(seq), 0) FROM chunk_deletions),"
            " (SELECT coalesce(min(seq), 0) FROM chunk_deletions)").fetchone()
        max_id, emb_id, del_seq, min_del = state
        pruned_past_us = del_seq > self.del_seq and min_del > self.del_seq + 1
        changed = False
        if max_id < self.max_id or emb_id < self.emb_id or (self.max_id and pruned_past_us):
            self._reset()  # another database file (restored), or a deletion log we can no longer follow
        if self.max_id == 0 and self.emb_id == 0:
            self.del_seq = del_seq  # a fresh load reflects every deletion so far
        elif del_seq > self.del_seq:
            gone = np.fromiter((r[0] for r in conn.execute(
                "SELECT chunk_id FROM chunk_deletions WHERE seq > ? AND seq <= ?", (self.del_seq, del_seq))),
                np.int64)
            if gone.size and self.ids.size:
                self.alive &= ~np.isin(self.ids, gone)
            self._ann_dead.update(gone.tolist())
            self.del_seq = del_seq
        if emb_id > self.emb_id and self.max_id:
            changed |= self._append(*self._load(
                conn, "SELECT c.id, e.id, e.vector FROM embeddings e JOIN chunks c ON c.embed_hash = e.text_hash "
                "WHERE e.model = ? AND e.id > ? AND e.id <= ? AND c.id <= ? ORDER BY c.id",
                (self.model, self.emb_id, emb_id, self.max_id)))
        if max_id > self.max_id:
            changed |= self._append(*self._load(
                conn, "SELECT c.id, e.id, e.vector FROM chunks c JOIN embeddings e ON e.model = ? AND "
                "e.text_hash = c.embed_hash WHERE c.id > ? AND c.id <= ? AND e.id <= ? ORDER BY c.id",
                (self.model, self.max_id, max_id, emb_id)))
        self.max_id, self.emb_id = max_id, emb_id
        if self.ids.size and (~self.alive).sum() > 0.25 * self.ids.size:
            keep = self.alive
            self.ids, self.emb, self.mat, self.alive = self.ids[keep], self.emb[keep], self.mat[keep], self.alive[keep]
            changed = True
        if self._attach_ann(conn) or changed:
            self._order = np.argsort(self.ids, kind="stable")
            self._rest = self._uncovered()

    def _reset(self) -> None:
        self.ids = np.zeros(0, np.int64)
        self.emb = np.zeros(0, np.int64)
        self.mat = np.zeros((0, 0), np.float32)
        self.alive = np.zeros(0, bool)
        self.max_id = 0
        self.emb_id = 0
        self._ann = self._ann_marks = self._ann_stamp = None
        self._ann_dead = set()
        self._ann_extra = 0

    def _attach_ann(self, conn: sqlite3.Connection) -> bool:
        """Open the worker's newest snapshot when it changed and follows this database; True when
        what the snapshot covers changed."""
        if self.ann_pointer is None or not HAVE_FAISS:
            return False
        try:
            st = self.ann_pointer.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._ann_stamp:
            return False
        self._ann_stamp = stamp
        had = self._ann is not None
        self._ann = self._ann_marks = None
        snap = read_vector_pointer(self.ann_pointer, self.model) if stamp else None
        if snap is None:
            return had
        m = snap.marks
        if m.chunk_id > self.max_id or m.emb_id > self.emb_id or not follows(conn, m):
            return had  # from the future, or another database's: ignored (the worker rebuilds it)
        try:
            ann = open_vector_snapshot(snap.path)
        except (OSError, RuntimeError) as exc:
            log.info("vector snapshot %s not usable: %s", snap.path, exc)
            return had
        if ann.ntotal != snap.count:
            return had
        self._ann, self._ann_marks, self._ann_extra = ann, m, snap.dead
        self._ann_dead = {r[0] for r in conn.execute("SELECT chunk_id FROM chunk_deletions WHERE seq > ?",
                                                     (m.del_seq,))}
        return True

    def _uncovered(self) -> np.ndarray:
        if self._ann_marks is None:
            return np.arange(self.ids.size)
        m = self._ann_marks
        return np.flatnonzero((self.ids > m.chunk_id) | (self.emb > m.emb_id))

    def _rows_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        """Row of each chunk id (-1 where the matrix has none)."""
        if not self.ids.size:
            return np.full(chunk_ids.size, -1)
        pos = np.searchsorted(self.ids[self._order], chunk_ids)
        pos = np.minimum(pos, self.ids.size - 1)
        rows = self._order[pos]
        return np.where(self.ids[rows] == chunk_ids, rows, -1)

    def top(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The n best (chunk id, cosine) pairs, optionally among allowed chunk ids only."""
        with self._lock:
            if not self.ids.size:
                return []
            q = query.astype(np.float32)
            if allowed is None and self._ann is not None and self._ann_extra + len(self._ann_dead) <= 4 * n:
                return self._top_ann(q, n)
            sims = self.mat @ q
            mask = self.alive if allowed is None else self.alive & np.isin(self.ids, allowed)
            sims = np.where(mask, sims, -np.inf)
            n = min(n, int(mask.sum()))
            if n <= 0:
                return []
            best = np.argpartition(-sims, n - 1)[:n]
            best = best[np.argsort(-sims[best])]
            return [(int(self.ids[i]), float(sims[i])) for i in best]

    def _top_ann(self, q: np.ndarray, n: int) -> list[tuple[int, float]]:
        _, labels = self._ann.search(q[None, :], n + self._ann_extra + len(self._ann_dead))
        keys = labels[0][labels[0] >= 0].astype(np.int64)
        rows = self._rows_of(keys) if keys.size else np.zeros(0, np.int64)
        rows = rows[rows >= 0]
        rows = np.concatenate([rows, self._rest])
        rows = rows[self.alive[rows]]
        if not rows.size:
            return []
        rows = np.unique(rows)
        sims = self.mat[rows] @ q
        n = min(n, rows.size)
        best = np.argpartition(-sims, n - 1)[:n]
        best = best[np.argsort(-sims[best])]
        return [(int(self.ids[rows[i]]), float(sims[i])) for i in best]


_WORD = re.compile(r"\w+", re.UNICODE)


# Function words that carry no topic: in an OR query each one matches a large share of all chunks,
# all of which FTS5 must then score (measured: a median 17% of 100k chunks per query before).
# A query made only of them keeps them (``to be or not to be`` still searches something).
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves
""".split())


def query_words(q: str, split: bool = True) -> list[str]:
    """The words a BM25 search looks for: lower-cased, each once, at most 32, function words left
    out unless nothing else is left. ``split``: an identifier also brings its parts
    (``RetryCallState``: retry, call, state; ``retry_if``: retry; brain.core.headers), which the
    index holds for mixed-case identifiers."""
    words: list[str] = []
    for w in _WORD.findall(q):
        words.append(w.lower())
        if split and ("_" in w.strip("_") or any(c.isupper() for c in w[1:])):
            words += split_identifier(w)
    words = list(dict.fromkeys(words))[:32]
    return [w for w in words if w not in STOP_WORDS] or words


def fts_query(q: str, split: bool = True) -> str:
    """Free text to an FTS5 query: every word of ``query_words`` quoted (no syntax errors from user
    input), OR-ed."""
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in query_words(q, split))


class Searcher:
    """One per process: holds the embedder and the vector index of each database it searched."""

    def __init__(self, embedder: Embedder | None = None, *, model_id: str = "",
                 make_embedder: Callable[[], Embedder] | None = None, fusion: Fusion | None = None,
                 indexes: bool = True, split_identifiers: bool = True):
        """Give the embedder, or its ``model_id`` and a factory: the model is then loaded on the first
        query that needs a vector, so BM25 search works while it cannot load. ``fusion``: how the
        signals are combined (``DEFAULT_FUSION`` unless given). ``indexes``: use the search indexes
        the embedding worker keeps beside the database when they are current (False: FTS5 and the
        exact scan alone, as a benchmark's baseline). ``split_identifiers``: a query's identifiers also
        bring their parts to BM25 (``query_words``; False only to measure without)."""
        if embedder is None and (make_embedder is None or not model_id):
            raise ValueError("Searcher needs an embedder, or a model_id and make_embedder")
        self.fusion = fusion or DEFAULT_FUSION
        self.indexes = indexes
        self.split = split_identifiers
        self._embedder = embedder
        self._make = make_embedder
        self.model_id = model_id or (embedder.model_id if embedder else "")
        self._indexes: dict[str, VectorIndex] = {}
        self._text: dict[str, TextIndexReader] = {}
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            assert self._make is not None
            with self._lock:
                if self._embedder is None:
                    self._embedder = self._make()
        return self._embedder

    def index_for(self, conn: sqlite3.Connection) -> VectorIndex:
        db = db_file(conn)
        with self._lock:
            if db not in self._indexes:
                # an in-memory database ("" here) has no folder for indexes beside it
                pointer = vector_pointer(index_dir(db), self.model_id) if db and self.indexes else None
                self._indexes[db] = VectorIndex(self.model_id, pointer)
            return self._indexes[db]

    def text_index_for(self, conn: sqlite3.Connection) -> TextIndexReader | None:
        """This process's reader of the database's tantivy index (brain.core.search_index); None for
        an in-memory database."""
        db = db_file(conn)
        if not db or not self.indexes:
            return None
        with self._lock:
            if db not in self._text:
                self._text[db] = TextIndexReader(index_dir(db) / "text")
            return self._text[db]

    def warm(self, conn: sqlite3.Connection) -> str:
        """Load now what this process's first search would: the vectors and the HNSW snapshot, the
        text index and, when the store holds vectors of this model, the embedding model. Returns what
        was loaded, for the log.

        Why: at 100k chunks that is 5-10 s (docs/PERFORMANCE.md, the warm-up phase), which the first
        person to search after a restart would wait for, in every worker process."""
        index = self.index_for(conn)
        index.sync(conn)
        reader = self.text_index_for(conn)
        text = reader.warm() if reader is not None else False
        has_vectors = conn.execute("SELECT 1 FROM embeddings WHERE model = ? LIMIT 1", (self.model_id,)).fetchone()
        if has_vectors:
            self.embedder.embed(["warm up"])
        return (f"{index.ids.size:,} vectors, text index {'open' if text else 'not used'}, "
                f"embedding model {'loaded' if has_vectors else 'not needed yet'}")

    def search(self, conn: sqlite3.Connection, q: str, k: int = 10, source: str | None = None,
               project: str | None = None, since: str | None = None, until: str | None = None,
               mode: str = "hybrid", per_item: bool = True) -> list[Hit]:
        """Best k results; ``per_item`` keeps only each item's best chunk."""
        return self.run(conn, q, k, source, project, since, until, mode, per_item).hits

    def run(self, conn: sqlite3.Connection, q: str, k: int = 10, source: str | None = None,
            project: str | None = None, since: str | None = None, until: str | None = None,
            mode: str = "hybrid", per_item: bool = True) -> SearchOutcome:
        """Like ``search``, and says when hybrid search fell back to BM25 alone.

        Hybrid search uses vectors where they exist and BM25 everywhere; when the query itself
        cannot be embedded (the embedder is down) it answers from BM25 and says why. Vector mode
        has nothing to fall back on and raises the EmbedError."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        pool = max(k * (8 if per_item else 4), 50)
        filters = dict(source=source, project=project, since=since, until=until)
        ranked: dict[str, list[tuple[int, float]]] = {}
        degraded = None
        if mode in ("hybrid", "bm25"):
            ranked["bm25"] = self._bm25(conn, q, pool, filters)
        if mode in ("hybrid", "vector"):
            try:
                ranked["vector"] = self._vector(conn, q, pool, filters)
            except EmbedError as exc:
                if mode == "vector":
                    raise
                degraded = f"vector search skipped, the query could not be embedded: {exc}"
        detail: dict[int, dict[str, float]] = {}
        for signal, hits in ranked.items():
            for rank, (cid, score) in enumerate(hits, 1):
                detail.setdefault(cid, {})[signal] = round(score, 6)
                detail[cid][f"{signal}_rank"] = rank
        if per_item and self.fusion.by_item:
            fused = fuse_items(ranked, _owners(conn, detail), self.fusion)
        else:
            fused = fuse_chunks(ranked, self.fusion)
        order = sorted(fused, key=lambda c: -fused[c])
        return SearchOutcome(self._materialise(conn, order, fused, detail, q, k, per_item), degraded)

    def _bm25(self, conn: sqlite3.Connection, q: str, n: int, filters: dict[str, Any]) -> list[tuple[int, float]]:
        """The n best chunks by BM25. Without filters the tantivy index answers when it follows the
        database (brain.core.search_index; FTS5 for the chunks newer than it), else FTS5 alone (no
        JOIN per match); with
        filters FTS5 and a JOIN to the items. Snippets are made later for the few results shown."""
        match = fts_query(q, self.split)
        if not match:
            return []
        if not any(filters.values()):
            reader = self.text_index_for(conn) if HAVE_TANTIVY else None
            hits = reader.search(conn, query_words(q, self.split), n, match) if reader else None
            if hits is not None:
                return hits
            rows = conn.execute("SELECT rowid, bm25(chunks_fts, 1.0, 0.5) AS s FROM chunks_fts "
                                "WHERE chunks_fts MATCH ? ORDER BY s LIMIT ?", (match, n)).fetchall()
        else:
            where, args = filter_sql("i", **filters)
            rows = conn.execute(
                "SELECT f.rowid, bm25(chunks_fts, 1.0, 0.5) AS s FROM chunks_fts f "
                "JOIN chunks c ON c.id = f.rowid JOIN items i ON i.id = c.item_id "
                f"WHERE chunks_fts MATCH ? AND {where} ORDER BY s LIMIT ?", [match, *args, n]).fetchall()
        return [(r[0], -r[1]) for r in rows]

    def _snippets(self, conn: sqlite3.Connection, q: str, chunk_ids: list[int]) -> dict[int, str]:
        """FTS5's snippet() of the shown chunks, made in a private in-memory FTS5 table holding just
        them: snippet() needs the MATCH, and a MATCH on the whole table reads every matching chunk's
        postings again (12 ms at 20k chunks, measured), while the snippet depends only on the row's
        own text, so it is the same one (tests/core/test_search.py compares them)."""
        match = fts_query(q, self.split)
        if not match or not chunk_ids:
            return {}
        conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.shown_fts USING fts5(text, title, "
                     "tokenize = 'porter unicode61 remove_diacritics 2')")
        marks = ",".join("?" * len(chunk_ids))
        try:
            conn.execute("INSERT INTO temp.shown_fts(rowid, text, title) SELECT c.id, c.text, "
                         "rtrim(i.title || char(10) || c.header || char(10) || c.terms, char(10)) FROM chunks c "
                         f"JOIN items i ON i.id = c.item_id WHERE c.id IN ({marks})", chunk_ids)
            return {r[0]: r[1] for r in conn.execute(
                "SELECT rowid, snippet(shown_fts, 0, '[', ']', ' … ', 24) FROM temp.shown_fts WHERE shown_fts MATCH ?",
                (match,))}
        finally:
            conn.execute("DELETE FROM temp.shown_fts")

    def _vector(self, conn: sqlite3.Connection, q: str, n: int, filters: dict[str, Any]) -> list[tuple[int, float]]:
        index = self.index_for(conn)
        index.sync(conn)
        allowed = None
        if any(filters.values()):
            where, args = filter_sql("i", **filters)
            allowed = np.fromiter((r[0] for r in conn.execute(
                f"SELECT c.id FROM chunks c JOIN items i ON i.id = c.item_id WHERE {where}", args)), np.int64)
        vec = self.embedder.embed([q]).vectors[0]
        return index.top(vec, n, allowed)

    def _materialise(self, conn: sqlite3.Connection, order: list[int], fused: dict[int, float],
                     detail: dict[int, dict[str, float]], q: str, k: int, per_item: bool) -> list[Hit]:
        chosen = self._choose(conn, order, k, per_item)
        if not chosen:
            return []
        marks = ",".join("?" * len(chosen))
        rows = {r["cid"]: r for r in conn.execute(
            "SELECT c.id AS cid, c.seq, c.text, c.start_line, c.end_line, i.id, i.source, i.title, i.uri, "
            "i.project, i.created_at, i.updated_at, i.meta, EXISTS (SELECT 1 FROM chunks c2 JOIN embed_queue q "
            "ON q.model = ? AND q.text_hash = c2.embed_hash WHERE c2.item_id = i.id) AS pending "
            f"FROM chunks c JOIN items i ON i.id = c.item_id WHERE c.id IN ({marks})", [self.model_id, *chosen])}
        snippets = self._snippets(conn, q, [c for c in chosen if "bm25" in detail[c]])
        hits = []
        for cid in chosen:
            r = rows.get(cid)
            if r is None:  # deleted between the ranking and now
                continue
            hits.append(Hit(
                chunk_id=cid, item_id=r["id"], source=r["source"], title=r["title"], uri=r["uri"],
                project=r["project"], created_at=r["created_at"], updated_at=r["updated_at"],
                meta=json.loads(r["meta"] or "{}"), seq=r["seq"], text=r["text"],
                snippet=snippets.get(cid) or make_snippet(r["text"], q), start_line=r["start_line"],
                end_line=r["end_line"], score=fused[cid], scores=detail[cid], vectors_pending=bool(r["pending"])))
        return hits

    @staticmethod
    def _choose(conn: sqlite3.Connection, order: list[int], k: int, per_item: bool) -> list[int]:
        """The first k chunk ids of ``order`` (one per item when ``per_item``), reading only chunk rows:
        an item's row (whose content may span many pages) is read for the k results alone."""
        chosen: list[int] = []
        seen: set[str] = set()
        for start in range(0, len(order), 200):
            part = order[start:start + 200]
            marks = ",".join("?" * len(part))
            owner = dict(conn.execute(f"SELECT id, item_id FROM chunks WHERE id IN ({marks})", part).fetchall())
            for cid in part:
                item = owner.get(cid)
                if item is None or (per_item and item in seen):
                    continue
                seen.add(item)
                chosen.append(cid)
                if len(chosen) >= k:
                    return chosen
        return chosen


def make_snippet(text: str, q: str, width: int = 240) -> str:
    """For a chunk found by meaning only: the window around the first query word it contains."""
    words = [w.lower() for w in _WORD.findall(q) if len(w) > 2]
    low = text.lower()
    pos = min((p for p in (low.find(w) for w in words) if p >= 0), default=0)
    start = max(0, pos - width // 3)
    piece = " ".join(text[start:start + width].split())
    return ("… " if start else "") + piece + (" …" if start + width < len(text) else "")


def timed_search(searcher: Searcher, conn: sqlite3.Connection, q: str, **kw: Any) -> tuple[list[Hit], float]:
    t = time.perf_counter()
    hits = searcher.search(conn, q, **kw)
    return hits, (time.perf_counter() - t) * 1000
