"""The store: migrations, pragmas, idempotent upsert that queues new texts, atomic batches, reindex."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import numpy as np
import pytest

from brain.core import store
from brain.core.embed import EmbedError, EmbedResult, LocalEmbedder
from brain.core.embed_worker import EmbedWorker
from tests.conftest import embed_queued


@dataclass
class CountingEmbedder:
    """Wraps the real local embedder to count what is sent to it (and optionally fail)."""

    inner: LocalEmbedder
    model_id: str = ""
    calls: list[list[str]] = field(default_factory=list)
    fail_after: int | None = None

    def __post_init__(self):
        self.model_id = self.model_id or self.inner.model_id
        self.dim, self.max_tokens, self.price_per_mtok = self.inner.dim, self.inner.max_tokens, 0.5

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def embed(self, texts) -> EmbedResult:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise EmbedError("stand-in failure: embedding service down")
        self.calls.append(list(texts))
        return self.inner.embed(texts)

    @property
    def texts_embedded(self) -> int:
        return sum(len(c) for c in self.calls)


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    return LocalEmbedder("all-MiniLM-L6-v2")


@pytest.fixture
def emb(local) -> CountingEmbedder:
    return CountingEmbedder(local)


@pytest.fixture
def st(db_path) -> store.Store:
    conn = store.connect(db_path)
    store.migrate(conn)
    yield store.Store(conn, chunk_tokens=64, chunk_overlap=8)
    conn.close()


def doc(i: int, paragraphs: int = 3, **kw) -> dict:
    body = "\n\n".join(f"Paragraph {p} of document {i}: notes about topic {i * 10 + p} and sqlite write-ahead "
                       f"logging, checkpoints and readers." for p in range(paragraphs))
    return {"id": f"note:{i}", "source": "note", "title": f"Doc {i}", "content": body, **kw}


def test_migrations_are_recorded_once_and_pragmas_set(db_path):
    conn = store.connect(db_path)
    versions = [v for v, _, _ in store.MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))  # numbered without gaps
    assert store.migrate(conn) == versions
    assert store.migrate(conn) == []
    rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [tuple(r) for r in rows] == [(v, name) for v, name, _ in store.MIGRATIONS]
    assert rows[0]["name"] == "items, chunks, fts, embeddings"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn.close()


def embed_all(st: store.Store, emb) -> int:
    """What the embedding worker does in production: drain the queue of ``emb``'s model."""
    return embed_queued(st.conn.execute("PRAGMA database_list").fetchone()[2], emb)


def queued_texts(st: store.Store, model: str) -> list[str]:
    return [q.text or "" for q in st.claim(model, 10_000)]


def test_ingest_never_calls_the_embedder(st, emb):
    emb.fail_after = 0  # the embedder is down
    r = st.upsert([doc(1), doc(2)], emb)
    assert (r.inserted, r.updated, r.unchanged) == (2, 0, 0) and emb.calls == []
    chunks = st.conn.execute("SELECT count(DISTINCT embed_hash) FROM chunks").fetchone()[0]
    assert r.queued == chunks == len(queued_texts(st, emb.model_id)) > 0
    # stored and searchable by BM25 at once
    assert st.conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'checkpoints'").fetchone()[0] > 0


def test_unchanged_item_queues_nothing(st, emb):
    st.upsert([doc(1), doc(2)], emb)
    embed_all(st, emb)
    calls = len(emb.calls)
    r2 = st.upsert([doc(1), doc(2)], emb)
    assert (r2.inserted, r2.updated, r2.unchanged, r2.queued) == (0, 0, 2, 0)
    assert embed_all(st, emb) == 0 and len(emb.calls) == calls


def test_changed_item_queues_only_new_chunk_texts(st, emb):
    st.upsert([doc(1, paragraphs=6)], emb)
    embed_all(st, emb)
    before = {r[0]: r[1] for r in st.conn.execute("SELECT seq, id FROM chunks WHERE item_id = 'note:1'")}
    grown = doc(1, paragraphs=6)
    grown["content"] += "\n\nA new closing paragraph about vacuum and incremental backups."
    r = st.upsert([grown], emb)
    assert r.updated == 1
    waiting = queued_texts(st, emb.model_id)
    assert waiting and r.queued == len(waiting)
    assert all("vacuum" in t or "Paragraph 5" in t for t in waiting), waiting
    after = {r[0]: r[1] for r in st.conn.execute("SELECT seq, id FROM chunks WHERE item_id = 'note:1'")}
    # leading chunks that did not change keep their rows (and so their place in the vector index)
    assert before[0] == after[0]


def test_same_text_in_another_item_hits_the_cache(st, emb):
    st.upsert([doc(1)], emb)
    embed_all(st, emb)
    n = emb.texts_embedded
    twin = dict(doc(1), id="note:twin")
    assert st.upsert([twin], emb).queued == 0
    assert embed_all(st, emb) == 0 and emb.texts_embedded == n


def test_same_text_queued_twice_is_embedded_once(st, emb):
    st.upsert([doc(1)], emb)
    r = st.upsert([dict(doc(1), id="note:twin")], emb)
    assert r.queued > 0  # still waiting, counted for this batch too ...
    assert st.conn.execute("SELECT count(*) FROM embed_queue").fetchone()[0] == r.queued  # ... queued once
    embed_all(st, emb)
    assert emb.texts_embedded == r.queued


def test_batch_is_all_or_nothing_on_validation_error(st, emb):
    with pytest.raises(store.ValidationError) as err:
        st.upsert([doc(1), doc(2), {"id": "note:3", "source": "note"}], emb)
    assert err.value.index == 2 and err.value.field == "content"
    assert st.conn.execute("SELECT count(*) FROM items").fetchone()[0] == 0
    assert emb.calls == []


def test_write_failure_midway_rolls_back(st, emb, monkeypatch):
    st.upsert([doc(1)], emb)
    original = st._write_item
    calls = {"n": 0}

    def explode(p, now):
        calls["n"] += 1
        if calls["n"] == 2:
            raise sqlite3.OperationalError("disk I/O error (simulated)")
        original(p, now)

    monkeypatch.setattr(st, "_write_item", explode)
    with pytest.raises(sqlite3.OperationalError):
        st.upsert([doc(5), doc(6)], emb)
    assert st.conn.execute("SELECT count(*) FROM items").fetchone()[0] == 1
    assert not st.conn.in_transaction


def test_delete_cascades_to_chunks_fts_and_logs_deletions(st, emb):
    st.upsert([doc(1), doc(2)], emb)
    chunk_ids = [r[0] for r in st.conn.execute("SELECT id FROM chunks WHERE item_id = 'note:1'")]
    assert st.delete("note:1") == 1
    assert st.conn.execute("SELECT count(*) FROM chunks WHERE item_id = 'note:1'").fetchone()[0] == 0
    fts_ids = {r[0] for r in st.conn.execute("SELECT rowid FROM chunks_fts")}
    assert not fts_ids & set(chunk_ids)
    logged = {r[0] for r in st.conn.execute("SELECT chunk_id FROM chunk_deletions")}
    assert set(chunk_ids) <= logged


def test_embedding_usage_is_recorded_with_cost(st, emb):
    st.upsert([doc(1)], emb)
    embed_all(st, emb)
    usage = st.embed_usage("2000-01-01", "2999-01-01")
    assert usage["texts"] == emb.texts_embedded and usage["tokens"] > 0
    assert usage["cost_usd"] == pytest.approx(usage["tokens"] * 0.5 / 1e6)


def test_reindex_queues_every_text_for_a_new_model_and_resumes(st, emb, local):
    st.upsert([doc(i) for i in range(6)], emb)
    embed_all(st, emb)
    total = st.conn.execute("SELECT count(DISTINCT embed_hash) FROM chunks").fetchone()[0]
    other = CountingEmbedder(local, model_id="local/other-model")
    assert st.queue_all(other.model_id) == total
    assert st.queue_all(other.model_id) == 0  # queued once
    db = st.conn.execute("PRAGMA database_list").fetchone()[2]
    worker = EmbedWorker(db, other.model_id, lambda: other, batch=4, wait=lambda s: False)
    assert worker.run_once() == 4  # one batch, then the worker "stops"
    worker.close()
    assert st.backlog(other.model_id)[other.model_id]["queued"] == total - 4
    assert embed_all(st, other) == total - 4
    assert st.stats("local/other-model")["missing_vectors"] == 0
    assert other.texts_embedded == total  # nothing embedded twice
    assert embed_all(st, other) == 0  # nothing left


def test_code_items_are_chunked_at_definitions(st, emb):
    code = "\n".join(f"def handler_{i}(request):\n    value = compute(request, {i})\n    log(value)\n"
                     f"    return respond(value)\n" for i in range(12))
    item = {"id": "file:h:/x.py", "source": "file", "content": code, "meta": {"language": "python"}}
    st.upsert([item], emb)
    rows = st.conn.execute("SELECT text, start_line, end_line, tokens FROM chunks ORDER BY seq").fetchall()
    assert len(rows) > 1
    for text, start, end, tokens in rows:
        assert text.startswith("def handler_")
        assert tokens <= 64
        assert code.split("\n")[start - 1].startswith("def handler_") and end >= start


def test_stored_vectors_are_normalised_float32(st, emb):
    st.upsert([doc(1)], emb)
    embed_all(st, emb)
    dim, blob = st.conn.execute("SELECT dim, vector FROM embeddings LIMIT 1").fetchone()
    vec = np.frombuffer(blob, np.float32)
    assert dim == 384 and vec.shape == (384,) and abs(float(np.linalg.norm(vec)) - 1) < 1e-5
