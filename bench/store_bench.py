"""Store benchmark: ingest rate, search latency (hybrid and vector-only) and peak memory at 10k and 100k chunks.

Run:  python bench/store_bench.py [--sizes 10000 100000] [--queries 200]

How it measures, honestly:
- Embedding 100k chunks with the local model would take over an hour on 2 cores, so the big stores are
  filled with *synthetic* unit vectors (same dimension, 384) from a fast stand-in embedder. The real
  model's throughput is measured separately on a sample and printed as its own line, so the
  embedding share of ingest time is visible rather than hidden.
- Text and queries are drawn from a Zipfian vocabulary of 20,000 words, as natural text is; queries
  made only of very common words are slower for BM25 (docs/PERFORMANCE.md has that worst case too).
- Search latency is end to end through ``Searcher.search``: query embedding with the REAL local model,
  FTS5 BM25, the NumPy vector scan, RRF fusion and fetching item metadata.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))

from brain import store  # noqa: E402
from brain.embed import EmbedResult, LocalEmbedder  # noqa: E402
from brain.search import Searcher  # noqa: E402

WORDS = ("sqlite wal checkpoint gunicorn worker flask blueprint request token bearer embedding vector cosine "
         "chunk overlap search hybrid fusion rank bm25 index python numpy matrix product latency memory "
         "collector browser history claude session transcript file gitignore redact secret outbox retry "
         "backoff timeout pulumi oracle tensordock gpu ollama deepseek model prompt answer citation cost "
         "budget idle stop start ansible role molecule systemd caddy wireguard tunnel firewall ssh key").split()
MODEL_ID = "bench/synthetic-384"


class SyntheticEmbedder:
    """Stand-in for ingest only: deterministic random unit vectors, no model (see module docstring)."""

    model_id, dim, max_tokens, price_per_mtok = MODEL_ID, 384, 256, 0.0

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]

    def embed(self, texts: list[str]) -> EmbedResult:
        rng = np.random.default_rng(len(texts))
        v = rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return EmbedResult(v, sum(self.count_tokens(texts)))


class QueryEmbedder:
    """Embeds queries with the real model, under the synthetic store's model id."""

    model_id, dim, max_tokens, price_per_mtok = MODEL_ID, 384, 256, 0.0

    def __init__(self, real: LocalEmbedder):
        self.real = real

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.real.count_tokens(texts)

    def embed(self, texts: list[str]) -> EmbedResult:
        return self.real.embed(texts)


def make_vocabulary(size: int = 20_000) -> tuple[list[str], list[float]]:
    """Natural text is Zipfian: a few very common words, a long tail of rare ones. The project's own
    words lead the ranking; synthetic ones fill the tail."""
    rnd = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    tail = ["".join(rnd.choice(letters) for _ in range(rnd.randint(4, 10))) for _ in range(size - len(WORDS))]
    vocab = WORDS + tail
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    return vocab, weights


VOCAB, WEIGHTS = make_vocabulary()


def words(rnd: random.Random, n: int) -> str:
    return " ".join(rnd.choices(VOCAB, WEIGHTS, k=n))


def make_item(i: int, rnd: random.Random, chunks_per_item: int) -> dict:
    paras = [words(rnd, rnd.randint(30, 45)) for _ in range(chunks_per_item)]
    return {"id": f"note:{i}", "source": "note",
            "title": f"bench item {i}", "project": f"/proj/{i % 20}", "content": "\n\n".join(paras),
            "created_at": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00Z"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def measure_model(real: LocalEmbedder, n: int = 128) -> float:
    rnd = random.Random(7)
    texts = [words(rnd, 120) for _ in range(n)]
    start = time.perf_counter()
    real.embed(texts)
    return n / (time.perf_counter() - start)


def bench_size(target_chunks: int, queries: int, real: LocalEmbedder) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="brain-bench-"))
    conn = store.connect(tmp / "bench.db")
    store.migrate(conn)
    st = store.Store(conn, chunk_tokens=60, chunk_overlap=0)
    emb = SyntheticEmbedder()
    rnd = random.Random(42)
    chunks_per_item, batch = 5, 500
    n_items = target_chunks // chunks_per_item
    start = time.perf_counter()
    for first in range(0, n_items, batch):
        st.upsert([make_item(i, rnd, chunks_per_item) for i in range(first, min(n_items, first + batch))], emb)
    ingest_s = time.perf_counter() - start
    n_chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    searcher = Searcher(QueryEmbedder(real))
    t = time.perf_counter()
    searcher.search(conn, "warm up", mode="vector")  # first call loads the matrix
    load_s = time.perf_counter() - t
    qrnd = random.Random(3)
    qs = [words(qrnd, qrnd.randint(2, 6)) for _ in range(queries)]
    results = {}
    for mode in ("vector", "hybrid", "bm25"):
        lat = []
        for q in qs:
            t = time.perf_counter()
            searcher.search(conn, q, k=10, mode=mode)
            lat.append((time.perf_counter() - t) * 1000)
        results[mode] = (statistics.median(lat), percentile(lat, 95))
    t = time.perf_counter()
    for q in qs[:50]:
        searcher.search(conn, q, k=10, mode="vector", project="/proj/3")
    filtered = (time.perf_counter() - t) * 1000 / 50
    db_mb = os.path.getsize(tmp / "bench.db") / 1e6
    print(f"\n== {n_chunks:,} chunks ({n_items:,} items), db {db_mb:.0f} MB")
    print(f"ingest (store, FTS, chunking; synthetic vectors): {n_items / ingest_s:,.0f} items/s, "
          f"{n_chunks / ingest_s:,.0f} chunks/s, {ingest_s:.1f} s total")
    print(f"vector matrix first load: {load_s * 1000:.0f} ms")
    for mode, (p50, p95) in results.items():
        print(f"search {mode:6s}: p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   ({queries} queries, k=10)")
    print(f"search vector with a project filter: mean {filtered:.1f} ms")
    print(f"peak RSS so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    real = LocalEmbedder("all-MiniLM-L6-v2")
    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}")
    rate = measure_model(real)
    print(f"local model all-MiniLM-L6-v2 (NumPy): {rate:.1f} chunks/s for ~150-token chunks -> "
          f"embedding 100k chunks takes about {100_000 / rate / 60:.0f} min (the embedder sets ingest speed)")
    for size in args.sizes:
        bench_size(size, args.queries, real)


if __name__ == "__main__":
    main()
