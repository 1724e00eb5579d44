"""Store benchmark: ingest rate and search latency (bm25, vector, hybrid) at 10k and 100k chunks of real text.

Run:  python bench/store_bench.py [--sizes 10000 100000] [--queries 200]

How it measures, honestly:
- The text is real: Python sources, READMEs and docs found on this machine (the standard library and
  the installed packages), one item per file, cut by the project's chunker with the real tokenizer.
- Embedding 100k chunks with the local model would take over half an hour on 2 cores, so stored
  vectors are *synthetic*: a distinct random unit vector per chunk text (seeded by the text's hash),
  written straight into the embedding cache. Every query is embedded with the REAL model, and that
  time is printed on its own line, so search latency with and without it is visible.
- Queries are 2-7 consecutive words taken from random chunks (function words and all), as a person
  half-remembering a passage types them.
- ``bm25-legacy`` is the query form used before 2026-12-02 (every word OR-ed, a JOIN of every match
  to its item, a snippet for every candidate), measured beside the current one in the same run.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))

from brain.core import store  # noqa: E402
from brain.core.embed import EmbedResult, LocalEmbedder  # noqa: E402
from brain.core.search import Searcher  # noqa: E402

MODEL_ID = "bench/synthetic-384"
SUFFIXES = (".py", ".md", ".rst", ".txt")


class QueryEmbedder:
    """Embeds queries with the real model, under the synthetic store's model id."""

    model_id, dim, price_per_mtok = MODEL_ID, 384, 0.0

    def __init__(self, real: LocalEmbedder):
        self.real = real
        self.max_tokens = real.max_tokens

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.real.count_tokens(texts)

    def embed(self, texts: list[str]) -> EmbedResult:
        return self.real.embed(texts)


def real_files() -> list[Path]:
    """Text files of the standard library and the installed packages, in a fixed order."""
    roots = {Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])}
    found = sorted(p for r in roots for p in r.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    random.Random(5).shuffle(found)
    return found


def items_from_files(files: list[Path]):
    for n, path in enumerate(files):
        try:
            text = path.read_text(encoding="utf-8")[:60_000]
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) < 200:
            continue
        lang = {"py": "python"}.get(path.suffix[1:], "")
        yield {"id": f"file:bench:{path}", "source": "file", "title": path.name, "project": str(path.parent.parent),
               "content": text, "meta": {"language": lang} if lang else {},
               "created_at": f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T00:00:00Z"}


def fill_vectors(conn, model: str) -> None:
    """A distinct unit vector per queued chunk text, stored as the embedding worker would."""
    rows = conn.execute("SELECT id, text_hash FROM embed_queue WHERE model = ?", (model,)).fetchall()
    conn.execute("BEGIN IMMEDIATE")
    for _, h in rows:
        v = np.random.default_rng(int(h[:16], 16)).standard_normal(384).astype(np.float32)
        v /= np.linalg.norm(v)
        conn.execute("INSERT OR IGNORE INTO embeddings(model, text_hash, dim, vector) VALUES (?, ?, 384, ?)",
                     (model, h, v.tobytes()))
    conn.execute("DELETE FROM embed_queue WHERE model = ?", (model,))
    conn.execute("COMMIT")


def legacy_bm25(conn, q: str, n: int) -> list:
    """The BM25 query as it was: all words OR-ed, JOINed to items, a snippet for every candidate."""
    words = list(dict.fromkeys(w.lower() for w in re.findall(r"\w+", q)))[:32]
    match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
    return conn.execute(
        "SELECT f.rowid, bm25(chunks_fts, 1.0, 0.5) AS s, snippet(chunks_fts, 0, '[', ']', ' … ', 24) "
        "FROM chunks_fts f JOIN chunks c ON c.id = f.rowid JOIN items i ON i.id = c.item_id "
        "WHERE chunks_fts MATCH ? ORDER BY s LIMIT ?", (match, n)).fetchall()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def measure_model(real: LocalEmbedder, texts: list[str]) -> float:
    start = time.perf_counter()
    real.embed(texts)
    return len(texts) / (time.perf_counter() - start)


def build(target_chunks: int, real: LocalEmbedder, files: list[Path]) -> tuple[Path, float, int]:
    tmp = Path(tempfile.mkdtemp(prefix="brain-bench-"))
    conn = store.connect(tmp / "bench.db")
    store.migrate(conn)
    st = store.Store(conn)
    model = QueryEmbedder(real)
    start = time.perf_counter()
    batch: list[dict] = []
    n_items = 0
    for item in items_from_files(files):
        batch.append(item)
        if len(batch) == 100:
            st.upsert(batch, model)
            n_items += len(batch)
            batch = []
            if conn.execute("SELECT max(id) FROM chunks").fetchone()[0] >= target_chunks:
                break
    ingest_s = time.perf_counter() - start
    fill_vectors(conn, MODEL_ID)
    conn.close()
    return tmp / "bench.db", ingest_s, n_items


def bench_size(target_chunks: int, queries: int, real: LocalEmbedder, files: list[Path]) -> None:
    db, ingest_s, n_items = build(target_chunks, real, files)
    conn = store.connect(db)
    n_chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    searcher = Searcher(QueryEmbedder(real))
    t = time.perf_counter()
    searcher.search(conn, "warm up", mode="vector")  # first call loads the matrix
    load_s = time.perf_counter() - t
    qrnd = random.Random(3)
    max_id = conn.execute("SELECT max(id) FROM chunks").fetchone()[0]
    qs = []
    while len(qs) < queries:
        row = conn.execute("SELECT text FROM chunks WHERE id >= ? LIMIT 1", (qrnd.randint(1, max_id),)).fetchone()
        words = re.findall(r"[A-Za-z_]{3,}", row[0]) if row else []
        if len(words) >= 8:
            start = qrnd.randint(0, len(words) - 7)
            qs.append(" ".join(words[start:start + qrnd.randint(2, 7)]))
    lat: dict[str, list[float]] = {m: [] for m in ("query embedding", "vector", "hybrid", "bm25", "bm25-legacy")}
    for q in qs:  # interleaved: every mode sees the same load
        t = time.perf_counter()
        real.embed([q])
        lat["query embedding"].append((time.perf_counter() - t) * 1000)
        for mode in ("vector", "hybrid", "bm25"):
            t = time.perf_counter()
            searcher.search(conn, q, k=10, mode=mode)
            lat[mode].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        legacy_bm25(conn, q, 80)
        lat["bm25-legacy"].append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    for q in qs[:50]:
        searcher.search(conn, q, k=10, mode="vector", project=conn.execute(
            "SELECT project FROM items LIMIT 1").fetchone()[0])
    filtered = (time.perf_counter() - t) * 1000 / 50
    db_mb = os.path.getsize(db) / 1e6
    print(f"\n== {n_chunks:,} chunks ({n_items:,} items of real text), db {db_mb:.0f} MB; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"ingest (validate, chunk with the real tokenizer, FTS, queue): {n_items / ingest_s:,.0f} items/s, "
          f"{n_chunks / ingest_s:,.0f} chunks/s, {ingest_s:.1f} s total")
    print(f"vector matrix first load: {load_s * 1000:.0f} ms")
    for mode, values in lat.items():
        print(f"{mode:16s}: p50 {statistics.median(values):6.1f} ms   p95 {percentile(values, 95):6.1f} ms"
              f"   ({queries} queries, k=10)")
    print(f"vector search with a project filter: mean {filtered:.1f} ms")
    print(f"peak RSS so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    real = LocalEmbedder("all-MiniLM-L6-v2")
    files = real_files()
    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}; {len(files):,} text files found")
    sample = [item["content"][:800] for item, _ in zip(items_from_files(files), range(64))]
    rate = measure_model(real, sample)
    print(f"local model {real.model_id}: {rate:.1f} chunks/s on ~200-token pieces -> embedding 100k chunks "
          f"takes about {100_000 / rate / 60:.0f} min (the embedding worker does it after ingest)")
    for size in args.sizes:
        bench_size(size, args.queries, real, files)


if __name__ == "__main__":
    main()
