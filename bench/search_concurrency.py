"""Search latency through the real API while an ingest runs: 8 search clients against gunicorn on loopback.

Run:  python bench/search_concurrency.py [--chunks 100000] [--clients 8] [--seconds 60]

What it measures, in one run on one store (compare the phases within a run; this machine is shared):
- the store: ``bench/store_bench.py``'s real text (Claude sessions, stdlib and package sources and
  docs) with a distinct vector per chunk (its word-space vectors, under the server's model id, so
  hybrid search fuses both signals at full size; the query is embedded by the server with the real
  model), and the search indexes built as the embedding worker keeps them;
- the server as deployed: ``brain serve`` (gunicorn, ``server.workers`` = 2 processes x 4 threads) and
  ``brain embed-worker`` as its own process at ``nice 15``, as the brain role's systemd units run them;
- ``search only``: the clients' hybrid searches (end to end: HTTP, query embedding, BM25, vectors,
  fusion, JSON) with nothing else running;
- ``search + ingest``: the same while one client POSTs 100-item batches of new real files as fast as
  they are answered, so the embedding worker has a growing backlog and embeds on every core.
Every request's wall time is kept; any status other than 200 is counted and printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import store_bench as sb  # noqa: E402
from ingest_bench import free_port  # noqa: E402

from brain.core import search_index, store  # noqa: E402
from brain.core.embed import get_embedder, get_text_model  # noqa: E402
from brain.shared import config  # noqa: E402

TOKEN = "bench-token-" + "x" * 20


def start_server(db: Path, log: Path) -> tuple[list[subprocess.Popen[bytes]], str]:
    port = free_port()
    env = dict(os.environ, BRAIN_DB=str(db), BRAIN_API_TOKENS=TOKEN, BRAIN_SERVER_PORT=str(port),
               BRAIN_SERVER_HOST="127.0.0.1", BRAIN_SERVER_EMBED_WORKER="false")
    out = open(log, "ab")  # noqa: SIM115 - lives as long as the server
    procs = [subprocess.Popen([sys.executable, "-m", "brain", "serve"], env=env, stdout=out, stderr=out),
             subprocess.Popen(["nice", "-n", "15", sys.executable, "-m", "brain", "embed-worker"], env=env,
                              stdout=out, stderr=out)]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/readyz", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=2).ok:
                return procs, url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    for p in procs:
        p.kill()
    raise SystemExit(f"brain serve did not get ready; see {log}")


def search_client(url: str, queries: list[str], stop: threading.Event, out: list[float], bad: list[str],
                  offset: int) -> None:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {TOKEN}"
    n = offset
    while not stop.is_set():
        q = queries[n % len(queries)]
        n += 1
        t = time.perf_counter()
        r = s.get(url + "/api/v1/search", params={"q": q, "k": 10}, timeout=120)
        out.append(time.perf_counter() - t)
        if r.status_code != 200:
            bad.append(f"{r.status_code} {r.text[:200]}")


def ingest_client(url: str, items: list[dict[str, Any]], stop: threading.Event, out: list[float],
                  bad: list[str]) -> None:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {TOKEN}"
    for start in range(0, len(items), 100):
        if stop.is_set():
            return
        t = time.perf_counter()
        r = s.post(url + "/api/v1/items", json={"items": items[start:start + 100]}, timeout=300)
        out.append(time.perf_counter() - t)
        if r.status_code != 200:
            bad.append(f"POST {r.status_code} {r.text[:200]}")


def pct(values: list[float], p: float) -> float:
    return sb.percentile(values, p) * 1000


def phase(name: str, url: str, queries: list[str], clients: int, seconds: float,
          ingest: list[dict[str, Any]] | None) -> None:
    stop = threading.Event()
    lat: list[list[float]] = [[] for _ in range(clients)]
    posts: list[float] = []
    bad: list[str] = []
    threads = [threading.Thread(target=search_client, args=(url, queries, stop, lat[i], bad, i * 37))
               for i in range(clients)]
    if ingest is not None:
        threads.append(threading.Thread(target=ingest_client, args=(url, ingest, stop, posts, bad)))
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join()
    every = [x for part in lat for x in part]
    backlog = requests.get(url + "/api/v1/stats", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60).json()
    emb = backlog["embedding"][backlog["embedding_model"]]
    print(f"{name:16s} {len(every) / seconds:6.2f} searches/s  p50 {pct(every, 50):7.1f} ms  p95 {pct(every, 95):7.1f} ms"
          f"  p99 {pct(every, 99):7.1f} ms  max {max(every) * 1000:7.1f} ms  errors {len(bad)}"
          f"  load {os.getloadavg()[0]:.2f}")
    if posts:
        print(f"{'':16s} ingest: {len(posts)} POSTs of 100 items, p50 {pct(posts, 50):.0f} ms, p95 {pct(posts, 95):.0f} ms;"
              f" embedding backlog now {emb['queued']:,} queued, {emb['rate_per_min']:,}/min")
    for b in bad[:5]:
        print("   ", b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--db", type=Path, help="reuse a store this bench built before (its folder is kept)")
    args = ap.parse_args()
    cfg = config.load(env=dict(os.environ))
    model_id = get_text_model(cfg).model_id
    files = sb.real_files()
    sessions = sb.session_items()
    if args.db:
        db = args.db
        n_items = 0
    else:
        print(f"load average {os.getloadavg()[0]:.2f}; building a store of {args.chunks:,} chunks of real text")
        db, _, n_items, _, _, _ = sb.build(args.chunks, get_embedder(cfg), files, sessions, 0, model_id)
        search_index.catch_up(db, model_id)
        print(f"store kept in {db} (--db to reuse it)")
    conn = store.connect(db)
    n_items = n_items or conn.execute("SELECT count(*) FROM items").fetchone()[0]
    n_chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    queries = sb.queries_from(conn, 400)
    stored = {r[0] for r in conn.execute("SELECT id FROM items")}
    conn.close()
    fresh = [it for it in sb.file_items(files[len(stored):]) if it["id"] not in stored][:3000]
    procs, url = start_server(db, db.parent / "server.log")
    try:
        print(f"store: {n_chunks:,} chunks in {n_items:,} items; server {url}: 2 workers x 4 threads, "
              f"embedding worker at nice 15; {args.clients} search clients, hybrid, k=10, {args.seconds:.0f} s a phase")
        phase("warm-up", url, queries, args.clients, min(10.0, args.seconds), None)
        phase("search only", url, queries, args.clients, args.seconds, None)
        phase("search + ingest", url, queries, args.clients, args.seconds, fresh)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)


if __name__ == "__main__":
    main()
