"""Issue 13, point 2: chunks cut at the definitions a tree-sitter grammar finds, each with a header
(path, symbols with their enclosing names, URL, project), and identifiers split in the index and the query."""

from __future__ import annotations

import sqlite3

import pytest

from brain.core import code_units, store
from brain.core.chunking import chunk_text
from brain.core.embed import LocalEmbedder
from brain.core.headers import chunk_header, identifier_terms, render_symbols, split_identifier
from brain.core.search import Searcher, fts_query, query_words
from tests.conftest import embed_queued


@pytest.fixture(autouse=True)
def _grammars() -> None:
    """The grammars are server dependencies (requirements-server.txt): missing, the tests fail, never skip."""
    missing = [lang for lang in ("python", "javascript") if not code_units.available(lang)]
    if missing:
        pytest.fail(f"tree-sitter grammars missing: {', '.join(missing)} (pip install -r requirements-dev.txt)")


def words(texts):
    return [len(t.split()) + 2 for t in texts]


SRC = '''"""A module."""
import time


class Retrying(BaseRetrying):
    """Retry a call until it succeeds."""

    def __init__(self, stop, wait):
        self.stop = stop
        self.wait = wait

    # the decorator form
    @property
    def wraps(self, f):
        """Wrap f so each call is retried."""
        def wrapped_f(*args, **kw):
            return self(f, *args, **kw)
        return wrapped_f

    def __call__(self, fn, *args, **kwargs):
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception:
                time.sleep(self.wait)


def retry(*dargs, **dkw):
    return Retrying(*dargs, **dkw)
'''


def test_a_small_file_keeps_whole_definitions_with_their_names():
    chunks = chunk_text(SRC, code=True, max_tokens=500, overlap=0, count=words, language="python")
    assert len(chunks) == 1
    assert chunks[0].symbols == ["class Retrying(BaseRetrying)", "def retry"]
    assert (chunks[0].start_line, chunks[0].end_line) == (1, 29)


def test_a_large_class_opens_into_methods_labelled_with_the_class():
    chunks = chunk_text(SRC, code=True, max_tokens=40, overlap=0, count=words, language="python")
    by_start = {c.text.split("\n")[0].strip(): c for c in chunks}
    wraps = by_start["# the decorator form"]  # the comment and decorator above a method stay with it
    assert wraps.symbols == ["class Retrying(BaseRetrying) > def wraps"]
    assert wraps.text.split("\n")[1].strip() == "@property" and "def wrapped_f" in wraps.text
    call = next(c for c in chunks if "def __call__" in c.text)
    assert "class Retrying(BaseRetrying) > def __call__" in call.symbols
    head = next(c for c in chunks if "class Retrying" in c.text)
    assert '"""Retry a call until it succeeds."""' in head.text
    assert "class Retrying(BaseRetrying)" in head.symbols
    # every line of the file that is not blank is in some chunk
    lines = {n for c in chunks for n in range(c.start_line, c.end_line + 1)}
    assert lines >= {n for n, line in enumerate(SRC.split("\n"), 1) if line.strip()}


def test_a_language_without_a_grammar_or_a_broken_file_falls_back_to_the_line_patterns():
    plain = chunk_text(SRC, code=True, max_tokens=40, overlap=0, count=words)
    assert chunk_text(SRC, code=True, max_tokens=40, overlap=0, count=words, language="cobol") == plain
    assert all(c.symbols == [] for c in plain)
    broken = "def f(:\n    return (\n" * 3  # tree-sitter still gives a tree: chunks, all lines kept
    got = chunk_text(broken, code=True, max_tokens=40, overlap=0, count=words, language="python")
    assert "\n".join(c.text for c in got).count("def f(") == 3


def test_javascript_methods_and_arrow_functions_are_definitions():
    src = ("export class Cache {\n  constructor(n) { this.n = n }\n  getItem(key) {\n    return this.map.get(key)\n"
           "  }\n}\n\nexport const makeKey = (a, b) => `${a}:${b}`\n")
    chunks = chunk_text(src, code=True, max_tokens=12, overlap=0, count=words, language="javascript")
    symbols = [s for c in chunks for s in c.symbols]
    assert "class Cache > getItem" in symbols and "makeKey" in symbols


def test_headers_say_path_symbols_url_and_project():
    file_item = {"source": "file", "title": "tenacity/__init__.py", "uri": None, "project": "/src/tenacity",
                 "meta": {"rel_path": "__init__.py", "path": "/src/tenacity/__init__.py"}}
    assert chunk_header(file_item, ["class Retrying(BaseRetrying) > def wraps",
                                    "class Retrying(BaseRetrying) > def __call__", "def retry"]) == \
        "class Retrying(BaseRetrying) > def wraps, def __call__; def retry"
    page = {"source": "browser", "title": "Jitter", "uri": "https://example.org/blog/backoff-jitter", "project": None,
            "meta": {}}
    assert chunk_header(page, []) == "https://example.org/blog/backoff-jitter"
    session = {"source": "claude", "title": "Fix the sync", "uri": None, "project": "/home/me/spotter", "meta": {}}
    assert chunk_header(session, []) == "project /home/me/spotter"
    assert len(chunk_header(file_item, [f"def f{i}" for i in range(200)])) <= 240
    assert render_symbols(["a > b > def c", "a > b > def d"]) == "a > b > def c, def d"


def test_identifiers_split_for_the_index_and_the_query():
    assert split_identifier("RetryCallState") == ["retry", "call", "state"]
    assert split_identifier("HTTPServer2") == ["http", "server", "2"]
    assert split_identifier("parse_qs") == ["parse", "qs"]
    assert identifier_terms("x = RetryCallState(getUserName, snake_case, plain)") == \
        "retry call state get user name"
    assert query_words("where is RetryCallState made?") == ["retrycallstate", "retry", "call", "state", "made"]
    assert query_words("the retry_if_exception helper") == ["retry_if_exception", "retry", "exception", "helper"]
    assert query_words("RetryCallState", split=False) == ["retrycallstate"]
    assert fts_query("getUser") == '"getuser" OR "get" OR "user"'


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder("all-MiniLM-L6-v2")


@pytest.mark.parametrize("embedded", [False, True])
def test_the_store_indexes_headers_and_terms(db_path, embedder, embedded):
    """By default the header is indexed with the split identifiers (column ``terms``) and the
    vector is that of title and text; ``embed_headers`` embeds it too (column ``header``)."""
    conn = store.connect(db_path)
    store.migrate(conn)
    item = {"id": "file:h:/src/cache.py", "source": "file", "title": "pkg/cache.py", "project": "/src/pkg",
            "created_at": "2026-11-01T00:00:00Z", "content": SRC.replace("Retrying(", "LruCacheManager("),
            "meta": {"language": "python", "rel_path": "cache.py", "path": "/src/pkg/cache.py"}}
    page = {"id": "browser:p:1", "source": "browser", "title": "A post", "uri": "https://example.org/jitter-backoff",
            "created_at": "2026-11-01T00:00:00Z", "content": "Why every retry loop needs randomness."}
    store.Store(conn, chunk_tokens=64, chunk_overlap=8, embed_headers=embedded).upsert([item, page], embedder)
    header, terms = conn.execute("SELECT header, terms FROM chunks WHERE item_id = ? AND (header || terms) LIKE "
                                 "'%__call__%'", (item["id"],)).fetchone()
    assert "class LruCacheManager(BaseRetrying) > def __call__" in (header if embedded else terms)
    assert "lru cache manager" in terms
    # the queued text is what ingest embedded: title, (header,) text
    claimed = {q.text for q in store.Store(conn).claim(embedder.model_id, 100)}
    url = "https://example.org/jitter-backoff\n" if embedded else ""
    assert f"A post\n{url}Why every retry loop needs randomness." in claimed
    embed_queued(db_path, embedder)
    searcher = Searcher(embedder, indexes=False)
    assert [h.item_id for h in searcher.search(conn, "lru cache manager", mode="bm25")][:1] == [item["id"]]
    assert [h.item_id for h in searcher.search(conn, "jitter", mode="bm25")] == [page["id"]]
    conn.close()


def test_rows_written_before_the_migration_keep_their_text_and_vectors(db_path, embedder):
    """A store of schema 6 migrates to 7: its chunks get an empty header, are embedded as before
    (title and text) and stay found; new items get headers."""
    conn = store.connect(db_path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "applied_at TEXT NOT NULL)")
    for version, name, sql in store.MIGRATIONS:
        if version > 6:
            break
        for statement in store._statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, '2026-01-01T00:00:00.000000Z')", (version, name))
    conn.execute("INSERT INTO items(id, source, title, created_at, updated_at, content, content_hash, ingested_at) "
                 "VALUES ('note:a', 'note', 'Old note', 'x', 'x', 'WAL checkpoint', 'h', 'x')")
    conn.execute("INSERT INTO chunks(item_id, seq, text, embed_hash, tokens) VALUES ('note:a', 0, 'WAL checkpoint', "
                 "?, 3)", (store.text_hash("Old note\nWAL checkpoint"),))
    conn.commit()
    assert store.migrate(conn) == [v for v, _, _ in store.MIGRATIONS if v > 6]  # 7 and any later
    assert tuple(conn.execute("SELECT header, terms FROM chunks").fetchone()) == ("", "")
    assert store.embed_input("Old note", "WAL checkpoint", "") == "Old note\nWAL checkpoint"
    assert [r[0] for r in conn.execute("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH 'checkpoint'").fetchall()] == [1]
    conn.close()
    with pytest.raises(sqlite3.IntegrityError):
        sqlite3.connect(db_path).execute("INSERT INTO chunks(item_id, seq, text, embed_hash, tokens, header) "
                                         "VALUES ('note:a', 1, 't', 'h', 1, NULL)")


def test_items_an_older_chunker_cut_are_chunked_again_by_the_worker(db_path, embedder):
    """A store written before issue 13 (line-pattern chunks, no headers, items.chunking 1) moves to
    the new chunks by itself: the embedding worker chunks such items again when its queue is empty,
    a few per transaction, and queues only the texts that changed."""
    from brain.core.embed_worker import EmbedWorker

    conn = store.connect(db_path)
    store.migrate(conn)
    code = {"id": "file:h:/src/r.py", "source": "file", "title": "pkg/r.py", "project": "/src/pkg",
            "created_at": "2026-11-01T00:00:00Z", "content": SRC,
            "meta": {"language": "python", "rel_path": "r.py", "path": "/src/pkg/r.py"}}
    note = {"id": "note:n", "source": "note", "title": "A note", "created_at": "2026-11-01T00:00:00Z",
            "content": "Plain words stay as they are."}
    old = store.Store(conn, 64, 8, parse_code=False, headers=False, terms=False)
    old.upsert([code, note], embedder)
    conn.execute("UPDATE items SET chunking = 1")
    conn.commit()
    embed_queued(db_path, embedder)
    note_chunk = conn.execute("SELECT id FROM chunks WHERE item_id = 'note:n'").fetchone()[0]
    had = {r[0] for r in conn.execute("SELECT embed_hash FROM chunks")}
    worker = EmbedWorker(db_path, embedder.model_id, lambda: embedder, chunk_tokens=64, chunk_overlap=8)
    try:
        assert worker.rechunk_step(limit=1) == 1 and worker.rechunk_step(limit=5) == 1
        assert worker.rechunk_step() == 0
        assert {r[0] for r in conn.execute("SELECT chunking FROM items")} == {store.CHUNKING}
        headers = [r[0] for r in conn.execute("SELECT terms FROM chunks WHERE item_id = ? ORDER BY seq", (code["id"],))]
        assert any("class Retrying(BaseRetrying)" in h for h in headers)
        # the note's chunk did not change: same row, nothing queued for it
        assert conn.execute("SELECT id FROM chunks WHERE item_id = 'note:n'").fetchone()[0] == note_chunk
        now = {r[0] for r in conn.execute("SELECT embed_hash FROM chunks")}
        assert worker.drain() == len(now - had)
    finally:
        worker.close()
        conn.close()


def test_threads_parse_at_once_with_their_own_parsers():
    """Request threads ingest at the same time: each gets its own parser, the chunks are the same."""
    from concurrent.futures import ThreadPoolExecutor

    want = chunk_text(SRC, code=True, max_tokens=40, overlap=0, count=words, language="python")
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: chunk_text(SRC, code=True, max_tokens=40, overlap=0, count=words,
                                                 language="python"), range(32)))
    assert all(g == want for g in got)
    assert code_units.parser_for("python") is code_units.parser_for("python")
