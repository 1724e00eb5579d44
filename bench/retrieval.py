"""Retrieval quality: recall@5 and MRR of vector-only, BM25-only and hybrid search on a fixture corpus.

Run:  python bench/retrieval.py [--corpus bench/corpus] [--k 5] [--misses] [--json]

Why: ``ask`` can only be as good as what retrieval hands the LLM, and a change to chunking, fusion
or the embedding model should be judged by numbers rather than by one lucky question. The corpus
(``bench/corpus/items.json``) is ingested into a temporary database through the real
``Store.upsert`` with the configured embedder (the local MiniLM by default); each question in
``questions.json`` lists its relevant item ids.

- recall@k: the share of a question's relevant items found in the top k, averaged over questions.
- MRR: the mean of 1/rank of the first relevant item (0 when none is in the top ``--depth``).
One result per item (``per_item=True``), as ``/api/v1/search`` returns them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))

from brain.core import store  # noqa: E402
from brain.core.embed import get_embedder  # noqa: E402
from brain.core.search import MODES, Searcher  # noqa: E402
from brain.shared import config

HERE = Path(__file__).resolve().parent


def load_corpus(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Items and questions; every expected id must exist, or the numbers would be meaningless."""
    items = json.loads((folder / "items.json").read_text(encoding="utf-8"))["items"]
    questions = json.loads((folder / "questions.json").read_text(encoding="utf-8"))["questions"]
    ids = {it["id"] for it in items}
    for q in questions:
        missing = [e for e in q["expected"] if e not in ids]
        if not q["expected"] or missing:
            raise SystemExit(f"questions.json: {q['q']!r} expects unknown items {missing or '(none given)'}")
    return items, questions


def evaluate(searcher: Searcher, conn, questions: list[dict[str, Any]], mode: str, k: int,
             depth: int) -> dict[str, Any]:
    """recall@k, MRR and latency of one mode, plus the questions it missed."""
    recalls, rr, times, misses = [], [], [], []
    for q in questions:
        start = time.perf_counter()
        hits = searcher.search(conn, q["q"], k=depth, mode=mode, per_item=True)
        times.append((time.perf_counter() - start) * 1000)
        ranked = [h.item_id for h in hits]
        expected = set(q["expected"])
        recalls.append(len(expected & set(ranked[:k])) / len(expected))
        first = next((i for i, item in enumerate(ranked, 1) if item in expected), None)
        rr.append(1.0 / first if first else 0.0)
        if not expected & set(ranked[:k]):
            misses.append({"q": q["q"], "expected": q["expected"], "got": ranked[:k]})
    n = len(questions)
    times.sort()
    return {"mode": mode, f"recall@{k}": sum(recalls) / n, "mrr": sum(rr) / n,
            "p50_ms": times[n // 2], "misses": misses}


def run(corpus: Path, k: int = 5, depth: int = 10) -> dict[str, Any]:
    """Ingest the corpus into a temporary store and evaluate every mode."""
    cfg = config.load()
    items, questions = load_corpus(corpus)
    embedder = get_embedder(cfg)
    with tempfile.TemporaryDirectory(prefix="brain-bench-") as tmp:
        conn = store.connect(Path(tmp) / "bench.db")
        try:
            store.migrate(conn)
            started = time.perf_counter()
            store.Store(conn, cfg.embed.chunk_tokens, cfg.embed.chunk_overlap).upsert(items, embedder)
            ingest_s = time.perf_counter() - started
            searcher = Searcher(embedder)
            modes = {"vector": "vector", "bm25": "bm25", "hybrid": "hybrid"}
            assert set(modes) == set(MODES)
            results = [evaluate(searcher, conn, questions, mode, k, depth) for mode in modes]
        finally:
            conn.close()
    return {"embedder": embedder.model_id, "items": len(items), "questions": len(questions), "k": k,
            "ingest_s": round(ingest_s, 2), "results": results}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=HERE / "corpus", help="folder with items.json, questions.json")
    parser.add_argument("--k", type=int, default=5, help="cut-off for recall")
    parser.add_argument("--depth", type=int, default=10, help="results fetched per question (MRR cut-off)")
    parser.add_argument("--misses", action="store_true", help="list the questions each mode missed")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    report = run(args.corpus, args.k, max(args.depth, args.k))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"corpus: {report['items']} items, {report['questions']} questions; embedder {report['embedder']}; "
          f"ingest {report['ingest_s']} s")
    print(f"{'mode':<8} {'recall@' + str(args.k):>9} {'MRR':>6} {'p50 ms':>7}")
    for r in report["results"]:
        print(f"{r['mode']:<8} {r[f'recall@{args.k}']:>9.3f} {r['mrr']:>6.3f} {r['p50_ms']:>7.1f}")
    if args.misses:
        for r in report["results"]:
            for m in r["misses"]:
                print(f"  miss [{r['mode']}] {m['q']!r}: expected {m['expected']}, got {m['got']}")


if __name__ == "__main__":
    main()
