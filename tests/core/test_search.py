"""Hybrid search: both signals, fusion, filters, model isolation, and the incremental vector index."""

from __future__ import annotations

import numpy as np
import pytest

from brain.core import store
from brain.core.embed import LocalEmbedder
from brain.core.search import Searcher, VectorIndex, fts_query, make_snippet
from tests.conftest import embed_queued

CORPUS = [
    ("note:wal", "note", "/p/db", "2026-11-01T00:00:00Z", "SQLite durability",
     "Write-ahead logging lets readers continue while one writer appends to the log file."),
    ("note:git", "note", "/p/vcs", "2026-11-05T00:00:00Z", "Undoing commits",
     "git reset --soft HEAD~1 removes the last commit but keeps your changes staged."),
    ("note:pasta", "note", "/home", "2026-10-01T00:00:00Z", "Dinner",
     "Cook the spaghetti in a big pot of salted boiling water for nine minutes."),
    ("browser:p:1", "browser", None, "2026-11-10T00:00:00Z", "ZeroDivisionError in numpy",
     "RuntimeWarning: divide by zero encountered in log; use np.errstate to silence it."),
    ("claude:s1", "claude", "/p/db", "2026-11-20T00:00:00Z", "Fix flaky test",
     "We added a busy_timeout pragma so concurrent writers wait instead of failing with database is locked."),
]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder("all-MiniLM-L6-v2")


@pytest.fixture
def conn(db_path, embedder):
    c = store.connect(db_path)
    store.migrate(c)
    items = [{"id": i, "source": s, "project": p, "created_at": t, "title": title, "content": body}
             for i, s, p, t, title, body in CORPUS]
    store.Store(c).upsert(items, embedder)
    embed_queued(db_path, embedder)
    yield c
    c.close()


@pytest.fixture
def searcher(embedder) -> Searcher:
    return Searcher(embedder)


def ids(hits):
    return [h.item_id for h in hits]


def test_vector_search_finds_by_meaning_without_shared_words(conn, searcher):
    hits = searcher.search(conn, "how do I make pasta for supper", mode="vector", k=3)
    assert ids(hits)[0] == "note:pasta"
    assert "bm25" not in hits[0].scores and hits[0].scores["vector_rank"] == 1


def test_bm25_finds_exact_rare_terms(conn, searcher):
    hits = searcher.search(conn, "busy_timeout", mode="bm25")
    assert ids(hits) == ["claude:s1"]
    assert "[busy_timeout]" in hits[0].snippet


def test_hybrid_fuses_both_signals_with_rrf(conn, searcher):
    hits = searcher.search(conn, "database is locked concurrent writers", k=5)
    top = hits[0]
    assert top.item_id == "claude:s1"
    assert {"bm25", "bm25_rank", "vector", "vector_rank"} <= set(top.scores)
    expected = 1 / (60 + top.scores["bm25_rank"]) + 1 / (60 + top.scores["vector_rank"])
    assert top.score == pytest.approx(expected)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_results_carry_item_metadata(conn, searcher):
    hit = searcher.search(conn, "spaghetti", k=1)[0]
    assert (hit.source, hit.title, hit.project) == ("note", "Dinner", "/home")
    assert hit.created_at == "2026-10-01T00:00:00.000Z" and hit.start_line == 1
    result = hit.as_result()
    assert set(result) >= {"id", "source", "title", "uri", "project", "created_at", "updated_at", "meta", "chunk",
                           "snippet", "score", "scores"}


@pytest.mark.parametrize("mode", ["hybrid", "vector", "bm25"])
def test_filters_apply_to_every_signal(conn, searcher, mode):
    q = "sqlite writers database"
    assert set(ids(searcher.search(conn, q, mode=mode, source="claude"))) == {"claude:s1"}
    assert set(ids(searcher.search(conn, q, mode=mode, project="/p/db"))) <= {"note:wal", "claude:s1"}
    recent = ids(searcher.search(conn, q, mode=mode, since="2026-11-15T00:00:00.000Z"))
    assert recent == ["claude:s1"]
    old = set(ids(searcher.search(conn, q, mode=mode, until="2026-11-02T00:00:00.000Z")))
    assert old and old <= {"note:wal", "note:pasta"}


def test_user_text_never_breaks_fts_syntax(conn, searcher):
    for q in ['"unbalanced', "NEAR(", "a AND OR NOT b", "col:umn", "*", "-", "ünïcödé ✓"]:
        searcher.search(conn, q)  # no sqlite3.OperationalError
    assert fts_query("  ") == "" and searcher.search(conn, "!!!", mode="bm25") == []


def test_index_follows_inserts_and_deletes_from_other_connections(conn, searcher, db_path, embedder):
    assert "note:new" not in ids(searcher.search(conn, "kubernetes pod eviction", mode="vector"))
    other = store.connect(db_path)
    st = store.Store(other)
    st.upsert([{"id": "note:new", "source": "note", "content": "Kubernetes evicts pods when the node runs "
                "out of memory."}], embedder)
    assert "note:new" not in ids(searcher.search(conn, "kubernetes pod eviction", mode="vector"))  # no vector yet
    assert ids(searcher.search(conn, "kubernetes pod eviction", mode="bm25")) == ["note:new"]
    embed_queued(db_path, embedder)  # the vector arrives after the index saw the chunk
    assert ids(searcher.search(conn, "kubernetes pod eviction", mode="vector"))[0] == "note:new"
    st.delete("note:new")
    st.delete("note:git")
    assert not {"note:new", "note:git"} & set(ids(searcher.search(conn, "kubernetes git commit", mode="vector")))
    other.close()


def test_search_never_mixes_models(conn, db_path, embedder):
    class Other:
        model_id, dim, max_tokens, price_per_mtok = "local/other", 384, 256, 0.0

        def embed(self, texts):
            return embedder.embed(texts)

        def count_tokens(self, texts):
            return embedder.count_tokens(texts)

    s = Searcher(Other())
    assert s.search(conn, "pasta", mode="vector") == []  # no vectors of that model yet
    store.Store(conn).queue_all(Other.model_id)
    embed_queued(db_path, Other())
    assert ids(s.search(conn, "pasta dinner", mode="vector"))[0] == "note:pasta"


def test_vector_index_compacts_after_many_deletes():
    idx = VectorIndex("m")
    idx.ids = np.arange(10, dtype=np.int64)
    idx.mat = np.eye(10, dtype=np.float32)
    idx.alive = np.ones(10, bool)
    idx.alive[:5] = False
    top = idx.top(np.eye(10, dtype=np.float32)[2], 3)
    assert all(cid >= 5 for cid, _ in top)


def test_per_item_false_returns_several_chunks_of_one_item(db_path, embedder):
    c = store.connect(db_path)
    store.migrate(c)
    long = "\n\n".join(f"Section {i}: the deploy script restarts gunicorn workers gracefully." for i in range(40))
    store.Store(c, chunk_tokens=40, chunk_overlap=0).upsert(
        [{"id": "note:long", "source": "note", "content": long}], embedder)
    embed_queued(db_path, embedder)
    s = Searcher(embedder)
    assert len(s.search(c, "gunicorn restart", k=5)) == 1
    assert len(s.search(c, "gunicorn restart", k=5, per_item=False)) == 5
    c.close()


def test_make_snippet_centres_on_query_word():
    text = "x " * 300 + "the needle is here" + " y" * 300
    snip = make_snippet(text, "needle")
    assert "needle" in snip and snip.startswith("…") and len(snip) < 300


def test_search_during_catch_up_uses_bm25_everywhere_and_says_what_waits(conn, searcher, db_path, embedder):
    st = store.Store(conn)
    st.upsert([{"id": "note:late", "source": "note", "title": "Eviction",
                "content": "Kubernetes evicts pods when the node runs out of memory."}], embedder)
    hits = searcher.search(conn, "kubernetes evicts pods", k=3)
    assert ids(hits)[0] == "note:late" and hits[0].vectors_pending and "vector" not in hits[0].scores
    assert not any(h.vectors_pending for h in hits[1:])
    assert hits[0].as_result()["vectors_pending"] is True
    embed_queued(db_path, embedder)
    hit = searcher.search(conn, "kubernetes evicts pods", k=1)[0]
    assert hit.item_id == "note:late" and not hit.vectors_pending and "vector" in hit.scores


def test_hybrid_falls_back_to_bm25_when_the_query_cannot_be_embedded(conn, embedder):
    from brain.core.embed import EmbedError

    def broken():
        raise EmbedError("stand-in: model cannot load")

    s = Searcher(model_id=embedder.model_id, make_embedder=broken)
    out = s.run(conn, "busy_timeout writers", k=3)
    assert ids(out.hits)[0] == "claude:s1" and "could not be embedded" in (out.degraded or "")
    assert s.run(conn, "busy_timeout", mode="bm25").degraded is None
    with pytest.raises(EmbedError):
        s.run(conn, "busy_timeout", mode="vector")


def test_index_reloads_when_the_database_is_replaced(conn, searcher, db_path, embedder, tmp_path):
    assert ids(searcher.search(conn, "pasta dinner", mode="vector"))[0] == "note:pasta"
    index = searcher.index_for(conn)
    before = index.ids.size
    st = store.Store(conn)
    st.forget(source="note")
    conn.execute("DELETE FROM embeddings")
    conn.execute("DELETE FROM chunks")
    conn.execute("DELETE FROM sqlite_sequence")  # ids start again, as in a restored older file
    st.upsert([{"id": "note:only", "source": "note", "content": "Boil pasta in salted water."}], embedder)
    embed_queued(db_path, embedder)
    assert ids(searcher.search(conn, "pasta dinner", mode="vector")) == ["note:only"]
    assert index.ids.size < before


def test_function_words_leave_the_bm25_query_unless_nothing_else_is_left():
    assert fts_query("where did I handle the retry when the token expired?") == \
        '"handle" OR "retry" OR "token" OR "expired"'
    assert fts_query("to be or not to be") == '"to" OR "be" OR "or" OR "not"'


def test_snippets_are_made_for_the_results_shown(conn, searcher):
    hits = searcher.search(conn, "the spaghetti pot", k=1, mode="bm25")
    assert hits[0].item_id == "note:pasta" and "[spaghetti]" in hits[0].snippet and "[the]" not in hits[0].snippet
    filtered = searcher.search(conn, "spaghetti", k=1, mode="bm25", project="/home")
    assert filtered[0].item_id == "note:pasta" and "[spaghetti]" in filtered[0].snippet


@pytest.mark.parametrize("q", ["busy_timeout writers", "git commit", "divide by zero log", "pasta", "zzz nothing"])
def test_snippets_of_shown_chunks_are_fts5s_own(conn, searcher, q, db_path):
    """Snippets are made in a private table of the shown chunks: the same text as FTS5's snippet()
    over the whole table, nothing left behind, and a read-only connection can make them too."""
    match = fts_query(q)
    ids = [r[0] for r in conn.execute("SELECT id FROM chunks")]
    want = {r[0]: r[1] for r in conn.execute(
        f"SELECT rowid, snippet(chunks_fts, 0, '[', ']', ' … ', 24) FROM chunks_fts WHERE chunks_fts MATCH ? "
        f"AND rowid IN ({','.join('?' * len(ids))})", [match, *ids])}
    assert searcher._snippets(conn, q, ids) == want
    assert searcher._snippets(conn, q, ids[:1]) == {k: v for k, v in want.items() if k == ids[0]}
    assert conn.execute("SELECT count(*) FROM temp.shown_fts").fetchone()[0] == 0
    ro = store.connect(db_path, readonly=True)
    try:
        assert searcher._snippets(ro, q, ids) == want
    finally:
        ro.close()
