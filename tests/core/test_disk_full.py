"""A full or read-only disk under the database (issue 12): ``507 insufficient_storage`` /
``503 storage_read_only``, ``/readyz`` not ready while it lasts, nothing half-written, and
recovery without a restart once the disk is writable again. On a real small tmpfs (needs root,
as CI has; skipped with the reason otherwise)."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from brain.core import store
from brain.core.embed_worker import EmbedWorker
from tests.conftest import ApiServer, stop_api_server
from tests.core.rawhttp import snapshot, start_server
from tests.standins.openai_embeddings import EmbeddingsStandIn


class SmallDisk:
    """A tmpfs of a few MB mounted for one test, that can be filled, emptied, and remounted."""

    def __init__(self, path: Path):
        self.path = path
        self.filler = path / "filler"

    def mount(self, size: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(self.path)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): "
                        "the disk-full tests need root")

    def fill(self) -> None:
        """Write a file until the filesystem refuses (ENOSPC): no byte is left."""
        with open(self.filler, "ab") as f:
            chunk = b"\0" * 65536
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        for size in (4096, 512, 1):  # the last partial chunk's worth, down to the byte
            try:
                with open(self.filler, "ab") as f:
                    while True:
                        f.write(b"\0" * size)
                        f.flush()
            except OSError:
                pass
        assert os.statvfs(self.path).f_bavail == 0

    def free(self) -> None:
        self.filler.unlink()

    def remount(self, mode: str) -> None:
        """``ro`` or ``rw``; polls while the kernel says busy (a request's connection still closing)."""
        deadline = time.monotonic() + 60  # a hang's limit, not a speed
        while True:
            done = subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], capture_output=True, text=True)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"remount {mode} failed: {done.stderr}")
            time.sleep(0.05)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    d = SmallDisk(tmp_path / "disk")
    d.mount("8m")
    yield d
    d.unmount()


@pytest.fixture
def server_on_disk(disk: SmallDisk, tmp_path: Path) -> Iterator[ApiServer]:
    """brain-api whose database is on the small disk (its log and home are not)."""
    db = disk.path / "brain.db"
    srv = start_server(tmp_path / "srv", {"BRAIN_DB": str(db)})
    srv.db_path = db
    yield srv
    stop_api_server(srv)


def batch(prefix: str, n: int = 40) -> dict:
    return {"items": [{"id": f"note:{prefix}{i}", "source": "note", "title": f"{prefix} {i}",
                       "content": f"{prefix} item {i}: " + "words about disks and databases " * 200}
                      for i in range(n)]}


def post(srv: ApiServer, body: dict) -> requests.Response:
    return requests.post(srv.url + "/api/v1/items", json=body, headers=srv.headers, timeout=60)


def ready(srv: ApiServer) -> requests.Response:
    return requests.get(srv.url + "/readyz", headers=srv.headers, timeout=30)


def poll(check, within: float = 60.0):
    """Call ``check`` until it returns something true, or fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s")
        time.sleep(0.05)


def test_disk_full_is_507_not_ready_nothing_half_written_and_recovers(server_on_disk, disk):
    srv = server_on_disk
    assert post(srv, batch("before", 3)).status_code == 200
    before = snapshot(srv.db_path)
    pid = srv.process.pid

    disk.fill()
    for body in (batch("full"), batch("small", 1)):
        r = post(srv, body)
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "insufficient_storage"
    r = ready(srv)
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready", r.text
    assert "full" in r.json()["error"]["message"]

    disk.free()
    assert snapshot(srv.db_path) == before  # nothing of the refused batches was written
    assert before[1] == "ok"
    poll(lambda: ready(srv).status_code == 200)
    r = post(srv, batch("full"))
    assert r.status_code == 200 and r.json()["inserted"] == 40, r.text
    assert srv.process.pid == pid and srv.process.poll() is None  # no restart
    assert snapshot(srv.db_path)[1] == "ok"
    assert "Traceback" not in srv.log()


def test_read_only_disk_is_503_storage_read_only_and_recovers(server_on_disk, disk):
    srv = server_on_disk
    assert post(srv, batch("before", 3)).status_code == 200
    before = snapshot(srv.db_path)

    disk.remount("ro")
    try:
        r = post(srv, batch("ro", 2))
        assert r.status_code == 503 and r.json()["error"]["code"] == "storage_read_only", r.text
        r = ready(srv)
        assert r.status_code == 503 and "read-only" in r.json()["error"]["message"], r.text
    finally:
        disk.remount("rw")
    assert snapshot(srv.db_path) == before
    poll(lambda: ready(srv).status_code == 200)
    r = post(srv, batch("ro", 2))
    assert r.status_code == 200 and r.json()["inserted"] == 2, r.text
    assert "Traceback" not in srv.log()


def test_the_embedding_worker_waits_out_a_full_disk_and_carries_on(disk):
    """Its vectors cannot be stored while the disk is full: it backs off and retries, and stores
    them once there is space, without a restart (the wait between tries frees the disk here).
    (A worker that starts on a full disk cannot open the database and exits, as brain-api does.)"""
    standin = EmbeddingsStandIn(dim=64).start()
    try:
        from brain.core.embed import OpenAIEmbedder

        emb = OpenAIEmbedder("sk-test", base_url=standin.url, max_retries=0, batch_size=8)
        db = disk.path / "brain.db"
        conn = store.connect(db)
        store.migrate(conn)
        st = store.Store(conn, chunk_tokens=64, chunk_overlap=0)
        st.upsert([{"id": f"note:w{i}", "source": "note", "content": f"note {i} " + "text " * 400}
                   for i in range(10)], emb)
        queued = st.backlog(emb.model_id)[emb.model_id]["queued"]
        conn.close()
        waits: list[float] = []

        def wait(seconds: float) -> bool:
            waits.append(seconds)
            if disk.filler.exists():
                disk.free()
            return False

        worker = EmbedWorker(db, emb.model_id, lambda: emb, batch=64, wait=wait)  # running, then the disk fills
        disk.fill()
        assert worker.drain() == queued
        worker.close()
        assert waits and worker.stats.failures == len(waits)
        conn = store.connect(db)
        assert store.Store(conn).backlog(emb.model_id)[emb.model_id]["queued"] == 0
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
    finally:
        standin.stop()
