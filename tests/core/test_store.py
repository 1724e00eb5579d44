"""The store: migrations, pragmas, idempotent upsert with the embedding cache, atomic batches, reindex."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import numpy as np
import pytest

from brain import store
from brain.embed import EmbedError, EmbedResult, LocalEmbedder


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


def test_unchanged_item_costs_no_embedding_call(st, emb):
    r1 = st.upsert([doc(1), doc(2)], emb)
    assert (r1.inserted, r1.updated, r1.unchanged) == (2, 0, 0)
    calls = len(emb.calls)
    r2 = st.upsert([doc(1), doc(2)], emb)
    assert (r2.inserted, r2.updated, r2.unchanged, r2.embedded) == (0, 0, 2, 0)
    assert len(emb.calls) == calls


def test_changed_item_embeds_only_new_chunk_texts(st, emb):
    st.upsert([doc(1, paragraphs=6)], emb)
    before = {r[0]: r[1] for r in st.conn.execute("SELECT seq, id FROM chunks WHERE item_id = 'note:1'")}
    emb.calls.clear()
    grown = doc(1, paragraphs=6)
    grown["content"] += "\n\nA new closing paragraph about vacuum and incremental backups."
    r = st.upsert([grown], emb)
    assert r.updated == 1
    embedded = [t for c in emb.calls for t in c]
    assert embedded and all("vacuum" in t or "Paragraph 5" in t for t in embedded), embedded
    after = {r[0]: r[1] for r in st.conn.execute("SELECT seq, id FROM chunks WHERE item_id = 'note:1'")}
    # leading chunks that did not change keep their rows (and so their place in the vector index)
    assert before[0] == after[0]


def test_same_text_in_another_item_hits_the_cache(st, emb):
    st.upsert([doc(1)], emb)
    n = emb.texts_embedded
    twin = dict(doc(1), id="note:twin")
    st.upsert([twin], emb)
    assert emb.texts_embedded == n


def test_batch_is_all_or_nothing_on_validation_error(st, emb):
    with pytest.raises(store.ValidationError) as err:
        st.upsert([doc(1), doc(2), {"id": "note:3", "source": "note"}], emb)
    assert err.value.index == 2 and err.value.field == "content"
    assert st.conn.execute("SELECT count(*) FROM items").fetchone()[0] == 0
    assert emb.calls == []


def test_batch_is_all_or_nothing_when_embedding_fails(st, emb):
    st.upsert([doc(1)], emb)
    emb.fail_after = len(emb.calls)
    with pytest.raises(EmbedError):
        st.upsert([dict(doc(1), content="changed text entirely"), doc(2)], emb)
    assert [r[0] for r in st.conn.execute("SELECT id FROM items")] == ["note:1"]
    assert "Paragraph" in st.get("note:1")["content"]


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
    usage = st.embed_usage("2000-01-01", "2999-01-01")
    assert usage["texts"] == emb.texts_embedded and usage["tokens"] > 0
    assert usage["cost_usd"] == pytest.approx(usage["tokens"] * 0.5 / 1e6)


def test_reindex_for_new_model_is_resumable(st, emb, local):
    st.upsert([doc(i) for i in range(6)], emb)
    total = st.conn.execute("SELECT count(DISTINCT embed_hash) FROM chunks").fetchone()[0]
    other = CountingEmbedder(local, model_id="local/other-model", fail_after=1)
    with pytest.raises(EmbedError):
        st.reindex(other, batch=4)
    done_first = st.conn.execute("SELECT count(*) FROM embeddings WHERE model = 'local/other-model'").fetchone()[0]
    assert done_first == 4
    other.fail_after = None
    assert st.reindex(other, batch=4) == total - 4
    assert st.stats("local/other-model")["missing_vectors"] == 0
    assert st.reindex(other, batch=4) == 0  # nothing left


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
    dim, blob = st.conn.execute("SELECT dim, vector FROM embeddings LIMIT 1").fetchone()
    vec = np.frombuffer(blob, np.float32)
    assert dim == 384 and vec.shape == (384,) and abs(float(np.linalg.norm(vec)) - 1) < 1e-5
