"""Issue 12: the database and its folder are private to the account that runs brain-api,
whoever starts it and whatever its umask: the folder 0700, ``brain.db`` and its ``-wal`` and
``-shm`` files 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from brain.api import create_app
from brain.core import store
from tests.conftest import TOKEN


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A hand-started ``brain serve`` in a shell with the usual umask 022."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_database_and_its_folder_are_created_private(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "data" / "brain" / "brain.db"
    client = create_app({"server.db_path": str(db), "server.api_tokens": [TOKEN]}).test_client()
    reader = store.connect(db)  # an open connection keeps -wal and -shm (the last close removes them)
    try:
        item = {"id": "note:modes", "source": "note", "title": "modes", "content": "written through the WAL"}
        resp = client.post("/api/v1/items", json={"items": [item]}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status_code == 200, resp.get_json()
        assert reader.execute("SELECT count(*) FROM items").fetchone()[0] == 1
        files = {p.name: _mode(p) for p in db.parent.iterdir() if p.name.startswith("brain.db")}
    finally:
        reader.close()
    assert _mode(db.parent) == 0o700
    assert {"brain.db", "brain.db-wal", "brain.db-shm"} <= set(files), files
    assert set(files.values()) == {0o600}, files


def test_an_existing_database_and_folder_keep_their_mode(tmp_path: Path, open_umask: None) -> None:
    """An operator's own choice (a group-readable backup folder, say) is not undone on open."""
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o750)
    db = folder / "brain.db"
    conn = store.connect(db)
    store.migrate(conn)
    conn.close()
    db.chmod(0o640)
    conn = store.connect(db)
    conn.close()
    assert _mode(folder) == 0o750 and _mode(db) == 0o640


def test_a_readonly_open_creates_nothing(tmp_path: Path) -> None:
    import sqlite3

    with pytest.raises(sqlite3.OperationalError):
        store.connect(tmp_path / "missing" / "brain.db", readonly=True).execute("SELECT 1")
    assert not (tmp_path / "missing").exists()
