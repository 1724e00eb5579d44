"""Store benchmark: ingest rate, and search latency and recall of every candidate index, side by side,
at 10k and 100k chunks of real text.

Run:  python bench/store_bench.py [--sizes 10000 100000] [--queries 200] [--real-vectors 2000]

How it measures, honestly:
- The text is real: the Claude Code sessions of the test fixtures and of the retrieval evaluation (read
  by the real Claude collector), then Python sources, READMEs and docs of the standard library and the
  installed packages, one item per file, cut by the project's chunker with the real tokenizer.
- The vectors are distinct, and say where they come from. The first ``--real-vectors`` queued chunk
  texts are embedded with the REAL local model. Embedding 100k chunks that way takes over an hour on 2
  cores, so every other text gets a deterministic vector in the model's own space (``WordSpace``): the
  tf-idf-weighted sum of the real model's vectors of its words (the 20,000 most common words are
  embedded once), plus a little noise seeded by the text's sha256, normalised. Texts about the same
  things are near each other as with the model, so an approximate index meets the clusters of real
  embeddings rather than uniform noise, and no two texts share a vector.
- Queries are 2-7 consecutive words taken from random chunks (function words and all), as a person
  half-remembering a passage types them. Each is embedded once with the real model (that time is its own
  line); every latency line below it excludes it, so search cost and model cost are both visible.
- Recall@10 of an approximate vector index is measured against the exact scan over the same vectors,
  as search asks (a pool of 80 candidates, its best 10), for two kinds of query vector: the real
  model's and the word-space vector of the same words (nearer the word-space chunks).
- All candidates run interleaved on the same queries, so they see the same load: compare within a run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import resource
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "app"))

from brain.core import search_index, store  # noqa: E402
from brain.core.embed import EmbedResult, LocalEmbedder, get_embedder  # noqa: E402
from brain.core.search import Searcher, query_words  # noqa: E402
from brain.shared import config  # noqa: E402

MODEL_ID = "bench/mixed-384"
DIM = 384
SUFFIXES = (".py", ".md", ".rst", ".txt")
SESSION_DIRS = (REPO / "tests" / "fixtures" / "claude-projects", REPO / "bench" / "eval" / "claude-projects")


class CachedQueryEmbedder:
    """The real model under the bench store's model id; a query embedded once is answered from memory,
    so search timings can leave the model out (it is timed on its own)."""

    dim, price_per_mtok = DIM, 0.0

    def __init__(self, real: Any, model_id: str = MODEL_ID):
        self.real = real
        self.model_id = model_id
        self.max_tokens = real.max_tokens
        self.cache: dict[str, np.ndarray] = {}

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.real.count_tokens(texts)

    def embed(self, texts: list[str]) -> EmbedResult:
        missing = [t for t in texts if t not in self.cache]
        if missing:
            for t, v in zip(missing, self.real.embed(missing).vectors):
                self.cache[t] = np.asarray(v, np.float32)
        return EmbedResult(np.stack([self.cache[t] for t in texts]), 0)


# ---------------------------------------------------------------------- real text


def session_items() -> list[dict[str, Any]]:
    """The Claude Code sessions of the fixtures and of the retrieval evaluation, through the real collector."""
    import retrieval_eval as reval

    from brain.collect import claude
    from brain.collect.outbox import State
    from brain.collect.redact import default_redactor

    with tempfile.TemporaryDirectory(prefix="brain-bench-home-") as tmp_s:
        tmp = Path(tmp_s)
        projects = tmp / "claude" / "projects"
        for d in SESSION_DIRS:
            shutil.copytree(d, projects, dirs_exist_ok=True)
        with reval.fake_home(tmp):
            cfg = config.load(env=dict(os.environ), overrides={"collect.claude_roots": [str(tmp / "claude")],
                                                               "collect.host": "bench"})
            state = State(tmp / "state" / "collect.db")
            try:
                sink = reval.ListSink(state)
                claude.collect(cfg, state, sink, default_redactor(), None)
            finally:
                state.close()
    return sink.items


def real_files() -> list[Path]:
    """Text files of the standard library and the installed packages, in a fixed order."""
    roots = {Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])}
    found = sorted(p for r in roots for p in r.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    random.Random(5).shuffle(found)
    return found


def file_items(files: list[Path]) -> Iterator[dict[str, Any]]:
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


# ---------------------------------------------------------------------- distinct vectors

_WORD = re.compile(r"\w+")


class WordSpace:
    """Vectors for chunk texts the model has not embedded, in the model's own space: each of the
    ``size`` most common words is embedded once with the real model, and a text's vector is the
    tf-idf-weighted sum of its words' vectors plus a little noise seeded by the text's sha256,
    normalised. Texts about the same things are near each other as with the model (an approximate
    index meets the clusters of real embeddings, not uniform noise), and no two texts share a vector."""

    def __init__(self, real: Any, texts: list[str], size: int = 20_000):
        df: dict[str, int] = {}
        for t in texts:
            for w in set(_WORD.findall(t.lower())):
                df[w] = df.get(w, 0) + 1
        vocab = sorted(df, key=lambda w: (-df[w], w))[:size]
        self.index = {w: i for i, w in enumerate(vocab)}
        self.idf = np.array([np.log(len(texts) / df[w]) + 1.0 for w in vocab], np.float32)
        t = time.perf_counter()
        self.words = np.concatenate([np.asarray(real.embed(vocab[i:i + 256]).vectors, np.float32)
                                     for i in range(0, len(vocab), 256)])
        self.embed_s = time.perf_counter() - t

    def vector(self, text: str, text_hash: str) -> np.ndarray:
        counts: dict[int, int] = {}
        for w in _WORD.findall(text.lower()):
            i = self.index.get(w)
            if i is not None:
                counts[i] = counts.get(i, 0) + 1
        v = np.random.default_rng(int(text_hash[:16], 16)).standard_normal(DIM).astype(np.float32) * 0.01
        if counts:
            idx = np.fromiter(counts, np.intp, len(counts))
            tf = 1 + np.log(np.fromiter(counts.values(), np.float32, len(counts)))
            v += (tf * self.idf[idx]) @ self.words[idx] / len(counts)
        return v / (np.linalg.norm(v) or 1.0)


def fill_vectors(conn, real: Any, n_real: int, model_id: str = MODEL_ID) -> tuple[int, float, WordSpace]:
    """A vector for every queued text, stored as the embedding worker would: the first ``n_real`` from
    the real model (in queue order), the rest from ``WordSpace``. Returns (real vectors, seconds spent
    on them, the word space)."""
    st = store.Store(conn)
    queued = st.claim(model_id, 10**9)
    took = 0.0
    done: list[tuple[Any, np.ndarray]] = []
    for start in range(0, min(n_real, len(queued)), 32):
        part = queued[start:min(start + 32, n_real)]
        t = time.perf_counter()
        vecs = real.embed([q.text or "" for q in part]).vectors
        took += time.perf_counter() - t
        done += list(zip(part, vecs))
    space = WordSpace(real, [q.text or "" for q in queued])
    done += [(q, space.vector(q.text or "", q.text_hash)) for q in queued[len(done):]]
    for start in range(0, len(done), 5000):
        st.store_vectors(model_id, done[start:start + 5000], [], 0, 0.0)
    return min(n_real, len(queued)), took, space


def build(target_chunks: int, real: Any, files: list[Path], sessions: list[dict[str, Any]],
          n_real: int, model_id: str = MODEL_ID) -> tuple[Path, float, int, int, float, WordSpace]:
    """A store of about ``target_chunks`` chunks of real text with a vector for each (see the module doc)."""
    tmp = Path(tempfile.mkdtemp(prefix="brain-bench-"))
    conn = store.connect(tmp / "bench.db")
    store.migrate(conn)
    st = store.Store(conn)
    model = CachedQueryEmbedder(real, model_id)
    start = time.perf_counter()
    n_items = 0

    def items() -> Iterator[dict[str, Any]]:
        yield from sessions
        yield from file_items(files)

    batch: list[dict[str, Any]] = []
    for item in items():
        batch.append(item)
        if len(batch) == 100:
            st.upsert(batch, model)
            n_items += len(batch)
            batch = []
            if conn.execute("SELECT max(id) FROM chunks").fetchone()[0] >= target_chunks:
                break
    if batch:
        st.upsert(batch, model)
        n_items += len(batch)
    ingest_s = time.perf_counter() - start
    n_real_done, real_s, space = fill_vectors(conn, real, n_real, model_id)
    conn.close()
    return tmp / "bench.db", ingest_s, n_items, n_real_done, real_s, space


# ---------------------------------------------------------------------- candidates


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def exact_top(ids: np.ndarray, mat: np.ndarray, vec: np.ndarray, n: int) -> set[int]:
    sims = mat @ vec
    best = np.argpartition(-sims, n - 1)[:n]
    return {int(ids[i]) for i in best}


def faiss_candidates(ids: np.ndarray, mat: np.ndarray) -> dict[str, tuple[float, Callable[[np.ndarray, int], list]]]:
    import faiss
    faiss.omp_set_num_threads(1)  # one request thread's share, as in a gunicorn worker
    out = {}
    for name, factory in (("faiss HNSW32", "HNSW32,Flat"), ("faiss HNSW32 SQ8", "HNSW32,SQ8")):
        t = time.perf_counter()
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # build on every core
        index = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
        index.train(mat)
        index.add(mat)
        faiss.omp_set_num_threads(1)
        built = time.perf_counter() - t
        for ef in (64, 128):
            def search(vec: np.ndarray, n: int, index=index, ef=ef) -> list[int]:
                sims, rows = index.search(vec[None, :], n, params=faiss.SearchParametersHNSW(efSearch=max(ef, n)))
                return [(int(ids[r]), float(s)) for r, s in zip(rows[0], sims[0]) if r >= 0]
            out[f"{name} ef={ef}"] = (built, search)
    return out


def usearch_candidates(ids: np.ndarray, mat: np.ndarray) -> dict[str, tuple[float, Callable[[np.ndarray, int], list]]]:
    """usearch's HNSW (not a dependency: measured when installed; its extension must be loaded after
    ONNX Runtime's, or importing ONNX Runtime crashes the process, which ruled it out)."""
    try:
        from usearch.index import Index
    except ImportError:
        return {}
    out = {}
    for dtype in ("f32", "i8"):
        t = time.perf_counter()
        index = Index(ndim=DIM, metric="ip", dtype=dtype, connectivity=32, expansion_add=128)
        index.add(ids, mat, threads=os.cpu_count() or 1)
        built = time.perf_counter() - t
        for ef in (64, 128):
            def search(vec: np.ndarray, n: int, index=index, ef=ef) -> list[int]:
                index.expansion_search = max(ef, n)
                m = index.search(vec, n, threads=1)
                return [(int(k), 1.0 - float(d)) for k, d in zip(m.keys, m.distances)]
            out[f"usearch {dtype} ef={ef}"] = (built, search)
    return out


# ---------------------------------------------------------------------- one size


def queries_from(conn, count: int) -> list[str]:
    rnd = random.Random(3)
    max_id = conn.execute("SELECT max(id) FROM chunks").fetchone()[0]
    qs: list[str] = []
    while len(qs) < count:
        row = conn.execute("SELECT text FROM chunks WHERE id >= ? LIMIT 1", (rnd.randint(1, max_id),)).fetchone()
        words = re.findall(r"[A-Za-z_]{3,}", row[0]) if row else []
        if len(words) >= 8:
            start = rnd.randint(0, len(words) - 7)
            qs.append(" ".join(words[start:start + rnd.randint(2, 7)]))
    return qs


def line(name: str, values: list[float], extra: str = "") -> None:
    print(f"  {name:28s} p50 {statistics.median(values):7.2f} ms   p95 {percentile(values, 95):7.2f} ms   {extra}")


def bench_size(target: int, n_queries: int, real: Any, bulk: Any, files: list[Path],
               sessions: list[dict[str, Any]], n_real: int, everything: bool) -> None:
    db, ingest_s, n_items, n_real_done, real_s, space = build(target, bulk, files, sessions, n_real)
    conn = store.connect(db)
    n_chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    print(f"\n== {n_chunks:,} chunks ({n_items:,} items of real text, {len(sessions)} of them Claude sessions), "
          f"db {os.path.getsize(db) / 1e6:.0f} MB; load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"ingest (validate, chunk with the real tokenizer, FTS, queue): {n_items / ingest_s:,.0f} items/s, "
          f"{n_chunks / ingest_s:,.0f} chunks/s, {ingest_s:.1f} s")
    print(f"vectors: {n_real_done:,} from the real model ({n_real_done / max(real_s, 1e-9):.1f} chunks/s), "
          f"{n_chunks - n_real_done:,} sums of {len(space.index):,} word vectors from the real model "
          f"(embedded in {space.embed_s:.0f} s)", flush=True)
    emb = CachedQueryEmbedder(real)
    today = Searcher(emb, indexes=False)  # FTS5 and the exact scan, as before the indexes
    t = time.perf_counter()
    index = today.index_for(conn)
    index.sync(conn)
    print(f"vector matrix first load (exact scan, every process): {(time.perf_counter() - t) * 1000:.0f} ms")
    t = time.perf_counter()
    search_index.catch_up(db, MODEL_ID)
    built_s = time.perf_counter() - t
    side = search_index.index_dir(db)
    side_mb = sum(f.stat().st_size for f in side.rglob("*") if f.is_file()) / 1e6
    print(f"search indexes built from the database (tantivy + faiss HNSW{search_index.HNSW_M}, as the embedding "
          f"worker keeps them): {built_s:.1f} s, {side_mb:.0f} MB beside the database", flush=True)
    shipped = Searcher(emb)
    t = time.perf_counter()
    shipped.index_for(conn).sync(conn)
    shipped.text_index_for(conn).search(conn, ["warm"], 1)
    print(f"snapshot and text index first load (every process): {(time.perf_counter() - t) * 1000:.0f} ms")
    ids, mat = index.ids[index.alive], index.mat[index.alive]
    qs = queries_from(conn, n_queries)
    lat: dict[str, list[float]] = {"query embedding (real model)": []}
    for q in qs:
        t = time.perf_counter()
        emb.embed([q])
        lat["query embedding (real model)"].append((time.perf_counter() - t) * 1000)
    hashed_q = {q: space.vector(q, hashlib.sha256(q.encode()).hexdigest()) for q in qs}

    shipped_vi = shipped.index_for(conn)
    assert shipped_vi._ann is not None, "the HNSW snapshot was not picked up"
    vec_cands: dict[str, tuple[float, Callable[[np.ndarray, int], list]]] = {
        "exact (NumPy matrix, today)": (0.0, index.top),
        f"HNSW{search_index.HNSW_M} ef={search_index.EF_SEARCH} + exact re-score (shipped)": (built_s, shipped_vi.top)}
    opt_db = db.parent / "optimized.db"
    shutil.copy(db, opt_db)
    opt = store.connect(opt_db)
    t = time.perf_counter()
    opt.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")
    print(f"FTS5 'optimize' (one b-tree per term) on a copy: {time.perf_counter() - t:.1f} s")
    text_reader = shipped.text_index_for(conn)
    bm25_cands: dict[str, Callable[[str, int], list]] = {
        "FTS5 (today)": lambda q, n: today._bm25(conn, q, n, {}),
        "FTS5 after 'optimize'": lambda q, n: today._bm25(opt, q, n, {}),
        "tantivy (shipped)": lambda q, n: text_reader.search(conn, query_words(q), n),
    }
    if everything:
        print(f"load average {os.getloadavg()[0]:.2f}; building the other candidates", flush=True)
        vec_cands.update(faiss_candidates(ids, mat))
        vec_cands.update(usearch_candidates(ids, mat))
        for name in dict.fromkeys(n.rsplit(" ef=", 1)[0] for n in list(vec_cands)[2:]):
            print(f"  built {name}: {next(b for n, (b, _) in vec_cands.items() if n.startswith(name)):.1f} s")
    hybrids = {"hybrid today (FTS5 + exact)": today, "hybrid shipped (tantivy + HNSW)": shipped}
    recall: dict[str, dict[str, list[float]]] = {}
    truth = {kind: {q: exact_top(ids, mat, (emb.cache[q] if kind == "real" else hashed_q[q]), 10) for q in qs}
             for kind in ("real", "hashed")}
    for q in qs:  # interleaved: every candidate sees the same load
        vec = emb.cache[q]
        for name, (_, fn) in vec_cands.items():
            t = time.perf_counter()
            fn(vec, 80)
            lat.setdefault("vector " + name, []).append((time.perf_counter() - t) * 1000)
            for kind, qv in (("real", vec), ("hashed", hashed_q[q])):
                got = {c for c, _ in fn(qv, 80)[:10]}  # as search asks: a pool of 80, its best 10
                recall.setdefault(name, {}).setdefault(kind, []).append(len(got & truth[kind][q]) / 10)
        for name, fn in bm25_cands.items():
            t = time.perf_counter()
            fn(q, 80)
            lat.setdefault("bm25 " + name, []).append((time.perf_counter() - t) * 1000)
        for name, searcher in hybrids.items():
            t = time.perf_counter()
            searcher.search(conn, q, k=10, mode="hybrid")
            lat.setdefault(name, []).append((time.perf_counter() - t) * 1000)
    print(f"latency of {n_queries} queries (k=10, pool 80), query embedding excluded except on its line; "
          f"load average {os.getloadavg()[0]:.2f}")
    for name, values in lat.items():
        extra = ""
        for cand, by_kind in recall.items():
            if name == "vector " + cand:
                extra = "recall@10 of exact: real-model queries {:.3f}, word-space queries {:.3f}".format(
                    *(statistics.mean(by_kind[k]) for k in ("real", "hashed")))
        line(name, values, extra)
    same = sum(today.search(conn, q, k=10, mode="bm25")[0].item_id == shipped.search(conn, q, k=10, mode="bm25")[0]
               .item_id for q in qs[:100] if today.search(conn, q, k=1, mode="bm25"))
    print(f"BM25 top result the same item in FTS5 and tantivy: {same} of {min(100, len(qs))} queries")
    t = time.perf_counter()
    proj = conn.execute("SELECT project FROM items ORDER BY rowid DESC LIMIT 1").fetchone()[0]
    for q in qs[:50]:
        shipped.search(conn, q, k=10, mode="vector", project=proj)
    print(f"vector search with a project filter (exact scan of the matrix, mean, incl. query embedding from cache): "
          f"{(time.perf_counter() - t) * 1000 / 50:.1f} ms")
    print(f"peak RSS so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)
    opt.close()
    conn.close()
    shutil.rmtree(db.parent, ignore_errors=True)
    shutil.rmtree(side, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--real-vectors", type=int, default=2000, help="chunk texts embedded with the real model")
    ap.add_argument("--all", action="store_true",
                    help="also build and measure the candidates not chosen (faiss HNSW and SQ8 alone, usearch)")
    args = ap.parse_args()
    cfg = config.load(env=dict(os.environ))
    bulk = get_embedder(cfg, threads=os.cpu_count() or 1)  # as the embedding worker runs it (embed.threads)
    real = get_embedder(cfg)  # as an API process embeds a query (embed.query_threads)
    if not isinstance(real, LocalEmbedder) and not hasattr(real, "max_tokens"):
        raise SystemExit("the bench needs the local embedder")
    files = real_files()
    sessions = session_items()
    print(f"2026 store bench: {os.cpu_count()} cores; numpy {np.__version__}; embedder {real.model_id}; "
          f"{len(files):,} text files, {len(sessions)} Claude sessions; load average {os.getloadavg()[0]:.2f}")
    for size in args.sizes:
        bench_size(size, args.queries, real, bulk, files, sessions, args.real_vectors, args.all)


if __name__ == "__main__":
    main()
