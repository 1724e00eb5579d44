"""Store benchmark: ingest rate, and search latency and recall of every candidate index, side by side,
at 10k and 100k chunks of real text.

Run:  python bench/store_bench.py [--sizes 10000 100000] [--queries 200] [--real-vectors 2000]
      python bench/store_bench.py --sizes 100000 --real-vectors 101000 --embed-only   # fill the cache, stop any time

How it measures, honestly:
- The text is real: the Claude Code sessions of the test fixtures and of the retrieval evaluation (read
  by the real Claude collector), then Python sources, READMEs and docs of the standard library and the
  installed packages, one item per file, cut by the project's chunker with the real tokenizer.
- The vectors are distinct, and say where they come from. The first ``--real-vectors`` queued chunk
  texts are embedded with the REAL local model; those vectors are kept in ``--vector-cache`` (by
  default /var/tmp/brain-bench-vectors.sqlite, keyed by model and text hash), so a later run embeds only
  what no earlier run did. Embedding 100k chunks takes 50-70 minutes of both cores here, so every other
  text gets a deterministic vector in the model's own space (``WordSpace``): the tf-idf-weighted sum of
  the real model's vectors of its words (the 20,000 most common words are embedded once), plus a little
  noise seeded by the text's sha256, normalised. Texts about the same things are near each other as with
  the model, so an approximate index meets the clusters of real embeddings rather than uniform noise,
  and no two texts share a vector.
- The two kinds of vector do not mix well: word-space vectors crowd into a narrow cone (two random
  ones have a mean cosine of about 0.73, real ones 0.23), so a store holding both is two far-apart
  populations, which no store of one model is. Recall is therefore also measured on stores of one
  kind, each searched as a store of its own (``index_variants``): every chunk's word-space vector (the
  full size), the chunks given real vectors with their real vectors, and the same chunks with their
  word-space twins.
- Queries are 2-7 consecutive words taken from random chunks (function words and all), as a person
  half-remembering a passage types them. Each is embedded once with the real model (that time is its own
  line); every latency line below it excludes it, so search cost and model cost are both visible.
- Recall@10 of an approximate vector index is measured against the exact scan over the same vectors,
  as search asks (a pool of 80 candidates, its best 10), for three kinds of query vector: the real
  model's, the word-space vector of the same words, and a stored vector plus noise (in-distribution).
  Chunks with the same text share a vector, so recall is given by chunk id and with ties at the 10th
  place counted as found.
- Every HNSW variant (degree M 32 / 48 / 64 x efSearch 256-768) is scored on every store and query set,
  and timed through the shipped search path with its graph in place of the keeper's snapshot.
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

    def __init__(self, real: Any, texts: list[str], size: int = 20_000, cache: Any = None):
        df: dict[str, int] = {}
        for t in texts:
            for w in set(_WORD.findall(t.lower())):
                df[w] = df.get(w, 0) + 1
        vocab = sorted(df, key=lambda w: (-df[w], w))[:size]
        self.index = {w: i for i, w in enumerate(vocab)}
        self.idf = np.array([np.log(len(texts) / df[w]) + 1.0 for w in vocab], np.float32)
        began = time.perf_counter()
        keys = ["word:" + hashlib.sha256(w.encode()).hexdigest() for w in vocab]
        known = cache.get(keys) if cache is not None else {}
        todo = [i for i, k in enumerate(keys) if k not in known]
        for start in range(0, len(todo), 256):
            part = todo[start:start + 256]
            vecs = real.embed([vocab[i] for i in part]).vectors
            pairs = [(keys[i], np.asarray(v, np.float32)) for i, v in zip(part, vecs)]
            known.update(pairs)
            if cache is not None:
                cache.put(pairs)
        self.words = np.stack([known[k] for k in keys]) if keys else np.zeros((0, DIM), np.float32)
        self.embed_s = time.perf_counter() - began
        self.twins: dict[str, np.ndarray] = {}  # word-space vectors of the texts given real ones (fill_vectors)

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


class VectorCache:
    """Real-model vectors of chunk texts kept on disk between runs (``--vector-cache``, by default
    under /var/tmp), keyed by the model and the text's hash: embedding 100k chunks takes over an hour
    on 2 cores, so a run embeds only what no earlier run did, and a run killed part way keeps every
    batch it committed."""

    def __init__(self, path: Path | None, model_id: str):
        import sqlite3

        self.model_id = model_id
        self.conn = sqlite3.connect(str(path) if path else ":memory:")
        self.conn.execute("CREATE TABLE IF NOT EXISTS vectors(model TEXT, text_hash TEXT, vector BLOB, "
                          "PRIMARY KEY(model, text_hash)) WITHOUT ROWID")

    def get(self, hashes: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), 500):
            part = hashes[start:start + 500]
            out.update((h, np.frombuffer(v, np.float32)) for h, v in self.conn.execute(
                f"SELECT text_hash, vector FROM vectors WHERE model = ? AND text_hash IN ({','.join('?' * len(part))})",
                [self.model_id, *part]))
        return out

    def put(self, pairs: list[tuple[str, np.ndarray]]) -> None:
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                                  [(self.model_id, h, np.asarray(v, np.float32).tobytes()) for h, v in pairs])


def fill_vectors(conn, real: Any, n_real: int, model_id: str = MODEL_ID,
                 cache: VectorCache | None = None) -> tuple[set[str], float, WordSpace, int]:
    """A vector for every queued text, stored as the embedding worker would: the first ``n_real`` from
    the real model (in queue order; from ``cache`` when an earlier run embedded them), the rest from
    ``WordSpace``. Returns (the text hashes given real vectors, seconds spent embedding, the word space,
    of the real vectors how many came from the cache)."""
    st = store.Store(conn)
    queued = st.claim(model_id, 10**9)
    cache = cache or VectorCache(None, getattr(real, "model_id", "real"))
    wanted = queued[:n_real]
    known = cache.get([q.text_hash for q in wanted])
    took = 0.0
    missing = [q for q in wanted if q.text_hash not in known]
    for start in range(0, len(missing), 64):
        part = missing[start:start + 64]
        t = time.perf_counter()
        vecs = real.embed([q.text or "" for q in part]).vectors
        took += time.perf_counter() - t
        cache.put([(q.text_hash, v) for q, v in zip(part, vecs)])
        known.update((q.text_hash, np.asarray(v, np.float32)) for q, v in zip(part, vecs))
        if (start // 64) % 50 == 0:
            print(f"  real vectors: {start + len(part):,} of {len(missing):,} embedded "
                  f"({(start + len(part)) / max(took, 1e-9):.1f} chunks/s; load {os.getloadavg()[0]:.1f})", flush=True)
    done: list[tuple[Any, np.ndarray]] = [(q, known[q.text_hash]) for q in wanted]
    space = WordSpace(real, [q.text or "" for q in queued], cache=cache)
    done += [(q, space.vector(q.text or "", q.text_hash)) for q in queued[len(done):]]
    for start in range(0, len(done), 5000):
        st.store_vectors(model_id, done[start:start + 5000], [], 0, 0.0)
    space.twins = {q.text_hash: space.vector(q.text or "", q.text_hash) for q in wanted}
    return {q.text_hash for q in wanted}, took, space, len(wanted) - len(missing)


def build(target_chunks: int, real: Any, files: list[Path], sessions: list[dict[str, Any]],
          n_real: int, model_id: str = MODEL_ID,
          cache: VectorCache | None = None) -> tuple[Path, float, int, set[str], float, WordSpace, int]:
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
    real_hashes, real_s, space, cached = fill_vectors(conn, real, n_real, model_id, cache)
    conn.close()
    return tmp / "bench.db", ingest_s, n_items, real_hashes, real_s, space, cached


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


# ---------------------------------------------------------------------- HNSW variants and query sets

VARIANTS = ((32, (256, 384, 512, 768)), (48, (256, 384, 512)), (64, (256, 384, 512)))  # (M, efSearch values)


def hnsw_graph(ids: np.ndarray, mat: np.ndarray, m: int) -> tuple[Any, float]:
    """An HNSW graph like the keeper's (``search_index.new_vector_index``) of degree ``m``, built on
    every core (the keeper builds on one: same graph quality, measured by the M=32 line beside the
    keeper's own snapshot)."""
    faiss = search_index._faiss()
    t = time.perf_counter()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        graph = faiss.IndexIDMap2(faiss.IndexHNSWFlat(mat.shape[1], m, faiss.METRIC_INNER_PRODUCT))
        graph.add_with_ids(np.ascontiguousarray(mat), ids)
    finally:
        faiss.omp_set_num_threads(1)
    return graph, time.perf_counter() - t


def set_ef(graph: Any, ef: int) -> None:
    search_index._faiss().downcast_index(graph.index).hnsw.efSearch = ef


def exact_truth(ids: np.ndarray, mat: np.ndarray, vec: np.ndarray, n: int = 10) -> tuple[set[int], float]:
    """The exact top n chunk ids and the n-th best cosine (chunks with the same text share a vector:
    any of a tie at the n-th place is as right as another)."""
    sims = mat @ vec
    best = np.argpartition(-sims, n - 1)[:n]
    return {int(ids[i]) for i in best}, float(sims[best].min())


def graph_recall(graph: Any, ef: int, queries: list[np.ndarray],
                 truth: list[tuple[set[int], float]]) -> tuple[float, float]:
    """Recall@10 of exact as search asks (a pool of 80, its best 10): by chunk id, and counting a chunk
    as found when its cosine reaches the exact 10th best (a tie). An HNSWFlat graph's scores are the
    exact inner products, so its best 10 of the pool are what the exact re-score keeps."""
    set_ef(graph, ef)
    by_id, by_score = [], []
    for qv, (want, tenth) in zip(queries, truth):
        sims, labels = graph.search(qv[None, :], 80)
        order = np.argsort(-sims[0])[:10]
        best = [(int(labels[0][i]), float(sims[0][i])) for i in order if labels[0][i] >= 0]
        by_id.append(len({c for c, _ in best} & want) / 10)
        by_score.append(sum(c in want or s >= tenth - 1e-5 for c, s in best) / 10)
    return statistics.mean(by_id), statistics.mean(by_score)


def in_distribution(mat: np.ndarray, count: int, noise: float = 0.5) -> list[np.ndarray]:
    """Query vectors near the stored ones: a random stored vector plus noise of norm ``noise``, normalised."""
    rng = np.random.default_rng(11)
    out = []
    for r in rng.choice(len(mat), count, replace=False):
        v = np.asarray(mat[r] + rng.standard_normal(mat.shape[1]) * (noise / np.sqrt(mat.shape[1])), np.float32)
        out.append(v / np.linalg.norm(v))
    return out


def index_variants(conn, shipped: Searcher, vi: Any, ids: np.ndarray, mat: np.ndarray, qs: list[str],
                   real_q: dict[str, np.ndarray], word_q: dict[str, np.ndarray], space: WordSpace,
                   real_hashes: set[str]) -> None:
    """Every HNSW variant (degree M x efSearch) on the same store and queries, side by side:
    recall@10 of exact on each query set, and vector and hybrid latency through the shipped search
    path (the variant's graph put in place of the keeper's snapshot; interleaved, so one load)."""
    real_set, word_set = [real_q[q] for q in qs], [word_q[q] for q in qs]
    hash_of = dict(conn.execute("SELECT id, embed_hash FROM chunks"))
    sub = np.flatnonzero(np.fromiter((hash_of.get(int(c)) in real_hashes for c in ids), bool, len(ids)))
    twins = np.stack([space.twins[hash_of[int(c)]] for c in ids[sub]]) if sub.size else np.zeros((0, DIM), np.float32)
    # stores: (label, chunk ids, vectors, {query set: query vectors}); each is searched as a store of its own
    stores: list[tuple[str, np.ndarray, np.ndarray, dict[str, list[np.ndarray]]]] = []
    if sub.size and sub.size < len(ids):
        words_only = mat.copy()
        words_only[sub] = twins
        stores.append((f"{len(ids):,} mixed ({sub.size:,} real)", ids, mat, {
            "real-model q": real_set, "word-space q": word_set, "in-distribution q": in_distribution(mat, len(qs))}))
        stores.append((f"{len(ids):,} word-space", ids, words_only, {
            "word-space q": word_set, "real-model q": real_set, "in-distribution q": in_distribution(words_only, len(qs))}))
        if sub.size >= 1000:
            stores.append((f"{sub.size:,} real", ids[sub], mat[sub], {
                "real-model q": real_set, "in-distribution q": in_distribution(mat[sub], len(qs))}))
            stores.append((f"their {sub.size:,} word-space twins", ids[sub], twins, {
                "word-space q": word_set, "real-model q": real_set}))
    else:
        stores.append((f"{len(ids):,} {'real' if sub.size else 'word-space'}", ids, mat, {
            "real-model q": real_set, "word-space q": word_set, "in-distribution q": in_distribution(mat, len(qs))}))
    truth = {(label, name): [exact_truth(sids, smat, v) for v in vs]
             for label, sids, smat, sets in stores for name, vs in sets.items()}
    print(f"\nHNSW variants, each store searched as a store of its own; load average {os.getloadavg()[0]:.2f}")
    pairs = np.random.default_rng(13).integers(0, 2**31, (2, 2000))
    for label, _, smat, _ in stores:
        a, b = pairs % len(smat)
        print(f"  store {label}: mean cosine of two random vectors {float(np.mean(np.sum(smat[a] * smat[b], 1))):.3f}",
              flush=True)
    keeper_ann = vi._ann
    rows: list[dict[str, Any]] = []
    for m, efs in VARIANTS:
        graphs = {label: hnsw_graph(sids, smat, m) for label, sids, smat, _ in stores}
        graph, built = graphs[stores[0][0]]  # the store the database holds: its latency is measured below
        print(f"  built HNSW{m}: " + ", ".join(f"{label} {b:.1f} s" for label, (_, b) in graphs.items())
              + f" (load {os.getloadavg()[0]:.2f})", flush=True)
        for ef in efs:
            row = {"name": f"HNSW{m} ef={ef}", "graph": graph, "ef": ef, "built": built, "vector": [], "hybrid": []}
            row["recall"] = {(label, name): graph_recall(graphs[label][0], ef, vs, truth[label, name])
                             for label, _, _, sets in stores for name, vs in sets.items()}
            rows.append(row)
        for label in list(graphs)[1:]:
            del graphs[label]
    first, sets0 = stores[0][0], stores[0][3]
    keeper = {"name": f"keeper's snapshot HNSW{search_index.HNSW_M} ef={search_index.EF_SEARCH}", "graph": keeper_ann,
              "ef": search_index.EF_SEARCH, "built": 0.0, "vector": [], "hybrid": []}
    keeper["recall"] = {(first, name): graph_recall(keeper_ann, search_index.EF_SEARCH, vs, truth[first, name])
                        for name, vs in sets0.items()}
    rows.insert(0, keeper)
    try:
        for q in qs:  # interleaved: every variant sees the same load
            for row in rows:
                vi._ann = row["graph"]
                set_ef(row["graph"], row["ef"])
                t = time.perf_counter()
                vi.top(real_q[q], 80)
                row["vector"].append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                shipped.search(conn, q, k=10, mode="hybrid")
                row["hybrid"].append((time.perf_counter() - t) * 1000)
    finally:
        vi._ann = keeper_ann
        set_ef(keeper_ann, search_index.EF_SEARCH)
    print(f"latency of {len(qs)} queries per variant through the shipped search path (query embedding excluded); "
          f"load average {os.getloadavg()[0]:.2f}")
    for row in rows:
        print(f"  {row['name']:40s} vector p50 {statistics.median(row['vector']):6.2f} p95 "
              f"{percentile(row['vector'], 95):6.2f} ms   hybrid p50 {statistics.median(row['hybrid']):6.2f} p95 "
              f"{percentile(row['hybrid'], 95):6.2f} ms")
        by_store: dict[str, list[str]] = {}
        for (label, name), r in row["recall"].items():
            by_store.setdefault(label, []).append(f"{name} {r[0]:.3f} / {r[1]:.3f}")
        for label, parts in by_store.items():
            print(f"      recall@10 of exact (by id / ties counted), store {label}: " + "; ".join(parts))
    sys.stdout.flush()
    # an exact fallback for queries far from the graph: are the low-recall queries the ones whose
    # best cosine is low?
    set_ef(keeper_ann, search_index.EF_SEARCH)
    for name, vs in sets0.items():
        best, rec = [], []
        for qv, (want, _) in zip(vs, truth[first, name]):
            sims, labels = keeper_ann.search(qv[None, :], 80)
            order = np.argsort(-sims[0])
            best.append(float(sims[0][order[0]]))
            rec.append(len({int(c) for c in labels[0][order][:10]} & want) / 10)
        b, r = np.array(best), np.array(rec)
        parts = []
        for share in (0.05, 0.10, 0.25):
            tau = float(np.quantile(b, share))
            parts.append(f"{share:.0%} lowest (cos < {tau:.3f}) scanned exactly: recall {np.where(b < tau, 1.0, r).mean():.3f}")
        print(f"  exact fallback, keeper's snapshot, {name}: " + "; ".join(parts))


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
               sessions: list[dict[str, Any]], n_real: int, everything: bool,
               cache: VectorCache | None = None, embed_only: bool = False, variants: bool = True) -> None:
    db, ingest_s, n_items, real_hashes, real_s, space, cached = build(target, bulk, files, sessions, n_real,
                                                                      cache=cache)
    n_real_done = len(real_hashes)
    if embed_only:
        print(f"{n_real_done:,} real vectors in the cache ({cached:,} were there already)")
        shutil.rmtree(db.parent, ignore_errors=True)
        return
    conn = store.connect(db)
    n_chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    print(f"\n== {n_chunks:,} chunks ({n_items:,} items of real text, {len(sessions)} of them Claude sessions), "
          f"db {os.path.getsize(db) / 1e6:.0f} MB; load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"ingest (validate, chunk with the real tokenizer, FTS, queue): {n_items / ingest_s:,.0f} items/s, "
          f"{n_chunks / ingest_s:,.0f} chunks/s, {ingest_s:.1f} s")
    print(f"vectors: {n_real_done:,} from the real model ({cached:,} from the vector cache, the rest embedded "
          f"at {(n_real_done - cached) / max(real_s, 1e-9):.1f} chunks/s), "
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

    def at_ef(ef: int, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` with the keeper's snapshot searched at ``ef`` for this call (the width before 2026-12-04)."""
        def call(*args: Any, **kwargs: Any) -> Any:
            set_ef(shipped_vi._ann, ef)
            try:
                return fn(*args, **kwargs)
            finally:
                set_ef(shipped_vi._ann, search_index.EF_SEARCH)
        return call

    vec_cands[f"HNSW{search_index.HNSW_M} ef=256 + exact re-score (before 2026-12-04)"] = (built_s, at_ef(256, shipped_vi.top))
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
        for name in dict.fromkeys(n.rsplit(" ef=", 1)[0] for n in list(vec_cands)[3:]):
            print(f"  built {name}: {next(b for n, (b, _) in vec_cands.items() if n.startswith(name)):.1f} s")
    hybrids: dict[str, Any] = {"hybrid today (FTS5 + exact)": today, "hybrid shipped (tantivy + HNSW)": shipped,
                               "hybrid shipped, HNSW at ef=256 (before 2026-12-04)": at_ef(256, shipped.search)}
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
            (searcher if callable(searcher) else searcher.search)(conn, q, k=10, mode="hybrid")
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
    if variants:
        index_variants(conn, shipped, shipped_vi, ids, mat, qs, emb.cache, hashed_q, space, real_hashes)
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
    ap.add_argument("--vector-cache", type=Path, default=Path("/var/tmp/brain-bench-vectors.sqlite"),
                    help="real-model vectors kept between runs (keyed by model and text hash)")
    ap.add_argument("--embed-only", action="store_true",
                    help="build the stores and fill the vector cache, measure nothing (stop it any time)")
    ap.add_argument("--no-variants", action="store_true",
                    help="skip the HNSW variants (degree x efSearch) and the query sets they are scored on")
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
    cache = VectorCache(args.vector_cache, real.model_id)
    for size in args.sizes:
        bench_size(size, args.queries, real, bulk, files, sessions, args.real_vectors, args.all, cache,
                   args.embed_only, not args.no_variants)


if __name__ == "__main__":
    main()
