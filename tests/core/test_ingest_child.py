"""Ingest's CPU work runs in a niced child process per API worker (``brain.api.ingest_child``):
the same answers as in the request thread, a lower CPU priority than the worker, and a child
that dies is replaced without losing or doubling a batch."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brain.api import create_app, ingest_child

from ..conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ITEM = {"id": "note:wal", "source": "note", "title": "WAL", "created_at": "2026-11-01T10:00:00Z",
        "content": "SQLite in WAL mode lets readers run beside one writer."}


def client_for(db: Path, nice: int, start: bool = True):
    """A test client; ``start``: its child is up first, as a worker's warm-up leaves it."""
    app = create_app({"server.db_path": str(db), "server.api_tokens": [TOKEN], "server.ingest_nice": nice})
    if start:
        ingest_child.prestart(app.config["BRAIN"])
    return app.test_client()


def wait_ready() -> None:
    deadline = time.monotonic() + 120  # a hang's limit: the child's imports take 1-2 s
    while ingest_child._ready_pid != os.getpid():
        assert time.monotonic() < deadline, "the ingest child did not start"
        time.sleep(0.01)


def rows(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        return (conn.execute("SELECT count(*) FROM items").fetchone()[0],
                conn.execute("SELECT count(*) FROM chunks").fetchone()[0])


def child_pid() -> int:
    pool = ingest_child._pool
    assert pool is not None, "no ingest child was started"
    (pid,) = pool._processes  # one child per worker process
    return pid


def test_a_batch_is_stored_by_a_child_at_a_lower_priority(tmp_path: Path) -> None:
    ingest_child._reset()  # a child of this test: an earlier test may have started one at another nice value
    c = client_for(tmp_path / "brain.db", 10)
    before = ingest_child.stored_in["child"]
    r = c.post("/api/v1/items", json={"items": [ITEM]}, headers=AUTH)
    assert r.status_code == 200, r.json
    assert r.json["inserted"] == 1 and r.json["queued"] >= 1
    assert ingest_child.stored_in["child"] == before + 1
    assert rows(tmp_path / "brain.db")[0] == 1
    pid = child_pid()
    assert pid != os.getpid()
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(mine + 10, 19)


@pytest.mark.parametrize("nice", [10, -1])
def test_errors_from_the_child_are_the_same_json_4xx(tmp_path: Path, nice: int) -> None:
    db = tmp_path / "brain.db"
    c = client_for(db, nice)
    bad_field = c.post("/api/v1/items", json={"items": [ITEM, {**ITEM, "id": "note:x", "created_at": "yesterday"}]},
                       headers=AUTH)
    assert bad_field.status_code == 400
    assert bad_field.json["error"] == {"code": "invalid_item", "field": "created_at", "index": 1,
                                       "message": "items[1].created_at: 'yesterday' is not an ISO-8601 date or time"}
    repeated = c.post("/api/v1/items", json={"items": [ITEM, ITEM]}, headers=AUTH)
    assert repeated.status_code == 400
    assert repeated.json["error"] == {"code": "invalid_item", "field": "id", "index": 1,
                                      "message": "items[1].id 'note:wal' repeats items[0]"}
    assert rows(db) == (0, 0)  # nothing of a refused batch is stored, whichever process refused it


def test_a_killed_child_is_replaced_and_the_batch_is_neither_lost_nor_doubled(tmp_path: Path) -> None:
    db = tmp_path / "brain.db"
    c = client_for(db, 10)
    assert c.post("/api/v1/items", json={"items": [ITEM]}, headers=AUTH).status_code == 200
    first = child_pid()
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not ingest_child._pool._broken:  # type: ignore[union-attr]  # the pool notices the death
        assert time.monotonic() < deadline, "the process pool did not notice its child's death"
        time.sleep(0.01)
    second = {**ITEM, "id": "note:second", "content": "A second note, stored in the request thread."}
    in_thread = ingest_child.stored_in["thread"]
    r = c.post("/api/v1/items", json={"items": [ITEM, second]}, headers=AUTH)
    assert r.status_code == 200, r.json
    assert (r.json["inserted"], r.json["unchanged"]) == (1, 1)
    assert ingest_child.stored_in["thread"] == in_thread + 1  # stored at once, not after a new child's start
    wait_ready()  # ... which starts in the background
    assert child_pid() != first
    third = {**ITEM, "id": "note:third", "content": "A third note, stored by the new child."}
    in_child = ingest_child.stored_in["child"]
    assert c.post("/api/v1/items", json={"items": [third]}, headers=AUTH).json["inserted"] == 1
    assert ingest_child.stored_in["child"] == in_child + 1
    assert rows(db)[0] == 3


def test_no_batch_waits_for_a_child_to_start(tmp_path: Path) -> None:
    ingest_child._reset()
    c = client_for(tmp_path / "brain.db", 10, start=False)  # a worker whose warm-up has not run
    in_thread = ingest_child.stored_in["thread"]
    assert c.post("/api/v1/items", json={"items": [ITEM]}, headers=AUTH).json["inserted"] == 1
    assert ingest_child.stored_in["thread"] == in_thread + 1
    wait_ready()
    in_child = ingest_child.stored_in["child"]
    second = {**ITEM, "id": "note:second", "content": "Stored by the child started by the first POST."}
    assert c.post("/api/v1/items", json={"items": [second]}, headers=AUTH).json["inserted"] == 1
    assert ingest_child.stored_in["child"] == in_child + 1


def test_the_request_thread_path_stores_the_same_rows(tmp_path: Path) -> None:
    in_child, in_thread = tmp_path / "child.db", tmp_path / "thread.db"
    a = client_for(in_child, 10).post("/api/v1/items", json={"items": [ITEM]}, headers=AUTH)
    b = client_for(in_thread, -1).post("/api/v1/items", json={"items": [ITEM]}, headers=AUTH)
    assert a.json == b.json
    assert rows(in_child) == rows(in_thread)


def test_the_child_lowers_its_priority_before_its_heavy_imports() -> None:
    """A spawned child imports its main module (as ``__mp_main__``) and its initializer's module
    before the initializer runs: both must import nothing heavy, or that work runs at the worker's
    priority beside the first requests."""
    probe = ("import runpy, sys\n"
             "runpy.run_module('brain.__main__', run_name='__mp_main__')\n"
             "import brain.shared.priority\n"
             "print(sorted(m for m in ('flask', 'pydantic', 'brain.cli.main', 'brain.core.store', 'numpy')"
             " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_started_child_has_loaded_what_a_batch_needs(tmp_path: Path) -> None:
    ingest_child._reset()
    c = client_for(tmp_path / "brain.db", 10)
    loaded = ingest_child._executor(10).submit(_loaded_in_child).result()
    assert loaded == {"tree_sitter_python": True, "tokenizers": True}
    assert c.post("/api/v1/items", json={"items": [ITEM]}, headers=AUTH).status_code == 200


def _loaded_in_child() -> dict[str, bool]:
    return {m: m in sys.modules for m in ("tree_sitter_python", "tokenizers")}
