"""Ingest latency through the real server: POST /api/v1/items of 100 items / ~500 kB, end to end.

Run:  python bench/ingest_bench.py [--batches 20] [--items 100] [--item-bytes 5000]

What it measures, side by side in one run (this machine is noisy; compare within a run):
- ``idle``: brain serve (gunicorn, 2 workers x 4 threads) with its embedding worker switched off,
  so nothing else competes for the cores;
- ``busy``: the same with the embedding worker on and a backlog to work through, which is what a
  collector meets on a first ingest: the worker embeds on every core while the POSTs arrive.
By default the POSTs start once both API workers have logged their warm-up ("search warm in"),
as a collector meets a server that has been up for a few seconds; the first POST is printed on its
own as well. ``--from-boot`` POSTs from the moment ``/healthz`` answers, while each worker's ingest
child is still starting on the same cores (what ``run-local.sh``'s first batch meets).
Each batch holds new items (distinct ids and texts) cut from real files: the Python standard
library's sources, as a developer's code looks. The numbers are client-side wall times of the
whole request (JSON encoding, HTTP on loopback, validation, chunking, one write transaction).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import requests

TOKEN = "bench-token-" + "x" * 20


def corpus(item_bytes: int, count: int) -> list[str]:
    """``count`` distinct texts of about ``item_bytes`` each, cut from the stdlib's .py files."""
    texts: list[str] = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        data = path.read_text(errors="replace")
        for start in range(0, len(data) - item_bytes, item_bytes):
            texts.append(f"# {path.name} @{start}\n" + data[start:start + item_bytes])
            if len(texts) == count:
                return texts
    raise SystemExit(f"the stdlib has fewer than {count} pieces of {item_bytes} bytes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WORKERS = 2  # brain serve's default for 2 cores; each logs one warm-up line


def start(tmp: Path, worker: bool, from_boot: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, BRAIN_DB=str(tmp / "bench.db"), BRAIN_API_TOKENS=TOKEN, BRAIN_SERVER_PORT=str(port),
               BRAIN_SERVER_HOST="127.0.0.1", BRAIN_SERVER_EMBED_WORKER="true" if worker else "false")
    log = open(tmp / "server.log", "ab")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([sys.executable, "-m", "brain", "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=1).ok and (
                    from_boot or (tmp / "server.log").read_text(errors="replace").count("search warm in") >= WORKERS):
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("brain serve did not start; see " + str(tmp / "server.log"))


def run(label: str, worker: bool, texts: list[str], items: int, batches: int, from_boot: bool) -> list[float]:
    h = {"Authorization": f"Bearer {TOKEN}"}
    with tempfile.TemporaryDirectory() as d:
        proc, url = start(Path(d), worker, from_boot)
        try:
            times = []
            for b in range(batches):
                chunk = texts[b * items:(b + 1) * items]
                body = {"items": [{"id": f"file:bench:/{label}/{b}/{i}.py", "source": "file", "title": f"{b}/{i}.py",
                                   "content": t, "meta": {"language": "python"}} for i, t in enumerate(chunk)]}
                t0 = time.perf_counter()
                r = requests.post(url + "/api/v1/items", json=body, headers=h, timeout=300)
                times.append(time.perf_counter() - t0)
                r.raise_for_status()
            stats = requests.get(url + "/api/v1/stats", headers=h, timeout=60).json()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    model = stats["embedding_model"]
    print(f"{label:5}  batches {batches}, {stats['total_chunks']} chunks stored, vectors so far "
          f"{stats['embedding'][model]['embedded']}: p50 {statistics.median(times) * 1000:.0f} ms, "
          f"p95 {statistics.quantiles(times, n=20)[18] * 1000:.0f} ms, max {max(times) * 1000:.0f} ms, "
          f"first {times[0] * 1000:.0f} ms")
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--item-bytes", type=int, default=5000)
    ap.add_argument("--from-boot", action="store_true",
                    help="POST as soon as /healthz answers, without waiting for the workers' warm-up")
    args = ap.parse_args()
    texts = corpus(args.item_bytes, args.items * args.batches)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.items} items x {args.item_bytes} bytes per batch "
          f"({args.items * args.item_bytes / 1000:.0f} kB); "
          + ("from boot" if args.from_boot else "after the workers' warm-up"))
    idle = run("idle", False, texts, args.items, args.batches, args.from_boot)
    busy = run("busy", True, texts, args.items, args.batches, args.from_boot)
    print(f"p95 busy / idle: {statistics.quantiles(busy, n=20)[18] / statistics.quantiles(idle, n=20)[18]:.2f}")


if __name__ == "__main__":
    main()
