"""Retrieval evaluation that cannot be flattered: 245 questions over data nobody here tuned for.

Run:  python bench/retrieval_eval.py [--half dev|heldout|both] [--modes hybrid,vector,bm25] [--json OUT]
                                     [--misses] [--cache DIR] [--sweep] [--stores before,after,...]
                                     [--distractors CHUNKS] [--llm-url URL --llm-model TAG ...]

``--stores`` builds one store per variant of ``STORE_VARIANTS`` (how code is chunked, headers,
identifier splitting; issue 13, point 2) and scores each in the same run; ``--distractors`` adds
items no question asks for (``bench/eval/distractors.json``) so the haystack is ~12x bigger.
With ``--modes bm25`` alone nothing is embedded.

``--modes hybrid,hybrid+llm,hybrid+llm-rrf --llm-url URL`` is an experiment (issue 13, point 2, "the
LLM on the GPU VM for ``ask`` only"): the hybrid top ``--llm-top`` items of each question are judged
one by one by an LLM behind an OpenAI-compatible ``/v1`` (Ollama on the GPU VM, a llama.cpp server),
and ordered by the probability it gives "yes" (``hybrid+llm``) or by RRF of that order and the hybrid
one (``hybrid+llm-rrf``). Both are scored on the same hybrid candidates as ``hybrid``, in one run, with
the LLM's time per question beside them; ``--sample N`` scores N questions per half (a fixed subset).

Why a sibling of ``bench/retrieval.py``: that corpus was written beside the search it measures, and
scores it near 0.96. A user's questions are about code, sessions and pages the search has never seen.
This benchmark builds its corpus the way a user's brain is built:

- **code**: the sources of seven well-known pure-Python packages the project does not depend on
  (``bench/eval/sources.json``: exact versions and wheel sha256), fetched with ``pip download
  --no-deps``, unzipped, and read by the real files collector;
- **sessions**: the real Claude Code fixtures (``tests/fixtures/claude-projects``) plus sessions
  written in Claude Code's JSONL format (``bench/eval/claude-projects``), read by the real Claude
  collector;
- **browser**: hand-written history rows (``bench/eval/browser.json``) put into a real Chrome
  ``History`` and a Firefox ``places.sqlite`` file, read by the real browser collector.

Every item goes through the collectors' redaction and the store's ``Store.upsert`` (the code path
behind ``POST /api/v1/items``); vectors come from the embedding worker with the configured embedder;
questions are scored on ``Searcher.search(per_item=True)``, what ``/api/v1/search`` answers.

The questions (``bench/eval/questions.json``, how they were written: ``bench/eval/README.md``) carry
a development / held-out split fixed by a seed before any tuning: tune on ``dev``, report ``heldout``.
Metrics per mode, half and source: recall@5 (share of a question's expected items in the top 5),
MRR (1/rank of the first expected item within the top 10), nDCG@10 (binary relevance), and search
latency p50/p95. Vectors are cached by (model, text sha256) under ``--cache`` so a rerun only embeds
texts it has not seen; the cache holds exactly what the embedding worker would compute again.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "app"))
sys.path.insert(0, str(REPO))

from brain.collect import browser, claude, files  # noqa: E402
from brain.collect.outbox import Queued, Sink, State  # noqa: E402
from brain.collect.redact import default_redactor  # noqa: E402
from brain.core import search_index, store  # noqa: E402
from brain.core.embed import get_embedder, get_text_model  # noqa: E402
from brain.core.embed_worker import EmbedWorker  # noqa: E402
from brain.core.search import DEFAULT_FUSION, MODES, Fusion, Hit, Searcher  # noqa: E402
from brain.shared import config  # noqa: E402
from brain.shared.settings import FullConfig  # noqa: E402

EVAL = REPO / "bench" / "eval"
FIXTURE_SESSIONS = REPO / "tests" / "fixtures" / "claude-projects"
K = 5
DEPTH = 10
SOURCES = ("code", "session", "browser")
HOST = "eval"


# ---------------------------------------------------------------------- the data files


def load_questions(path: Path = EVAL / "questions.json") -> tuple[list[dict[str, Any]], int]:
    """The questions and their split seed; refuses a file whose splits are not the seeded ones
    (a question moved between halves after tuning would flatter the held-out numbers)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    questions, seed = doc["questions"], doc["split_seed"]
    expected = seeded_split(questions, seed)
    moved = [q["id"] for q in questions if q["split"] != expected[q["id"]]]
    if moved:
        raise SystemExit(f"{path}: split of {moved[:5]} differs from split_seed {seed}")
    if len({q["id"] for q in questions}) != len(questions):
        raise SystemExit(f"{path}: question ids repeat")
    return questions, seed


def seeded_split(questions: list[dict[str, Any]], seed: int) -> dict[str, str]:
    """Per source: ids sorted, shuffled with a seeded RNG, the first half (rounded up) is dev."""
    out: dict[str, str] = {}
    for source in sorted({q["source"] for q in questions}):
        ids = sorted(q["id"] for q in questions if q["source"] == source)
        random.Random(f"{seed}/{source}").shuffle(ids)
        half = (len(ids) + 1) // 2
        out.update({qid: "dev" if i < half else "heldout" for i, qid in enumerate(ids)})
    return out


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "brain-bench" / "retrieval-eval"


# ---------------------------------------------------------------------- code: pinned wheels


def fetch_sources(cache: Path, spec_file: Path = EVAL / "sources.json") -> list[Path]:
    """Download (once) and unzip each pinned wheel; return one folder per package.

    The sha256 of every wheel is checked against ``spec_file`` before it is unpacked."""
    spec = json.loads(spec_file.read_text(encoding="utf-8"))["packages"]
    wheels, src = cache / "wheels", cache / "src"
    wheels.mkdir(parents=True, exist_ok=True)
    roots = []
    for pkg in spec:
        wheel = wheels / pkg["wheel"]
        if not wheel.exists():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
                            "-d", str(wheels), f"{pkg['name']}=={pkg['version']}"], check=True)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != pkg["sha256"]:
            raise SystemExit(f"{wheel.name}: sha256 {digest} is not the pinned {pkg['sha256']}")
        root = src / f"{pkg['name']}-{pkg['version']}"
        if not root.exists():
            _unzip_package(wheel, root)
        roots.append(root)
    return roots


def _unzip_package(wheel: Path, root: Path) -> None:
    """The wheel's package folders only (no ``*.dist-info``), into a fresh ``root``."""
    tmp = root.with_name(root.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if not name.split("/", 1)[0].endswith(".dist-info"):
                zf.extract(name, tmp)
    tmp.rename(root)


# ---------------------------------------------------------------------- a fake home for the collectors


class ListSink(Sink):
    """Keeps what a collector produced (already redacted), in order."""

    def __init__(self, state: State):
        super().__init__(state)
        self.items: list[dict[str, Any]] = []

    def upsert(self, q: Queued) -> bool:
        self.items.append(q.item)
        self.queued += 1
        return True

    def delete(self, item_id: str) -> None:
        pass


@contextmanager
def fake_home(tmp: Path) -> Iterator[Path]:
    """HOME and XDG_CONFIG_HOME pointing into ``tmp`` while the collectors look for profiles."""
    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_CONFIG_HOME")}
    home = tmp / "home"
    home.mkdir()
    os.environ["HOME"], os.environ["XDG_CONFIG_HOME"] = str(home), str(home / ".config")
    try:
        yield home
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _us(iso: str) -> int:
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)
    return int((dt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000


def write_browsers(home: Path, rows: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """``browser.json`` (or ``rows`` of its shape) as a Chrome ``History`` and a Firefox
    ``places.sqlite`` (their real schemas)."""
    from tests.collectors.fakehome import CHROME_SCHEMA, FIREFOX_SCHEMA, write_profiles_ini

    rows = rows or json.loads((EVAL / "browser.json").read_text(encoding="utf-8"))
    db = home / ".config" / "google-chrome" / "Default" / "History"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.executescript(CHROME_SCHEMA)
        for r in rows["chrome"]:
            times = [_us(v) + browser.CHROME_EPOCH_OFFSET_US for v in r["visits"]]
            cur = conn.execute("INSERT INTO urls(url, title, visit_count, typed_count, last_visit_time, hidden) "
                               "VALUES (?, ?, ?, 0, ?, 0)", (r["url"], r["title"], len(times), max(times)))
            conn.executemany("INSERT INTO visits(url, visit_time, transition) VALUES (?, ?, 805306368)",
                             [(cur.lastrowid, t) for t in times])
            conn.executemany("INSERT INTO keyword_search_terms VALUES (2, ?, ?, ?)",
                             [(cur.lastrowid, t, t.lower()) for t in r.get("terms", [])])
    base = home / ".mozilla" / "firefox"
    write_profiles_ini(base, {"default-release": "evalprof.default-release"})
    places = base / "evalprof.default-release" / "places.sqlite"
    places.parent.mkdir(parents=True)
    with sqlite3.connect(places) as conn:
        conn.executescript(FIREFOX_SCHEMA)
        for n, r in enumerate(rows["firefox"]):
            times = [_us(v) for v in r["visits"]]
            cur = conn.execute("INSERT INTO moz_places(url, title, rev_host, visit_count, hidden, typed, frecency, "
                               "last_visit_date, guid, description) VALUES (?, ?, '', ?, 0, 0, 100, ?, ?, ?)",
                               (r["url"], r["title"], len(times), max(times), f"evalguid{n:04d}", r["description"]))
            conn.executemany("INSERT INTO moz_historyvisits(place_id, visit_date, visit_type, session) "
                             "VALUES (?, ?, 1, 0)", [(cur.lastrowid, t) for t in times])


def collect_corpus(cache: Path) -> list[dict[str, Any]]:
    """Every item of the evaluation, as the real collectors produce it."""
    roots = fetch_sources(cache)
    with tempfile.TemporaryDirectory(prefix="brain-eval-home-") as tmp_s:
        tmp = Path(tmp_s)
        projects = tmp / "claude" / "projects"
        shutil.copytree(FIXTURE_SESSIONS, projects, dirs_exist_ok=True)
        shutil.copytree(EVAL / "claude-projects", projects, dirs_exist_ok=True)
        with fake_home(tmp) as home:
            write_browsers(home)
            cfg = config.load(env=dict(os.environ), overrides={
                "collect.files_roots": [str(r) for r in roots], "collect.claude_roots": [str(tmp / "claude")],
                "collect.host": HOST}, kind=FullConfig)
            state = State(tmp / "state" / "collect.db")
            try:
                items = _run_collectors(cfg, state)
            finally:
                state.close()
    return items


def _run_collectors(cfg: FullConfig, state: State) -> list[dict[str, Any]]:
    redactor = default_redactor()
    sink = ListSink(state)
    for run in (lambda: files.collect(cfg, state, sink, redactor),
                lambda: claude.collect(cfg, state, sink, redactor, None),
                lambda: browser.collect(cfg, state, sink, redactor)):
        stats = run()
        if stats.errors:
            raise SystemExit(f"collector {stats.name}: {stats.errors}")
    return sink.items


def resolve_refs(items: list[dict[str, Any]], questions: list[dict[str, Any]]) -> dict[str, str]:
    """Map each expected reference to its item id; every reference must name exactly one item.

    References are portable: ``file:<title>`` (``<package>/<path>``), ``claude:<session id>`` and
    ``browser:<URL>``, while real ids hold the absolute path or a hash of the URL."""
    by_ref: dict[str, list[str]] = {}
    for it in items:
        ref = {"file": f"file:{it['title']}", "browser": f"browser:{it['uri']}"}.get(it["source"], it["id"])
        by_ref.setdefault(ref, []).append(it["id"])
    out, bad = {}, []
    for q in questions:
        for ref in q["expected"]:
            hits = by_ref.get(ref, [])
            if len(hits) != 1:
                bad.append(f"{q['id']}: {ref} names {len(hits)} items")
            else:
                out[ref] = hits[0]
    if bad:
        raise SystemExit("unresolved expected items:\n  " + "\n  ".join(bad))
    return out


# ---------------------------------------------------------------------- identifiers in questions

_IDENT = re.compile(r"\b(?:[A-Za-z]\w*_\w+|[a-z]+[A-Z]\w*|[A-Z][a-z]+[A-Z]\w*|\w+\.\w+(?:\.\w+)*|\w+\(\))")


def code_names(path: Path) -> set[str]:
    """Names a Python file defines (functions, classes, methods, assigned names), lower-cased."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name.lower())
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id.lower())
    return names


def uses_identifiers(q: dict[str, Any], items_by_id: dict[str, dict[str, Any]], refs: dict[str, str]) -> bool:
    """True when the question names code: an identifier-shaped token (snake_case, camelCase,
    dotted.name, call()) or, for code, any name its expected files define (so "median" counts when
    the file defines ``median``). Why so strict: half the questions must do without them."""
    if _IDENT.search(q["q"]):
        return True
    words = {w.lower() for w in re.findall(r"[A-Za-z]\w+", q["q"])}
    for ref in q["expected"]:
        item = items_by_id[refs[ref]]
        path = item["meta"].get("path") if item["source"] == "file" else None
        if path and path.endswith(".py") and words & code_names(Path(path)):
            return True
    return False


# ---------------------------------------------------------------------- distractors


CHUNK_BYTES = 500  # content bytes per chunk in the evaluation's corpus (1.22 MB, 2,481 chunks): to pick about so many


def docs_pages(roots: list[Path]) -> list[dict[str, Any]]:
    """One documentation page per module with a docstring, as a browser-history row: the URL the
    package's docs would have (``https://<package>.readthedocs.io/en/stable/api/<module>.html``), the
    module's dotted name and the package as the title, the docstring's first paragraph as Firefox's
    page description. Visit times are spread over 2026 by a seeded RNG."""
    rng = random.Random("distractor-pages")
    rows = []
    for root in roots:
        package = root.name.rsplit("-", 1)[0]
        for path in sorted(root.rglob("*.py")):
            try:
                doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8", errors="replace")))
            except (SyntaxError, ValueError):
                continue
            first = (doc or "").strip().split("\n\n", 1)[0]
            if len(first) < 40 or "/tests/" in f"/{path.relative_to(root)}":
                continue
            module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            day = datetime(2026, 1, 1, tzinfo=UTC).timestamp() + rng.randrange(330 * 86400)
            rows.append({"url": f"https://{package}.readthedocs.io/en/stable/api/{module}.html",
                         "title": f"{module} — {package} documentation",
                         "description": " ".join(first.split())[:400],
                         "visits": [datetime.fromtimestamp(day, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]})
    return rows


def distractor_items(cache: Path, chunks: int, taken: set[str]) -> list[dict[str, Any]]:
    """About ``chunks`` chunks of items no question asks for, made as a user's brain gets them:
    the files collector over the pinned wheels of ``distractors.json``, and the browser collector
    over a Firefox profile holding a docs page per module (``docs_pages``). Files are taken in a
    seeded order until their content reaches ``chunks`` x ``CHUNK_BYTES``; every page is kept."""
    roots = fetch_sources(cache, EVAL / "distractors.json")
    with tempfile.TemporaryDirectory(prefix="brain-eval-distract-") as tmp_s:
        tmp = Path(tmp_s)
        with fake_home(tmp) as home:
            write_browsers(home, {"chrome": [], "firefox": docs_pages(roots)})
            cfg = config.load(env=dict(os.environ), overrides={
                "collect.files_roots": [str(r) for r in roots], "collect.claude_roots": [str(tmp / "none")],
                "collect.host": HOST}, kind=FullConfig)
            state = State(tmp / "state" / "collect.db")
            try:
                items = [it for it in _run_collectors(cfg, state) if it["id"] not in taken]
            finally:
                state.close()
    pages = [it for it in items if it["source"] == "browser"]
    code = sorted((it for it in items if it["source"] == "file"), key=lambda it: it["id"])
    random.Random("distractor-files").shuffle(code)
    budget = chunks * CHUNK_BYTES - sum(len(it["content"]) for it in pages)
    out = []
    for it in code:
        if budget <= 0:
            break
        out.append(it)
        budget -= len(it["content"])
    return pages + out


# ---------------------------------------------------------------------- the store


# How the store chunks and indexes (issue 13, point 2), one change at a time against the search as it was:
# tree-sitter chunks (parse), chunk headers embedded and indexed (headers) or indexed only (headers-fts),
# split identifiers in the index and in the query (split). "after" is what ships (brain.core.store's defaults).
STORE_VARIANTS: dict[str, dict[str, bool]] = {
    "before": dict(parse_code=False, headers=False, embed_headers=False, terms=False, split=False),
    "parse": dict(parse_code=True, headers=False, embed_headers=False, terms=False, split=False),
    "headers": dict(parse_code=False, headers=True, embed_headers=True, terms=False, split=False),
    "headers-fts": dict(parse_code=False, headers=True, embed_headers=False, terms=False, split=False),
    "split": dict(parse_code=False, headers=False, embed_headers=False, terms=True, split=True),
    "parse+headers": dict(parse_code=True, headers=True, embed_headers=True, terms=False, split=False),
    "parse+split": dict(parse_code=True, headers=False, embed_headers=False, terms=True, split=True),
    "headers-fts+split": dict(parse_code=False, headers=True, embed_headers=False, terms=True, split=True),
    "parse+headers+split": dict(parse_code=True, headers=True, embed_headers=True, terms=True, split=True),
    "after": dict(parse_code=True, headers=True, embed_headers=False, terms=True, split=True),
}


def build_store(db: Path, items: list[dict[str, Any]], cfg: FullConfig, vector_cache: Path,
                variant: dict[str, bool] | None = None, embed: bool = True) -> dict[str, Any]:
    """Ingest through ``Store.upsert`` in collector-sized batches, then drain the embedding queue
    (not when ``embed`` is False: BM25 alone needs no vectors)."""
    conn = store.connect(db)
    store.migrate(conn)
    model = get_text_model(cfg)
    v = variant or STORE_VARIANTS["after"]
    st = store.Store(conn, cfg.embed.chunk_tokens, cfg.embed.chunk_overlap, parse_code=v["parse_code"],
                     headers=v["headers"], embed_headers=v["embed_headers"], terms=v["terms"])
    started = time.perf_counter()
    for start in range(0, len(items), 100):
        st.upsert(items[start:start + 100], model)
    ingest_s = time.perf_counter() - started
    reused = _reuse_vectors(conn, model.model_id, vector_cache) if embed else 0
    started = time.perf_counter()
    embedded = 0
    if embed:
        worker = EmbedWorker(db, model.model_id, lambda: get_embedder(cfg, threads=cfg.embed.threads),
                             batch=cfg.embed.worker_batch, wait=lambda s: False)
        try:
            def save_now_and_then(n: int) -> None:
                if n % 1024 < 64:
                    _save_vectors(conn, model.model_id, vector_cache)

            embedded = worker.drain(progress=save_now_and_then)
        finally:
            worker.close()
            _save_vectors(conn, model.model_id, vector_cache)  # kept even when the run is stopped
    chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    conn.close()
    return {"items": len(items), "chunks": chunks, "ingest_s": round(ingest_s, 2), "vectors_reused": reused,
            "vectors_embedded": embedded, "embed_s": round(time.perf_counter() - started, 1)}


def _vector_cache(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE IF NOT EXISTS vectors(model TEXT, text_hash TEXT, dim INTEGER, vector BLOB, "
                 "PRIMARY KEY(model, text_hash))")
    return conn


def _reuse_vectors(conn: sqlite3.Connection, model: str, path: Path) -> int:
    """Vectors computed by an earlier run for the same (model, text hash): stored, taken off the queue."""
    cache = _vector_cache(path)
    queued = [r[0] for r in conn.execute("SELECT text_hash FROM embed_queue WHERE model = ?", (model,))]
    found = []
    for start in range(0, len(queued), 500):
        part = queued[start:start + 500]
        found += cache.execute(f"SELECT text_hash, dim, vector FROM vectors WHERE model = ? AND text_hash IN "
                               f"({','.join('?' * len(part))})", [model, *part]).fetchall()
    cache.close()
    with store.write_transaction(conn):
        conn.executemany("INSERT OR IGNORE INTO embeddings(model, text_hash, dim, vector) VALUES (?, ?, ?, ?)",
                         [(model, h, d, v) for h, d, v in found])
        conn.executemany("DELETE FROM embed_queue WHERE model = ? AND text_hash = ?", [(model, h) for h, _, _ in found])
    return len(found)


def _save_vectors(conn: sqlite3.Connection, model: str, path: Path) -> None:
    cache = _vector_cache(path)
    with cache:
        cache.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?, ?, ?)", conn.execute(
            "SELECT model, text_hash, dim, vector FROM embeddings WHERE model = ?", (model,)))
    cache.close()


# ---------------------------------------------------------------------- scoring


def score(ranked: list[str], expected: set[str], k: int = K, depth: int = DEPTH) -> dict[str, float]:
    """recall@k, reciprocal rank within ``depth`` and nDCG@depth (binary gains) of one ranking."""
    first = next((i for i, item in enumerate(ranked[:depth], 1) if item in expected), None)
    dcg = sum(1 / math.log2(i + 1) for i, item in enumerate(ranked[:depth], 1) if item in expected)
    ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(expected), depth) + 1))
    return {f"recall@{k}": len(expected & set(ranked[:k])) / len(expected), "mrr": 1 / first if first else 0.0,
            f"ndcg@{depth}": dcg / ideal}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = [k for k in rows[0] if k not in ("ms", "llm_ms")] if rows else []
    out = {k: round(sum(r[k] for r in rows) / len(rows), 3) for k in keys}
    for key, prefix in (("ms", ""), ("llm_ms", "llm_")):
        times = sorted(r[key] for r in rows if key in r)
        if times:
            out[f"{prefix}p50_ms"] = round(times[len(times) // 2], 1)
            out[f"{prefix}p95_ms"] = round(times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)], 1)
    out["n"] = len(rows)
    return out


def evaluate(searcher: Searcher, conn: sqlite3.Connection, questions: list[dict[str, Any]], refs: dict[str, str],
             mode: str, reranker: LLMReranker | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One mode over the given questions: means per half and per (half, source), and the misses.
    A mode of ``LLM_MODES`` searches hybrid and lets ``reranker`` order the candidates; its ``ms`` is
    search plus rerank, ``llm_ms`` the rerank alone."""
    per_q: list[dict[str, Any]] = []
    extra: dict[str, float]
    for q in questions:
        started = time.perf_counter()
        if mode in LLM_MODES:
            if reranker is None:
                raise SystemExit(f"mode {mode} needs --llm-url")
            hits = searcher.search(conn, q["q"], k=max(DEPTH, reranker.top), mode="hybrid", per_item=True)
            ms = (time.perf_counter() - started) * 1000
            hits = reranker.order(q["q"], hits, fused=mode == "hybrid+llm-rrf")
            extra = {"llm_ms": reranker.spent_ms[q["q"]]}  # the first pass's, when the judgments are reused
            ms += extra["llm_ms"]
        else:
            hits = searcher.search(conn, q["q"], k=DEPTH, mode=mode, per_item=True)
            extra = {}
            ms = (time.perf_counter() - started) * 1000
        ranked = [h.item_id for h in hits]
        per_q.append({**score(ranked, {refs[r] for r in q["expected"]}), **extra, "ms": ms, "q": q, "ranked": ranked})
    table: dict[str, Any] = {}
    for half in ("dev", "heldout"):
        rows = [r for r in per_q if r["q"]["split"] == half]
        if not rows:
            continue
        table[half] = {"all": _mean([_metrics(r) for r in rows])}
        for source in SOURCES:
            part = [_metrics(r) for r in rows if r["q"]["source"] == source]
            if part:
                table[half][source] = _mean(part)
    misses = [{"id": r["q"]["id"], "split": r["q"]["split"], "q": r["q"]["q"], "expected": r["q"]["expected"],
               "got": r["ranked"][:K]} for r in per_q if r[f"recall@{K}"] < 1]
    return table, misses


def _metrics(row: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k not in ("q", "ranked")}


# ---------------------------------------------------------------------- LLM rerank (an experiment)

# Modes scored on the hybrid candidates after an LLM judged them (issue 13, point 2: "the LLM on the
# GPU VM for ask only"). Not in the product: see docs/PERFORMANCE.md, "A reranker".
LLM_MODES = ("hybrid+llm", "hybrid+llm-rrf")
RERANK_SYSTEM = ("You judge search results for a developer who searches their own code, coding-agent "
                 "sessions and browsing history. Reply with one word: yes or no.")
RERANK_RRF_K = 60  # as the product's fusion (brain.core.search.DEFAULT_FUSION)


def rerank_messages(question: str, hit: Hit, chars: int) -> list[dict[str, str]]:
    """A pointwise prompt: the question before the passage, so a server that keeps the previous
    prompt's tokens (llama.cpp, Ollama) evaluates only the passage for the next candidate."""
    where = f"{hit.source}: {hit.title}" + (f" <{hit.uri}>" if hit.uri and hit.uri != hit.title else "")
    return [{"role": "system", "content": RERANK_SYSTEM},
            {"role": "user", "content": f"Question: {question}\n\nPassage ({where}):\n{hit.text[:chars]}\n\n"
                                        "Does this passage help answer the question? Reply yes or no."}]


def yes_probability(choice: dict[str, Any]) -> tuple[float, str]:
    """P(yes) / (P(yes) + P(no)) of the first generated token, and how it was read.

    From ``logprobs.content[0].top_logprobs`` when the server sent them (OpenAI's shape, which
    llama-cpp-python's server returns for ``logprobs: true, top_logprobs: N``; tokens compared
    stripped and lower-cased, so "Yes", " yes" and "yes" add up): ``"logprobs"``. Otherwise from the
    answer's text: "yes..." 1.0, "no..." 0.0 (``"text"``), anything else 0.5 (``"unclear"``)."""
    content = (choice.get("logprobs") or {}).get("content") or []
    if content:
        first = content[0]
        tops = first.get("top_logprobs") or [{"token": first.get("token", ""), "logprob": first.get("logprob")}]
        mass = {"yes": 0.0, "no": 0.0}
        for t in tops:
            word = str(t.get("token", "")).strip().lower()
            if word in mass and t.get("logprob") is not None:
                mass[word] += math.exp(float(t["logprob"]))
        if mass["yes"] + mass["no"] > 0:
            return mass["yes"] / (mass["yes"] + mass["no"]), "logprobs"
    text = str((choice.get("message") or {}).get("content") or "").strip().lower()
    if text.startswith("yes"):
        return 1.0, "text"
    if text.startswith("no"):
        return 0.0, "text"
    return 0.5, "unclear"


@dataclass
class LLMReranker:
    """Judges (question, candidate) pairs through ``POST {base_url}/chat/completions`` (one token,
    temperature 0, top logprobs asked for) and orders candidates by the answers. Judgments are kept
    per (question, item), so the two ``LLM_MODES`` cost one pass; ``spent_ms`` is that pass's time
    per question (calls made one after another, as ``ask`` would make them)."""

    base_url: str
    model: str
    api_key: str = "none"
    top: int = DEPTH
    chars: int = 1500
    timeout: float = 300.0
    post: Callable[..., Any] = requests.post
    judged: dict[tuple[str, str], float] = field(default_factory=dict)
    spent_ms: dict[str, float] = field(default_factory=dict)
    how: dict[str, int] = field(default_factory=dict)

    def judge(self, question: str, hit: Hit) -> float:
        key = (question, hit.item_id)
        if key not in self.judged:
            resp = self.post(f"{self.base_url.rstrip('/')}/chat/completions", timeout=self.timeout,
                             headers={"Authorization": f"Bearer {self.api_key}"},
                             json={"model": self.model, "messages": rerank_messages(question, hit, self.chars),
                                   "max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": 10,
                                   "stream": False})
            resp.raise_for_status()
            p, how = yes_probability(resp.json()["choices"][0])
            self.how[how] = self.how.get(how, 0) + 1
            self.judged[key] = p
        return self.judged[key]

    def order(self, question: str, hits: list[Hit], fused: bool = False) -> list[Hit]:
        """The top ``top`` hits by P(yes) (ties keep the hybrid order), or by RRF of that order and
        the hybrid one when ``fused``; hits below ``top`` follow in their hybrid order."""
        head, tail = hits[:self.top], hits[self.top:]
        if question not in self.spent_ms:
            started = time.perf_counter()
            for h in head:
                self.judge(question, h)
            self.spent_ms[question] = (time.perf_counter() - started) * 1000
        by_llm = sorted(range(len(head)), key=lambda i: (-self.judged[(question, head[i].item_id)], i))
        if not fused:
            return [head[i] for i in by_llm] + tail
        llm_rank = {i: r for r, i in enumerate(by_llm, 1)}
        rrf = sorted(range(len(head)), key=lambda i: (-(1 / (RERANK_RRF_K + i + 1)
                                                        + 1 / (RERANK_RRF_K + llm_rank[i])), i))
        return [head[i] for i in rrf] + tail


def sample_questions(questions: list[dict[str, Any]], per_half: int) -> list[dict[str, Any]]:
    """A fixed subset: in each half, the ``per_half`` questions whose ids' sha256 sort first
    (independent of the scores, and the same on every run)."""
    out = []
    for half in ("dev", "heldout"):
        rows = sorted((q for q in questions if q["split"] == half),
                      key=lambda q: hashlib.sha256(q["id"].encode()).hexdigest())
        out += rows[:per_half]
    return sorted(out, key=lambda q: q["id"])


# ---------------------------------------------------------------------- the run

# Fusions tried on the development half (issue 13, point 2): signal weights, item-level ranks, and
# credit for an item's further matching chunks.
SWEEP: dict[str, Fusion] = {
    "vec1.5": Fusion(weights=(("bm25", 1.0), ("vector", 1.5))),
    "bm25-1.5": Fusion(weights=(("bm25", 1.5), ("vector", 1.0))),
    "item": Fusion(by_item=True),
    "item+0.3": Fusion(by_item=True, extra=0.3),
    "item+0.6": Fusion(by_item=True, extra=0.6),
    "item+0.3,k20": Fusion(by_item=True, extra=0.3, k=20),
    "item,k20": Fusion(by_item=True, k=20),
    "item+0.3,vec1.5": Fusion(weights=(("bm25", 1.0), ("vector", 1.5)), by_item=True, extra=0.3),
    # round 2 (issue 13, point 2): only an item's next one or two chunks count
    "item+0.3x1": Fusion(by_item=True, extra=0.3, extra_max=1),
    "item+0.5x1": Fusion(by_item=True, extra=0.5, extra_max=1),
    "item+0.3x2": Fusion(by_item=True, extra=0.3, extra_max=2),
    "item+1.0x1": Fusion(by_item=True, extra=1.0, extra_max=1),
}


def run(cache: Path, halves: tuple[str, ...], modes: list[str],
        variants: dict[str, Fusion] | None = None, indexes: bool = True, stores: list[str] | None = None,
        distractors: int = 0, reranker: LLMReranker | None = None, sample: int = 0) -> dict[str, Any]:
    """Collect, ingest, embed and score; the report as a dict. ``variants``: fusions scored in
    hybrid mode beside the default one (all on the same store, in one run). ``indexes``: build the
    search indexes the embedding worker keeps and search through them (False: FTS5 and the exact scan).
    ``stores``: names of ``STORE_VARIANTS``, each a store of its own in the same run (default: "after",
    the shipped search). ``distractors``: add about this many chunks of items no question asks for
    (``bench/eval/distractors.json``). ``reranker``: the LLM that orders the candidates of ``LLM_MODES``.
    ``sample``: score only that many questions per half (``sample_questions``; 0: all)."""
    variants = {"default": DEFAULT_FUSION, **(variants or {})}
    stores = stores or ["after"]
    questions, seed = load_questions()
    questions = [q for q in questions if q["split"] in halves]
    if sample:
        questions = sample_questions(questions, sample)
    cfg = config.load(kind=FullConfig)
    load_start = os.getloadavg()
    items = collect_corpus(cache)
    refs = resolve_refs(items, questions)
    items_by_id = {it["id"]: it for it in items}
    extra = distractor_items(cache, distractors, {it["id"] for it in items}) if distractors else []
    results, misses, built = {}, {}, {}
    for store_name in stores:
        sv = STORE_VARIANTS[store_name]
        with tempfile.TemporaryDirectory(prefix="brain-eval-db-") as tmp:
            db = Path(tmp) / "eval.db"
            built[store_name] = build_store(db, items + extra, cfg, cache / "vectors.sqlite", sv,
                                            embed=bool({"vector", "hybrid", *LLM_MODES} & set(modes)))
            if reranker is not None:  # judgments are of this store's chunk texts
                reranker.judged.clear()
                reranker.spent_ms.clear()
            if indexes:
                search_index.catch_up(db, get_text_model(cfg).model_id)
            conn = store.connect(db)
            try:
                for name, fusion in variants.items():
                    searcher = Searcher(get_embedder(cfg), fusion=fusion, indexes=indexes, split_identifiers=sv["split"])
                    searcher.search(conn, "warm up the model and the vector index", k=DEPTH, mode="hybrid")
                    for mode in modes if name == "default" else ["hybrid"]:
                        label = mode if name == "default" else f"hybrid[{name}]"
                        if len(stores) > 1 or store_name != "after":
                            label += f" {store_name}"
                        results[label], misses[label] = evaluate(searcher, conn, questions, refs, mode, reranker)
            finally:
                conn.close()
    ident = sum(uses_identifiers(q, items_by_id, refs) for q in questions)
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "load_avg": load_start, "load_avg_end": os.getloadavg(),
            "embedder": get_text_model(cfg).model_id, "indexes": indexes, "split_seed": seed, "questions": len(questions),
            "questions_with_identifiers": ident,
            "by_source": {s: sum(q["source"] == s for q in questions) for s in SOURCES},
            "corpus": {"stores": built, "by_source": _count_sources(items + extra), "distractors": len(extra)},
            "results": results, "misses": misses,
            "llm_rerank": None if reranker is None else {
                "base_url": reranker.base_url, "model": reranker.model, "top": reranker.top, "chars": reranker.chars,
                "judgments": len(reranker.judged), "read_from": reranker.how, "sample_per_half": sample}}


def _count_sources(items: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        out[it["source"]] = out.get(it["source"], 0) + 1
    return out


def print_report(report: dict[str, Any], show_misses: bool) -> None:
    c = report["corpus"]
    print(f"{report['date']}  load average {', '.join(f'{x:.2f}' for x in report['load_avg'])} at the start, "
          f"{', '.join(f'{x:.2f}' for x in report['load_avg_end'])} at the end  embedder {report['embedder']}  "
          f"{'tantivy + HNSW indexes' if report.get('indexes') else 'FTS5 + exact scan (no indexes)'}")
    print(f"corpus: {c['by_source']} ({c['distractors']} distractor items)")
    for name, b in c["stores"].items():
        print(f"  store {name}: {b['items']} items, {b['chunks']} chunks; ingest {b['ingest_s']} s; vectors "
              f"reused {b['vectors_reused']}, embedded {b['vectors_embedded']} in {b['embed_s']} s")
    print(f"questions: {report['questions']} {report['by_source']}; naming identifiers: "
          f"{report['questions_with_identifiers']}")
    rr = report.get("llm_rerank")
    if rr:
        print(f"LLM rerank: {rr['model']} at {rr['base_url']}, top {rr['top']} items, {rr['chars']} chars each; "
              f"{rr['judgments']} judgments read from {rr['read_from']}"
              + (f"; {rr['sample_per_half']} questions per half (fixed subset)" if rr["sample_per_half"] else ""))
    print(f"{'mode':<24} {'half':<8} {'source':<8} {'n':>4} {'R@5':>6} {'MRR':>6} {'nDCG10':>7} {'p50ms':>7} {'p95ms':>7}"
          + (f" {'llm p50':>8} {'llm p95':>8}" if rr else ""))
    for mode, halves in report["results"].items():
        for half, rows in halves.items():
            for source, m in rows.items():
                llm = f" {m['llm_p50_ms']:>8.0f} {m['llm_p95_ms']:>8.0f}" if "llm_p50_ms" in m else ""
                print(f"{mode:<24} {half:<8} {source:<8} {m['n']:>4} {m['recall@5']:>6.3f} {m['mrr']:>6.3f} "
                      f"{m['ndcg@10']:>7.3f} {m['p50_ms']:>7.1f} {m['p95_ms']:>7.1f}{llm}")
    if show_misses:
        for mode, rows in report["misses"].items():
            for m in rows:
                print(f"  miss [{mode} {m['split']}] {m['id']} {m['q']!r}: expected {m['expected']}, got {m['got']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=("dev", "heldout", "both"), default="both",
                        help="questions to score (tune on dev, report heldout)")
    parser.add_argument("--modes", default=",".join(("bm25", "vector", "hybrid")), help="comma-separated modes")
    parser.add_argument("--cache", type=Path, default=default_cache(), help="wheels, sources and cached vectors")
    parser.add_argument("--json", type=Path, help="also write the full report (with misses) here")
    parser.add_argument("--misses", action="store_true", help="list the questions each mode missed")
    parser.add_argument("--sweep", action="store_true", help="also score the fusion variants of SWEEP (hybrid)")
    parser.add_argument("--stores", default="after",
                        help=f"comma-separated store variants, each built and scored ({', '.join(STORE_VARIANTS)})")
    parser.add_argument("--distractors", type=int, default=0, metavar="CHUNKS",
                        help="add about this many chunks of distractor items (bench/eval/distractors.json)")
    parser.add_argument("--no-indexes", action="store_true",
                        help="search with FTS5 and the exact vector scan alone (no tantivy / HNSW indexes)")
    llm = parser.add_argument_group("LLM rerank (modes hybrid+llm, hybrid+llm-rrf; an experiment)")
    llm.add_argument("--llm-url", help="OpenAI-compatible /v1 base URL (Ollama: http://127.0.0.1:11434/v1)")
    llm.add_argument("--llm-model", default="default", help="model name sent (Ollama: the tag, e.g. deepseek-coder-v2:16b)")
    llm.add_argument("--llm-key", default=os.environ.get("BRAIN_LLM_API_KEY", "none"),
                     help="API key sent (default: $BRAIN_LLM_API_KEY, else none)")
    llm.add_argument("--llm-top", type=int, default=DEPTH, help="hybrid candidates judged per question")
    llm.add_argument("--llm-chars", type=int, default=1500, help="characters of each candidate's best chunk shown")
    parser.add_argument("--sample", type=int, default=0, metavar="N",
                        help="score N questions per half, a fixed subset by sha256 of their ids (0: all)")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES) - set(LLM_MODES)
    if unknown:
        raise SystemExit(f"unknown modes {sorted(unknown)}; use {', '.join((*MODES, *LLM_MODES))}")
    if set(LLM_MODES) & set(modes) and not args.llm_url:
        raise SystemExit(f"modes {', '.join(LLM_MODES)} need --llm-url")
    reranker = LLMReranker(args.llm_url, args.llm_model, args.llm_key, args.llm_top, args.llm_chars) \
        if args.llm_url else None
    halves = ("dev", "heldout") if args.half == "both" else (args.half,)
    stores = [x for x in args.stores.split(",") if x]
    unknown = set(stores) - set(STORE_VARIANTS)
    if unknown:
        raise SystemExit(f"unknown store variants {sorted(unknown)}; use {', '.join(STORE_VARIANTS)}")
    report = run(args.cache, halves, modes, SWEEP if args.sweep else None, indexes=not args.no_indexes,
                 stores=stores, distractors=args.distractors, reranker=reranker, sample=args.sample)
    print_report(report, args.misses)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
