"""Search indexes kept beside the database: a tantivy BM25 index and a faiss HNSW vector index.

Why: at 100k chunks FTS5 has to score every chunk that holds any query word (no top-k pruning),
and an exact scan reads the whole 150 MB vector matrix per query; tantivy (block-max WAND) and an
HNSW graph answer the same questions in a fraction of the time (docs/PERFORMANCE.md, measured side
by side by ``bench/store_bench.py``). The rules that keep them honest:

- The database is the truth and an index is a cache of it. Chunk rows never change once written
  (an edit deletes and inserts), so an index is fully described by a ``Marks``: the highest chunk id
  and embedding id it holds, the last ``chunk_deletions`` entry it applied, and the text hash of
  its highest chunk (which tells this database's history from a restored or replaced file's).
- One writer: ``IndexKeeper``, run by the embedding worker (one per database by its lock). The API
  processes only read. Every change is committed with its marks in one atomic step (a tantivy
  commit holds a marks document; a vector snapshot is a complete file named by a pointer file that
  is replaced by rename), so a SIGKILL leaves the last complete state, never a half-written one.
- A reader uses the text index for the chunks it holds (less those deleted since) and FTS5 for the
  newer ones; the vector index answers for the chunks it holds, and the exact matrix for the rest
  (``VectorIndex`` in brain.core.search). A stale, foreign or unreadable index is ignored by readers
  and rebuilt from the database by the keeper.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# without them (a laptop-only install) search uses FTS5 and the exact scan alone; imported when used
HAVE_TANTIVY = importlib.util.find_spec("tantivy") is not None
HAVE_FAISS = importlib.util.find_spec("faiss") is not None

TEXT_FORMAT = 2  # bump to make every keeper rebuild its text index (schema or analyzer change)
COMMIT_EVERY = 20_000  # chunks added per tantivy commit while catching up (progress survives a kill)
TAIL_MAX = 20_000  # a text index further behind the database than this is left to FTS5 alone


@dataclass(frozen=True)
class Marks:
    """The database state an index reflects (see the module doc)."""

    chunk_id: int = 0
    del_seq: int = 0
    emb_id: int = 0
    anchor: str = ""  # embed_hash of the chunk ``chunk_id``


def db_marks(conn: sqlite3.Connection) -> Marks:
    """The database's marks, in one statement (one snapshot)."""
    r = conn.execute(
        "SELECT m.id, coalesce((SELECT embed_hash FROM chunks WHERE id = m.id), ''),"
        " (SELECT coalesce(max(seq), 0) FROM chunk_deletions), (SELECT coalesce(max(id), 0) FROM embeddings)"
        " FROM (SELECT coalesce(max(id), 0) AS id FROM chunks) m").fetchone()
    return Marks(chunk_id=r[0], anchor=r[1], del_seq=r[2], emb_id=r[3])


def follows(conn: sqlite3.Connection, old: Marks) -> bool:
    """Whether the database's present state grew from ``old`` by the logged steps alone (so an
    index at ``old`` can be brought up to date incrementally): its anchor chunk is still there with
    the same text or was deleted since, and the deletion log still reaches back to ``old``."""
    if old.chunk_id == 0:
        return old == Marks() or not old.anchor
    row = conn.execute("SELECT embed_hash FROM chunks WHERE id = ?", (old.chunk_id,)).fetchone()
    if row is None:
        gone = conn.execute("SELECT 1 FROM chunk_deletions WHERE chunk_id = ? AND seq > ?",
                            (old.chunk_id, old.del_seq)).fetchone()
        if gone is None:
            return False
    elif row[0] != old.anchor:
        return False
    lo, hi = conn.execute("SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM chunk_deletions").fetchone()
    if hi < old.del_seq:
        return False
    return not (hi > old.del_seq and lo > old.del_seq + 1)  # entries after ``old`` were pruned unread


def index_dir(db_path: str | Path) -> Path:
    """Where a database's search indexes live: ``<db>.search/`` beside it (not backed up: rebuilt)."""
    return Path(str(db_path) + ".search")


def db_file(conn: sqlite3.Connection) -> str:
    return conn.execute("PRAGMA database_list").fetchone()[2]


# ---------------------------------------------------------------------- text (tantivy)


def _schema() -> Any:
    import tantivy

    sb = tantivy.SchemaBuilder()
    sb.add_integer_field("chunk_id", stored=True, indexed=True, fast=True)
    # the chunk's text, then its item's title, the chunk's header and split identifiers (FTS5's title column)
    sb.add_text_field("text", stored=False, tokenizer_name="brain")
    sb.add_text_field("marks", stored=True, tokenizer_name="raw")
    return sb.build()


def _open_text(path: Path) -> Any:
    """Open (or create) the tantivy index at ``path`` with the project's analyzer registered.

    The analyzer is FTS5's ``porter unicode61 remove_diacritics 2`` as near as tantivy has it:
    split on non-alphanumerics, lower-case, fold accents, English (Porter 2) stemming. A chunk is one
    field, its text followed by its item's title: FTS5's bm25() also normalises by the length of
    the whole row, and on the evaluation's development half this scored as FTS5 does (separate
    fields with the title at 0.25, 0.5 or 1.0 did worse; docs/PERFORMANCE.md)."""
    import tantivy

    path.mkdir(parents=True, exist_ok=True)
    index = tantivy.Index(_schema(), path=str(path), reuse=True)
    analyzer = (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
                .filter(tantivy.Filter.lowercase()).filter(tantivy.Filter.ascii_fold())
                .filter(tantivy.Filter.stemmer("english")).build())
    index.register_tokenizer("brain", analyzer)
    return index


def _read_marks(index: Any) -> Marks | None:
    import tantivy

    searcher = index.searcher()
    res = searcher.search(tantivy.Query.term_query(index.schema, "chunk_id", 0), 1)
    if not res.hits:
        return None
    doc = searcher.doc(res.hits[0][1])
    try:
        raw = json.loads(doc["marks"][0])
        if raw.pop("format", None) != TEXT_FORMAT:
            return None
        return Marks(**raw)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


class TextIndexReader:
    """One process's view of a database's tantivy index (thread-safe; reloads after each commit)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._index: Any = None
        self._marks: Marks | None = None
        self._meta_stamp: tuple[int, int] | None = None
        self._searcher: Any = None
        self._next_try = 0.0

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = (self.path / "meta.json").stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _refresh(self) -> None:
        stamp = self._stamp()
        if stamp is None:
            self._index = self._searcher = self._marks = None
            self._meta_stamp = None
            return
        if stamp == self._meta_stamp and self._index is not None:
            return
        if self._index is None:
            if time.monotonic() < self._next_try:
                return
            try:
                self._index = _open_text(self.path)
            except (OSError, ValueError) as exc:  # being created, or an incompatible format: FTS5 meanwhile
                log.info("text index %s not usable: %s", self.path, exc)
                self._next_try = time.monotonic() + 5
                return
        self._index.reload()
        self._searcher = self._index.searcher()
        self._marks = _read_marks(self._index)
        self._meta_stamp = stamp

    def _refreshed(self) -> bool:
        """(With the lock held) follow the index's last commit; True if it can answer."""
        try:
            self._refresh()
        except (OSError, ValueError) as exc:
            log.info("text index %s not usable: %s", self.path, exc)
            self._index = None
            return False
        return self._searcher is not None and self._marks is not None

    def warm(self) -> bool:
        """Open the index now rather than in the first search; True if it is usable."""
        with self._lock:
            return self._refreshed()

    def search(self, conn: sqlite3.Connection, words: list[str], n: int,
               match: str = "") -> list[tuple[int, float]] | None:
        """The n best chunks by BM25 for any of ``words``, or None when the index cannot answer (then
        the caller asks FTS5 for everything).

        An index that is behind the database but follows it (an ingest committed since the keeper's
        last commit) still answers: chunks deleted since its marks are left out, and the chunks newer
        than its marks come from FTS5 (``match``, restricted to those rowids: a few ms), merged by
        score (both are BM25 with k1 1.2, b 0.75). Only a lag past ``TAIL_MAX`` chunks is left to
        FTS5 alone."""
        if not words:
            return []
        with self._lock:
            if not self._refreshed():
                return None
            marks, searcher, index = self._marks, self._searcher, self._index
            assert marks is not None  # _refreshed() said so
        now = db_marks(conn)
        current = (now.chunk_id, now.del_seq, now.anchor) == (marks.chunk_id, marks.del_seq, marks.anchor)
        dead: set[int] = set()
        if not current:
            if not match or now.chunk_id - marks.chunk_id > TAIL_MAX or not follows(conn, marks):
                return None
            dead = {r[0] for r in conn.execute("SELECT chunk_id FROM chunk_deletions WHERE seq > ?", (marks.del_seq,))}
            if len(dead) > TAIL_MAX:
                return None
        try:
            query = index.parse_query(" ".join(f'"{w}"' for w in words), ["text"])
            res = searcher.search(query, n + len(dead))
        except ValueError as exc:  # a word the parser refuses: FTS5 answers this one
            log.info("text index refused %r: %s", words, exc)
            return None
        hits = [(searcher.doc(addr)["chunk_id"][0], float(score)) for score, addr in res.hits]
        if current:
            return hits
        hits = [h for h in hits if h[0] not in dead]
        hits += [(r[0], -r[1]) for r in conn.execute(
            "SELECT rowid, bm25(chunks_fts, 1.0, 0.5) AS s FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid > ? "
            "ORDER BY s LIMIT ?", (match, marks.chunk_id, n))]
        return sorted(hits, key=lambda h: -h[1])[:n]


class TextIndexWriter:
    """The keeper's side of the text index: adds new chunks, deletes deleted ones, commits with marks."""

    def __init__(self, path: Path, heap_bytes: int = 64_000_000, commit_every: int = COMMIT_EVERY):
        self.path = path
        self.heap_bytes = heap_bytes
        self.commit_every = commit_every
        self._index: Any = None
        self._writer: Any = None
        self.marks = Marks()

    def _open(self) -> None:
        try:
            self._index = _open_text(self.path)
            self._writer = self._index.writer(heap_size=self.heap_bytes, num_threads=1)
            self.marks = _read_marks(self._index) or Marks()
        except (OSError, ValueError) as exc:
            log.warning("text index %s unreadable (%s): rebuilding it", self.path, exc)
            self.close()
            shutil.rmtree(self.path, ignore_errors=True)
            self._index = _open_text(self.path)
            self._writer = self._index.writer(heap_size=self.heap_bytes, num_threads=1)
            self.marks = Marks()

    def close(self) -> None:
        self._writer = None
        self._index = None

    def update(self, conn: sqlite3.Connection) -> bool:
        """Bring the index one step nearer the database (at most ``commit_every`` chunks added, one
        commit); True when it is now up to date."""
        import tantivy

        limit = self.commit_every
        if self._writer is None:
            self._open()
        conn.execute("BEGIN")
        try:
            now = db_marks(conn)
            if self.marks == Marks() or not follows(conn, self.marks):
                if self.marks != Marks():
                    log.warning("text index %s does not follow the database: rebuilding it", self.path)
                self._writer.delete_all_documents()
                start, dels = Marks(), []
            else:
                start = self.marks
                dels = [r[0] for r in conn.execute(
                    "SELECT chunk_id FROM chunk_deletions WHERE seq > ? AND seq <= ?", (start.del_seq, now.del_seq))]
            if (now.chunk_id, now.del_seq, now.anchor) == (start.chunk_id, start.del_seq, start.anchor) and start != Marks():
                return True
            rows = conn.execute("SELECT c.id, c.text, rtrim(i.title || char(10) || c.header || char(10) || c.terms, "
                                "char(10)), c.embed_hash FROM chunks c JOIN items i ON "
                                "i.id = c.item_id WHERE c.id > ? AND c.id <= ? ORDER BY c.id LIMIT ?",
                                (start.chunk_id, now.chunk_id, limit)).fetchall()
        finally:
            conn.execute("COMMIT")
        for cid in dels:
            self._writer.delete_documents_by_term("chunk_id", cid)
        for cid, text, title, _ in rows:
            self._writer.add_document(tantivy.Document(chunk_id=cid, text=f"{text}\n{title}"))
        done = len(rows) < limit
        reached = Marks(chunk_id=now.chunk_id if done else rows[-1][0], del_seq=now.del_seq,
                        anchor=now.anchor if done else rows[-1][3])
        self._writer.delete_documents_by_term("chunk_id", 0)
        self._writer.add_document(tantivy.Document(
            chunk_id=0, marks=json.dumps({"format": TEXT_FORMAT, **asdict(reached)})))
        self._writer.commit()
        self.marks = reached
        return done


# ---------------------------------------------------------------------- vectors (faiss HNSW)

VECTOR_FORMAT = 1
HNSW_M = 32  # graph degree; 48 and 64 measured beside it add what a wider search of this graph adds
# candidates a search walks the graph for (faiss's default is 16). 512: recall@10 of exact 0.980-0.999
# at 100k chunks on every query set of bench/store_bench.py whose store holds one kind of vector (256:
# 0.947-0.969 but in-distribution), for about 0.5 ms more a search (docs/PERFORMANCE.md, 2026-12-04).
# A search-time setting: no snapshot is rebuilt when it changes.
EF_SEARCH = 512
ADD_EVERY = 50_000  # chunks read per step while catching up
MAX_DEAD = 0.10  # deleted chunks still in the graph (HNSW cannot remove) before it is rebuilt


def vector_pointer(directory: Path, model_id: str) -> Path:
    """The pointer file naming a model's current vector snapshot (replaced by rename, so it always
    names a complete file)."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in model_id)
    return directory / f"vectors-{slug}.json"


def _faiss() -> Any:
    """faiss, with its OpenMP team at one thread: a search is one query per request thread, and a
    team per call costs more than it saves and spins against the other request threads (measured:
    12 ms instead of 1 ms a query at 20k chunks under load). The keeper, niced in the embedding
    worker, builds on one core too."""
    import faiss

    faiss.omp_set_num_threads(1)
    return faiss


def new_vector_index(dim: int) -> Any:
    """An empty HNSW graph (inner product over unit vectors: cosine) keyed by chunk id."""
    faiss = _faiss()
    return faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT))


def open_vector_snapshot(path: Path) -> Any:
    """A snapshot as saved by the keeper, ready to search (raises RuntimeError when unreadable)."""
    faiss = _faiss()
    index = faiss.read_index(str(path))
    faiss.downcast_index(index.index).hnsw.efSearch = EF_SEARCH
    return index


@dataclass(frozen=True)
class Snapshot:
    path: Path
    marks: Marks
    count: int
    dead: int  # of ``count``, chunks deleted before ``marks`` but still in the graph


def read_vector_pointer(pointer: Path, model_id: str) -> Snapshot | None:
    """The snapshot the pointer names, if it is complete, of ``model_id`` and in the current format."""
    try:
        doc = json.loads(pointer.read_text(encoding="utf-8"))
        if doc.get("format") != VECTOR_FORMAT or doc.get("model") != model_id:
            return None
        path = pointer.parent / doc["file"]
        if "/" in doc["file"] or path.stat().st_size != doc["bytes"]:
            return None
        return Snapshot(path, Marks(**doc["marks"]), int(doc["count"]), int(doc["dead"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VectorIndexWriter:
    """The keeper's side of the vector index: an HNSW graph of every (chunk, vector) pair of one
    model, keyed by chunk id, saved as a snapshot every ``save_every`` changes or ``save_seconds``."""

    def __init__(self, directory: Path, model_id: str, save_every: int = 5_000, save_seconds: float = 30.0,
                 add_every: int = ADD_EVERY):
        self.dir = directory
        self.model_id = model_id
        self.pointer = vector_pointer(directory, model_id)
        self.save_every = save_every
        self.save_seconds = save_seconds
        self.add_every = add_every
        self.index: Any = None
        self.marks = Marks()
        self.dead = 0
        self.unsaved = 0
        self._saved_at = 0.0
        self._loaded = False

    def _load_snapshot(self, conn: sqlite3.Connection) -> None:
        """Start from the last snapshot when it follows the database; otherwise from nothing."""
        self._loaded = True
        snap = read_vector_pointer(self.pointer, self.model_id)
        if snap is None:
            return
        try:
            if not follows(conn, snap.marks):
                log.warning("vector index %s does not follow the database: rebuilding it", snap.path)
                return
            self.index, self.marks, self.dead = open_vector_snapshot(snap.path), snap.marks, snap.dead
            self._saved_at = time.monotonic()
        except (OSError, RuntimeError) as exc:
            log.warning("vector index %s unreadable (%s): rebuilding it", snap.path, exc)
            self.index, self.marks, self.dead = None, Marks(), 0

    def update(self, conn: sqlite3.Connection) -> bool:
        """One bounded step: deletions, vectors new since the marks, up to ``add_every`` new chunks;
        a snapshot when due. True when the index holds what the database holds (saved or not)."""
        if not self._loaded:
            self._load_snapshot(conn)
        conn.execute("BEGIN")
        try:
            now = db_marks(conn)
            if self.marks != Marks() and not follows(conn, self.marks):
                log.warning("vector index of %s does not follow the database: rebuilding it", self.model_id)
                self.index, self.marks, self.dead, self.unsaved = None, Marks(), 0, 0
            elif self.index is not None and self.dead > MAX_DEAD * max(self.index.ntotal, 1):
                log.info("vector index of %s: %d deleted chunks in the graph, rebuilding it", self.model_id,
                         self.dead)
                self.index, self.marks, self.dead, self.unsaved = None, Marks(), 0, 0
            start = self.marks
            if (now.chunk_id, now.emb_id, now.del_seq, now.anchor) == (start.chunk_id, start.emb_id, start.del_seq,
                                                                        start.anchor):
                return self._maybe_save(caught_up=True)
            gone = [r[0] for r in conn.execute("SELECT chunk_id FROM chunk_deletions WHERE seq > ? AND seq <= ?",
                                               (start.del_seq, now.del_seq))]
            old = conn.execute(  # vectors stored since the marks, of chunks the index already covers
                "SELECT c.id, e.vector FROM embeddings e JOIN chunks c ON c.embed_hash = e.text_hash "
                "WHERE e.model = ? AND e.id > ? AND e.id <= ? AND c.id <= ?",
                (self.model_id, start.emb_id, now.emb_id, start.chunk_id)).fetchall()
            upper = conn.execute("SELECT max(id) FROM (SELECT id FROM chunks WHERE id > ? AND id <= ? ORDER BY id "
                                 "LIMIT ?)", (start.chunk_id, now.chunk_id, self.add_every)).fetchone()[0]
            upper = upper or start.chunk_id
            new = conn.execute(
                "SELECT c.id, e.vector FROM chunks c JOIN embeddings e ON e.model = ? AND e.text_hash = c.embed_hash "
                "WHERE c.id > ? AND c.id <= ? AND e.id <= ?",
                (self.model_id, start.chunk_id, upper, now.emb_id)).fetchall()
            anchor = conn.execute("SELECT embed_hash FROM chunks WHERE id = ?", (upper,)).fetchone()
        finally:
            conn.execute("COMMIT")
        rows = old + new
        if rows and self.index is None:
            self.index = new_vector_index(len(rows[0][1]) // 4)
        if self.index is not None:
            # HNSW cannot remove: a deleted chunk stays in the graph, readers skip it (they know every
            # live chunk) and ask for as many more candidates; past MAX_DEAD the graph is rebuilt
            self.dead += len(gone) if start.chunk_id else 0
            if rows:
                keys = np.fromiter((r[0] for r in rows), np.int64, len(rows))
                mat = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), -1)
                self.index.add_with_ids(np.ascontiguousarray(mat), keys)
            self.unsaved += len(rows) + len(gone)
        done = upper == now.chunk_id
        self.marks = Marks(chunk_id=upper, del_seq=now.del_seq, emb_id=now.emb_id,
                           anchor=anchor[0] if anchor else (start.anchor if upper == start.chunk_id else ""))
        return self._maybe_save(caught_up=done) and done

    def _maybe_save(self, caught_up: bool) -> bool:
        if self.index is None or not self.unsaved:
            return caught_up
        due = self.unsaved >= max(self.save_every, self.index.ntotal // 20) or \
            (caught_up and time.monotonic() - self._saved_at >= self.save_seconds)
        if due:
            self.save()
        return caught_up

    def save(self) -> None:
        """Write a complete snapshot, then point at it; older snapshots are removed after."""
        faiss = _faiss()
        self.dir.mkdir(parents=True, exist_ok=True)
        stem = self.pointer.stem
        name = f"{stem}-{self.marks.emb_id}-{self.marks.chunk_id}-{self.marks.del_seq}.faiss"
        tmp = self.dir / (name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / name)
        doc = {"format": VECTOR_FORMAT, "model": self.model_id, "file": name, "bytes": (self.dir / name).stat().st_size,
               "count": int(self.index.ntotal), "dead": self.dead, "marks": asdict(self.marks)}
        _fsync_write(self.pointer.with_suffix(".json.tmp"), json.dumps(doc).encode())
        os.replace(self.pointer.with_suffix(".json.tmp"), self.pointer)
        _fsync_dir(self.dir)
        for old in self.dir.glob(f"{stem}-*.faiss*"):
            if old.name != name:
                old.unlink(missing_ok=True)  # a reader that has it open keeps its pages until it lets go
        self.unsaved = 0
        self._saved_at = time.monotonic()


# ---------------------------------------------------------------------- the keeper


class IndexKeeper:
    """Keeps a database's search indexes in step with it; run by the embedding worker only.

    ``step()`` does one bounded round of work and says whether everything is up to date;
    ``run(stop)`` repeats it every ``poll`` seconds (at once while catching up) until ``stop`` is set."""

    def __init__(self, db_path: str | Path, model_id: str, poll: float = 0.5):
        from brain.core import store

        self.db_path = Path(db_path)
        self.model_id = model_id
        self.poll = poll
        self._conn = store.connect(self.db_path)
        # private like the database's folder (store._create_private): the indexes hold its text
        index_dir(self.db_path).mkdir(mode=0o700, exist_ok=True)
        self.text = TextIndexWriter(index_dir(self.db_path) / "text") if HAVE_TANTIVY else None
        self.vectors = VectorIndexWriter(index_dir(self.db_path), model_id) if HAVE_FAISS else None

    def step(self) -> bool:
        """One bounded round for each index; True when both hold what the database holds."""
        done = True
        if self.text is not None:
            done = self.text.update(self._conn) and done
        if self.vectors is not None:
            done = self.vectors.update(self._conn) and done
        return done

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                done = self.step()
            except (sqlite3.Error, OSError, ValueError) as exc:
                log.warning("search index update failed, retrying: %s", exc)
                done = True
                if stop.wait(5):
                    break
            if done and stop.wait(self.poll):
                break

    def close(self) -> None:
        if self.text is not None:
            self.text.close()
        self._conn.close()


def catch_up(db_path: str | Path, model_id: str) -> None:
    """Bring every index up to date now and save the vector snapshot (a benchmark's first build; the
    embedding worker does the same by itself in the background)."""
    keeper = IndexKeeper(db_path, model_id)
    try:
        while not keeper.step():
            pass
        if keeper.vectors is not None and keeper.vectors.index is not None and keeper.vectors.unsaved:
            keeper.vectors.save()
    finally:
        keeper.close()


def start_keeper(db_path: str | Path, model_id: str, stop: threading.Event) -> threading.Thread | None:
    """Run an IndexKeeper in a daemon thread until ``stop`` is set (None when tantivy is missing)."""
    if not (HAVE_TANTIVY or HAVE_FAISS):
        log.warning("neither tantivy nor faiss is installed: search uses FTS5 and the exact vector scan")
        return None
    keeper = IndexKeeper(db_path, model_id)

    def run() -> None:
        try:
            keeper.run(stop)
        finally:
            keeper.close()

    thread = threading.Thread(target=run, name="search-index-keeper", daemon=True)
    thread.start()
    return thread


