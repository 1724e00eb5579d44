"""brain backup / brain restore: consistent snapshots of a live WAL database, rotation, and a
restore that refuses damaged files and keeps what it replaces."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from brain.cli.main import main
from brain.core.backup import BackupError, backup_files, make_backup, restore_backup

T0 = datetime(2026, 11, 27, 3, 15, tzinfo=UTC)


def _wal_db(path: Path, rows: int = 3) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes (body) VALUES (?)", [(f"note {i}",) for i in range(rows)])
    conn.commit()
    return conn


def _bodies(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT body FROM notes ORDER BY id")]
    finally:
        conn.close()


def test_backup_holds_commits_still_in_the_wal_and_not_open_transactions(tmp_path: Path) -> None:
    db = tmp_path / "brain.db"
    writer = _wal_db(db)
    writer.execute("PRAGMA wal_autocheckpoint=0")  # keep the commits below in brain.db-wal only
    writer.execute("INSERT INTO notes (body) VALUES ('committed, only in the wal')")
    writer.commit()
    writer.execute("BEGIN")
    writer.execute("INSERT INTO notes (body) VALUES ('uncommitted')")
    assert (tmp_path / "brain.db-wal").stat().st_size > 0

    result = make_backup(db, tmp_path / "backups", keep=3, now=T0)
    writer.rollback()
    writer.close()

    assert result.path.name == "brain-20261127T031500Z.db"
    assert _bodies(result.path) == ["note 0", "note 1", "note 2", "committed, only in the wal"]
    assert result.path.stat().st_mode & 0o777 == 0o600
    assert not Path(str(result.path) + "-wal").exists()
    check = sqlite3.connect(result.path)
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    check.close()


def test_rotation_keeps_the_newest_and_ignores_other_files(tmp_path: Path) -> None:
    db = tmp_path / "brain.db"
    _wal_db(db).close()
    dest = tmp_path / "backups"
    dest.mkdir()
    (dest / "notes.txt").write_text("not a backup")
    made = [make_backup(db, dest, keep=2, now=T0 + timedelta(days=i)) for i in range(4)]

    assert backup_files(dest) == [made[2].path, made[3].path]
    assert made[3].removed == [made[1].path]
    assert (dest / "notes.txt").exists()


def test_two_backups_in_the_same_second_do_not_overwrite(tmp_path: Path) -> None:
    db = tmp_path / "brain.db"
    _wal_db(db).close()
    first = make_backup(db, tmp_path / "b", keep=5, now=T0)
    second = make_backup(db, tmp_path / "b", keep=5, now=T0)
    assert first.path != second.path
    assert len(backup_files(tmp_path / "b")) == 2


def test_backup_of_a_missing_database_fails_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="does not exist"):
        make_backup(tmp_path / "typo.db", tmp_path / "backups", keep=3)
    assert not (tmp_path / "typo.db").exists()
    assert backup_files(tmp_path / "backups") == []


def test_backup_rejects_keep_below_one(tmp_path: Path) -> None:
    db = tmp_path / "brain.db"
    _wal_db(db).close()
    with pytest.raises(BackupError, match="keep"):
        make_backup(db, tmp_path / "b", keep=0)


def test_restore_brings_back_the_snapshot_and_keeps_a_safety_copy(tmp_path: Path) -> None:
    db = tmp_path / "brain.db"
    conn = _wal_db(db)
    backup = make_backup(db, tmp_path / "b", keep=3, now=T0).path
    conn.execute("DELETE FROM notes")
    conn.execute("INSERT INTO notes (body) VALUES ('written after the backup')")
    conn.commit()
    conn.close()

    saved = restore_backup(backup, db, now=T0)

    assert _bodies(db) == ["note 0", "note 1", "note 2"]
    assert saved is not None and _bodies(saved) == ["written after the backup"]
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    check.close()


def test_restore_refuses_a_damaged_backup_and_leaves_the_database_alone(tmp_path: Path) -> None:
    db = tmp_path / "brain.db"
    _wal_db(db, rows=200).close()
    backup = make_backup(db, tmp_path / "b", keep=3, now=T0).path
    data = bytearray(backup.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # trash the second page
    backup.write_bytes(bytes(data))

    with pytest.raises(BackupError, match="damaged|restore of"):
        restore_backup(backup, db)
    assert len(_bodies(db)) == 200
    assert not list(tmp_path.glob("brain.db.pre-restore-*"))


def test_restore_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("hello, not sqlite" * 100)
    with pytest.raises(BackupError):
        restore_backup(junk, tmp_path / "brain.db")
    assert not (tmp_path / "brain.db").exists()


def test_cli_backup_then_restore_round_trip_through_the_api(tmp_path: Path, runner, monkeypatch) -> None:
    """A real brain database (made by the API) survives backup, deletion and restore."""
    from brain.api import create_app

    db = tmp_path / "data" / "brain.db"
    db.parent.mkdir()
    token = "t" * 32
    app = create_app({"server.db_path": str(db), "server.api_tokens": [token]})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    item = {"id": "note:backup-test", "source": "note", "title": "kept", "content": "remember the backup"}
    assert client.post("/api/v1/items", json={"items": [item]}, headers=headers).status_code == 200

    monkeypatch.setenv("BRAIN_DB", str(db))
    dest = tmp_path / "backups"
    out = runner.invoke(main, ["backup", "--dest", str(dest), "--keep", "2"])
    assert out.exit_code == 0, out.output
    [backup] = backup_files(dest)

    assert client.delete("/api/v1/items/note:backup-test", headers=headers).status_code == 200
    out = runner.invoke(main, ["restore", str(backup), "--yes"])
    assert out.exit_code == 0, out.output

    fresh = create_app({"server.db_path": str(db), "server.api_tokens": [token]}).test_client()
    got = fresh.get("/api/v1/items/note:backup-test", headers=headers)
    assert got.status_code == 200 and got.get_json()["title"] == "kept"


def test_cli_restore_asks_before_replacing(tmp_path: Path, runner, monkeypatch) -> None:
    db = tmp_path / "brain.db"
    _wal_db(db).close()
    backup = make_backup(db, tmp_path / "b", keep=3).path
    monkeypatch.setenv("BRAIN_DB", str(db))
    out = runner.invoke(main, ["restore", str(backup)], input="n\n")
    assert out.exit_code == 1 and "Aborted" in out.output
    assert not list(tmp_path.glob("brain.db.pre-restore-*"))


def test_cli_backup_reports_a_missing_database(tmp_path: Path, runner, monkeypatch) -> None:
    monkeypatch.setenv("BRAIN_DB", str(tmp_path / "nope.db"))
    out = runner.invoke(main, ["backup", "--dest", str(tmp_path / "b")])
    assert out.exit_code == 1
    assert "nope.db does not exist" in out.output


def test_backup_settings_come_from_the_environment(tmp_path: Path, runner, monkeypatch) -> None:
    db = tmp_path / "brain.db"
    _wal_db(db).close()
    monkeypatch.setenv("BRAIN_DB", str(db))
    monkeypatch.setenv("BRAIN_BACKUP_DIR", str(tmp_path / "env-dest"))
    monkeypatch.setenv("BRAIN_BACKUP_KEEP", "1")
    for _ in range(2):
        assert runner.invoke(main, ["backup"]).exit_code == 0
    assert len(backup_files(tmp_path / "env-dest")) == 1
    monkeypatch.setenv("BRAIN_BACKUP_KEEP", "0")
    out = runner.invoke(main, ["backup"])
    assert out.exit_code == 1 and "backup.keep" in out.output
