"""The embedding worker: drains the queue ingest fills, survives a failing API and a SIGKILL, one per database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from brain.core import store
from brain.core.embed import OpenAIEmbedder
from brain.core.embed_worker import EmbedWorker, WorkerLock, wait_for_lock
from brain.shared import config
from brain.shared.settings import ServerConfig
from tests.conftest import TOKEN, start_api_server, stop_api_server, wait_for_vectors
from tests.standins.openai_embeddings import EmbeddingsStandIn

MODEL = "openai/text-embedding-3-small"


@pytest.fixture
def standin():
    s = EmbeddingsStandIn(dim=64).start()
    yield s
    s.stop()


@pytest.fixture
def st(db_path):
    conn = store.connect(db_path)
    store.migrate(conn)
    yield store.Store(conn, chunk_tokens=64, chunk_overlap=0)
    conn.close()


def notes(n: int, prefix: str = "n") -> list[dict]:
    return [{"id": f"note:{prefix}{i}", "source": "note", "title": f"Note {i}",
             "content": f"Note {i} about the {prefix} topic number {i * 7}: retries, backoff and timeouts."}
            for i in range(n)]


def api_embedder(standin: EmbeddingsStandIn) -> OpenAIEmbedder:
    return OpenAIEmbedder("sk-test", base_url=standin.url, max_retries=0, batch_size=8)


def vectors(st: store.Store) -> list[tuple[str, str]]:
    return [tuple(r) for r in st.conn.execute("SELECT model, text_hash FROM embeddings ORDER BY text_hash")]


def test_a_failing_api_delays_vectors_and_loses_nothing(st, db_path, standin):
    emb = api_embedder(standin)
    st.upsert(notes(20), emb)
    hashes = {r[0] for r in st.conn.execute("SELECT DISTINCT embed_hash FROM chunks")}
    standin.fail_503 = 5
    waits: list[float] = []
    worker = EmbedWorker(db_path, MODEL, lambda: emb, batch=8, max_backoff=8.0,
                         wait=lambda s: waits.append(s) or False)
    assert worker.drain() == len(hashes)
    worker.close()
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]  # exponential, capped, one per failed call
    assert {h for _, h in vectors(st)} == hashes and len(vectors(st)) == len(hashes)  # none lost, none twice
    texts_sent = sum(len(r["body"]["input"]) for r in standin.requests if r["body"])
    assert texts_sent == len(hashes) + 5 * 8  # the five refused calls, then each text once
    usage = st.conn.execute("SELECT sum(texts) FROM embed_usage").fetchone()[0]
    assert usage == len(hashes)


def test_a_text_the_api_refuses_is_parked_and_the_rest_embedded(st, db_path, standin):
    emb = api_embedder(standin)
    items = notes(9)
    items[4]["content"] = "POISON " + items[4]["content"]
    st.upsert(items, emb)
    standin.refuse_marker = "POISON"
    for _ in range(store.MAX_EMBED_ATTEMPTS):
        worker = EmbedWorker(db_path, MODEL, lambda: emb, batch=8, wait=lambda s: False)
        worker.drain()
        worker.close()
    backlog = st.backlog(MODEL)[MODEL]
    assert backlog["embedded"] == 8 and backlog["queued"] == 0 and backlog["failed"] == 1
    assert "maximum context length" in backlog["last_error"]
    assert st.claim(MODEL, 100) == []  # parked: the worker no longer picks it
    st.conn.execute("UPDATE embed_queue SET attempts = 0")  # e.g. after a fix: reset and it goes again
    standin.refuse_marker = ""
    worker = EmbedWorker(db_path, MODEL, lambda: emb, wait=lambda s: False)
    assert worker.drain() == 1
    worker.close()


def test_texts_of_deleted_items_leave_the_queue_unembedded(st, db_path, standin):
    emb = api_embedder(standin)
    st.upsert(notes(3), emb)
    st.forget(source="note")
    worker = EmbedWorker(db_path, MODEL, lambda: emb, wait=lambda s: False)
    assert worker.drain() == 3 and worker.stats.dropped == 3 and worker.stats.embedded == 0
    worker.close()
    assert standin.requests == [] and st.backlog(MODEL)[MODEL]["queued"] == 0


def test_stats_report_the_backlog_truthfully(st, db_path, standin):
    emb = api_embedder(standin)
    st.upsert(notes(10), emb)
    assert st.backlog(MODEL)[MODEL] == {"queued": 10, "failed": 0, "embedded": 0, "rate_per_min": 0,
                                        "eta_seconds": None, "last_error": None}
    worker = EmbedWorker(db_path, MODEL, lambda: emb, batch=4, wait=lambda s: False)
    assert worker.run_once() == 4
    worker.close()
    b = st.backlog(MODEL)[MODEL]
    assert (b["queued"], b["embedded"], b["rate_per_min"]) == (6, 4, 4)
    assert b["eta_seconds"] == 90  # 6 left at 4 a minute
    later = st.backlog(MODEL, now="2999-01-01T00:00:00.000Z")[MODEL]
    assert later["rate_per_min"] == 0 and later["eta_seconds"] is None  # no progress in the last minute


def test_one_worker_per_database(db_path):
    first, second = WorkerLock(db_path), WorkerLock(db_path)
    assert first.try_acquire()
    assert not second.try_acquire() and second.is_held_elsewhere()
    assert second.holder() == str(os.getpid())
    polls = []
    assert not wait_for_lock(second, lambda s: polls.append(s) or len(polls) >= 3, 0.5, lambda: False)
    assert polls == [0.5, 0.5, 0.5]  # it waited (polling) while the first held the lock
    first.release()
    assert wait_for_lock(second, lambda s: True, 0.5, lambda: False)
    second.release()


def _worker_env(db_path, standin) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"BRAIN_DB": str(db_path), "OPENAI_API_KEY": "sk-test", "BRAIN_EMBED_BASE_URL": standin.url,
                "BRAIN_EMBED_WORKER_BATCH": "4", "BRAIN_EMBED_MAX_RETRIES": "0",
                # at the test's own priority: at the default 15, beside a load of 10 at nice 0, the
                # worker gets a fraction of a percent of the CPU and its start alone outlasts the deadline
                "BRAIN_EMBED_WORKER_NICE": "0"})
    return env


@pytest.mark.slow
def test_a_sigkilled_worker_resumes_without_skipping_or_repeating(st, db_path, standin):
    emb = api_embedder(standin)
    st.upsert(notes(60), emb)
    total = st.backlog(MODEL)[MODEL]["queued"]
    standin.delay = 0.05  # each batch takes a moment, so the kill lands mid-queue
    proc = subprocess.Popen([sys.executable, "-m", "brain", "embed-worker"], env=_worker_env(db_path, standin),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while st.backlog(MODEL)[MODEL]["embedded"] < 8:
        assert time.monotonic() < deadline and proc.poll() is None, "the worker made no progress"
        time.sleep(0.02)
    standin.delay = 600.0  # hold every later batch (the stand-in's threads are daemons): however late this
    proc.send_signal(signal.SIGKILL)  # thread runs, the kill lands mid-queue, not after the last batch
    proc.wait(timeout=30)
    done = st.backlog(MODEL)[MODEL]
    assert 0 < done["embedded"] < total and done["queued"] == total - done["embedded"]
    standin.delay = 0.0
    r = subprocess.run([sys.executable, "-m", "brain", "embed-worker", "--once"], env=_worker_env(db_path, standin),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    after = st.backlog(MODEL)[MODEL]
    assert after["queued"] == 0 and after["embedded"] == total
    hashes = {r[0] for r in st.conn.execute("SELECT DISTINCT embed_hash FROM chunks")}
    assert {h for _, h in vectors(st)} == hashes
    assert st.conn.execute("SELECT sum(texts) FROM embed_usage").fetchone()[0] == total  # each stored once
    assert st.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_brain_serve_runs_the_worker_and_stops_it_with_itself(tmp_path):
    server = start_api_server(tmp_path)
    try:
        h = {"Authorization": f"Bearer {TOKEN}"}
        r = requests.post(server.url + "/api/v1/items", json={"items": notes(12)}, headers=h, timeout=60)
        assert r.status_code == 200 and r.json()["queued"] == 12
        stats = wait_for_vectors(server)
        assert stats["vectors"] == 12
        assert WorkerLock(server.db_path).is_held_elsewhere()
        # below the API workers' ingest children, which are below the searches: a backlog being
        # embedded must not take the CPU a collector's POST is waiting for
        worker_nice = os.getpriority(os.PRIO_PROCESS, int(WorkerLock(server.db_path).holder()))
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        default = ServerConfig()
        assert worker_nice == max(mine, default.embed.worker_nice)
        assert worker_nice > min(mine + default.server.ingest_nice, 19) or mine >= default.embed.worker_nice
    finally:
        stop_api_server(server)
    deadline = time.monotonic() + 30
    while WorkerLock(server.db_path).is_held_elsewhere():  # the worker exits with the server
        assert time.monotonic() < deadline, "the embed worker outlived brain serve"
        time.sleep(0.05)


def test_worker_settings_validate():
    with pytest.raises(config.ConfigError, match="embed.worker_batch"):
        config.load(env={"BRAIN_EMBED_WORKER_BATCH": "0"})
    with pytest.raises(config.ConfigError, match="server.embed_worker"):
        config.load(env={"BRAIN_SERVER_EMBED_WORKER": "maybe"})
    for bad in ("20", "-1", "low"):  # a nice value the kernel has no use for, or no number
        with pytest.raises(config.ConfigError, match="embed.worker_nice"):
            config.load(env={"BRAIN_EMBED_WORKER_NICE": bad})


def test_the_rate_is_measured_between_batches(st):
    rows = [("2026-12-01T10:00:00.000Z", 64), ("2026-12-01T10:00:10.000Z", 64), ("2026-12-01T10:00:20.000Z", 64),
            ("2026-12-01T09:58:00.000Z", 999)]  # the last one is older than a minute: not counted
    st.conn.executemany("INSERT INTO embed_usage(at, model, texts, tokens, cost_usd) VALUES (?, 'm', ?, 0, 0)", rows)
    st.conn.execute("INSERT INTO embed_queue(model, text_hash, queued_at) VALUES ('m', 'h', '2026-12-01')")
    b = st.backlog("m", now="2026-12-01T10:00:30.000Z")["m"]
    assert b["rate_per_min"] == 384  # 128 texts in the 20 s after the first batch
    assert b["eta_seconds"] == 1  # one text left: a second, never "0 s" while something waits
