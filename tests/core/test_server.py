"""The real production server: gunicorn workers on a loopback port, spoken to over HTTP."""

from __future__ import annotations

import concurrent.futures as cf
import time

import requests

from tests.conftest import wait_for_vectors


def _items(prefix: str, n: int) -> list[dict]:
    return [{"id": f"note:{prefix}{i}", "source": "note", "title": f"{prefix} {i}",
             "content": f"Entry {i} of batch {prefix}: the gunicorn worker wrote this about topic {prefix}{i}."}
            for i in range(n)]


def test_gunicorn_serves_ingest_search_and_auth(api_server):
    url, h = api_server.url, api_server.headers
    assert requests.get(url + "/healthz", timeout=10).json() == {"status": "ok"}
    assert requests.get(url + "/api/v1/stats", timeout=10).status_code == 401
    r = requests.post(url + "/api/v1/items", json={"items": _items("a", 5)}, headers=h, timeout=60)
    assert r.status_code == 200 and r.json()["inserted"] == 5
    assert requests.get(url + "/readyz", headers=h, timeout=30).json()["status"] == "ready"
    body = requests.get(url + "/api/v1/search", params={"q": "topic a3"}, headers=h, timeout=30).json()
    assert body["results"][0]["id"] == "note:a3"
    r = requests.post(url + "/api/v1/items", data=b"{oops", headers={**h, "Content-Type": "application/json"},
                      timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert "gunicorn" in api_server.log().lower()


def test_the_access_log_keeps_no_query_string_nor_referer(api_server):
    """A search's words are not written to the journal (issue 12, point 6): the request's path is."""
    url, h = api_server.url, api_server.headers
    r = requests.get(url + "/api/v1/search", params={"q": "wombatsecret words", "mode": "bm25"}, timeout=30,
                     headers={**h, "Referer": url + "/search?q=wombatreferer"})
    assert r.status_code == 200
    deadline = time.monotonic() + 30  # the worker logs the line once the answer is sent: wait for it
    while '"GET /api/v1/search HTTP/1.1" 200' not in api_server.log():
        assert time.monotonic() < deadline, api_server.log()[-2000:]
        time.sleep(0.05)
    assert "wombat" not in api_server.log()


def test_concurrent_batches_and_cross_worker_visibility(api_server):
    """Two workers write at once (SQLite serialises them), and every worker's vector index follows."""
    url, h = api_server.url, api_server.headers
    with cf.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(requests.post, url + "/api/v1/items", json={"items": _items(p, 10)}, headers=h,
                               timeout=120) for p in "wxyz"]
        assert all(f.result().status_code == 200 for f in futures)
    stats = wait_for_vectors(api_server)  # the embedding worker `brain serve` started catches up
    assert stats["items"] == {"note": 40} and stats["missing_vectors"] == 0
    assert requests.delete(url + "/api/v1/items/note:x7", headers=h, timeout=30).json() == {"deleted": 1}
    for _ in range(6):  # requests spread over both workers; each must see the delete
        ids = [r["id"] for r in requests.get(url + "/api/v1/search", params={"q": "topic x7", "mode": "vector",
                                                                              "k": 40}, headers=h,
                                             timeout=30).json()["results"]]
        assert "note:x7" not in ids and len(ids) == 39


def test_ingest_and_search_at_once_never_answer_5xx(api_server):
    """gthread workers share one embedder per process: concurrent ingest (chunking, token counts),
    query embedding and the background worker's batches must not trip over each other."""
    url, h = api_server.url, api_server.headers
    statuses: list[int] = []

    def ingest(batch: int) -> None:
        items = [{"id": f"note:c{batch}-{i}", "source": "note", "title": f"Concurrent {batch}",
                  "content": ("A long paragraph about retries and exponential backoff in HTTP clients. " * 40)
                  + f" Batch {batch} item {i}."} for i in range(10)]
        statuses.append(requests.post(url + "/api/v1/items", json={"items": items}, headers=h, timeout=120).status_code)

    def search(n: int) -> None:
        mode = ("hybrid", "vector", "bm25")[n % 3]
        q = "exponential backoff retries " + "very long query words " * (n % 7) * 10
        statuses.append(requests.get(url + "/api/v1/search", params={"q": q[:1900], "mode": mode, "k": 5},
                                     headers=h, timeout=120).status_code)

    with cf.ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit(ingest, b) for b in range(8)] + [pool.submit(search, n) for n in range(48)]
        for job in jobs:
            job.result(timeout=300)
    assert len(statuses) == 56 and set(statuses) == {200}, sorted(set(statuses))
    assert "Traceback" not in api_server.log()


def test_each_worker_loads_the_search_indexes_and_model_as_it_starts(tmp_path):
    """``server.warm_start``: when a server starts on a store with vectors, each worker loads the
    indexes and the embedding model in the background, not in the first person's search."""
    from brain.api import create_app
    from brain.core import search_index
    from brain.core.embed import get_text_model
    from tests.conftest import TOKEN, drain_embeddings, start_api_server, stop_api_server

    db = tmp_path / "server.db"
    app = create_app({"server.db_path": str(db), "server.api_tokens": [TOKEN], "server.ingest_nice": -1})
    r = app.test_client().post("/api/v1/items", json={"items": _items("w", 12)},
                               headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    assert drain_embeddings(app) >= 12
    search_index.catch_up(db, get_text_model(app.config["BRAIN"]).model_id)  # what the embed worker keeps
    server = start_api_server(tmp_path, {"BRAIN_SERVER_EMBED_WORKER": "false"})
    try:
        deadline = time.monotonic() + 120  # both workers log their warm-up once it is done
        while server.log().count("search warm in") < 2:
            assert "search warm-up failed" not in server.log(), server.log()[-3000:]
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.05)
        assert server.log().count("12 vectors, text index open, embedding model loaded") == 2, server.log()[-3000:]
        # and each worker's ingest child is already running, before any POST
        import re
        from pathlib import Path

        for pid in re.findall(r"Booting worker with pid: (\d+)", server.log()):
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            cmdlines = [Path(f"/proc/{k}/cmdline").read_bytes() for k in kids]
            assert any(b"multiprocessing" in c and b"spawn" in c for c in cmdlines), (pid, cmdlines)
        body = requests.get(server.url + "/api/v1/search", params={"q": "topic w7"}, headers=server.headers,
                            timeout=30).json()
        assert body["results"][0]["id"] == "note:w7"
    finally:
        stop_api_server(server)
