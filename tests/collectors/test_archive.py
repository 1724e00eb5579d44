"""Issue 12: the raw Claude transcript archive is redacted at rest and kept for
``collect.archive_days`` only.

Every test greps the archive's whole folder (blobs decompressed, the manifest and its WAL) for
the planted secret, so a copy left anywhere counts as a leak."""

from __future__ import annotations

import contextlib
import gzip
import json
import sqlite3
import time
import zlib
from pathlib import Path

from click.testing import CliRunner

from brain.cli.main import main
from brain.collect.archive import Archive, redact_transcript, root_key
from brain.shared import config as config_mod

SECRET = "sk-proj-AbCdEf0123456789AbCdEf0123456789xyz"
CORE = "AbCdEf0123456789AbCdEf0123456789"
REL = "-home-dev-app/5e55a000-0000-4000-8000-000000000001.jsonl"


def _line(text: str, uuid: str) -> bytes:
    return json.dumps({"type": "user", "uuid": uuid, "message": {"role": "user", "content": text}}).encode() + b"\n"


def _everything(folder: Path) -> bytes:
    """Every file of the archive as stored, gzip blobs also decompressed."""
    out = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            out.append(data)
            with contextlib.suppress(OSError, EOFError, zlib.error):
                out.append(gzip.decompress(data))
    return b"\n".join(out)


def test_a_transcript_is_stored_redacted_and_reads_back_as_valid_json_lines(tmp_path: Path) -> None:
    clean = _line("run the tests", "u1")
    data = clean + _line(f"my key is {SECRET}, keep it", "u2") + b"not json: token=" + CORE.encode() + b"\n"
    arch = Archive(tmp_path / "a")
    assert arch.add(tmp_path / "projects", REL, data) == "new"
    stored = arch.read(root_key(tmp_path / "projects"), REL)
    lines = stored.splitlines(keepends=True)
    assert lines[0] == clean  # a line without a secret is kept byte for byte
    assert json.loads(lines[1])["message"]["content"] == "my key is [REDACTED:openai], keep it"
    assert lines[2].startswith(b"not json: token=[REDACTED:")
    assert arch.verify() == []
    arch.close()
    assert CORE.encode() not in _everything(tmp_path / "a")


def test_growth_is_redacted_including_a_line_still_being_written(tmp_path: Path) -> None:
    """Claude Code appends: each run stores the new lines, and the unfinished last line is
    replaced once it is complete (never stored twice, never left unredacted)."""
    root, key = tmp_path / "projects", root_key(tmp_path / "projects")
    arch = Archive(tmp_path / "a")
    first = _line("hello", "u1")
    secret_line = _line(f"deploy with {SECRET}", "u2")
    half = secret_line[:40]  # the write was cut in the middle of the line
    assert arch.add(root, REL, first + half) == "new"
    assert arch.read(key, REL) == redact_transcript(REL, first, arch.redactor) + redact_transcript(REL, half, arch.redactor)
    assert arch.add(root, REL, first + secret_line) == "appended"
    assert arch.add(root, REL, first + secret_line + _line("bye", "u3")) == "appended"
    whole = first + secret_line + _line("bye", "u3")
    assert arch.read(key, REL) == redact_transcript(REL, whole, arch.redactor)
    assert [json.loads(x)["uuid"] for x in arch.read(key, REL).splitlines()] == ["u1", "u2", "u3"]
    assert arch.verify() == []
    arch.close()
    assert CORE.encode() not in _everything(tmp_path / "a")


def _old_archive(base: Path, projects: Path, data: bytes) -> Path:
    """An archive as the code before redaction wrote it: the raw bytes, gzip, manifest without
    the stored_* columns."""
    key = root_key(projects)
    blob = base / key / (REL + ".gz")
    blob.parent.mkdir(parents=True)
    packed = gzip.compress(data, mtime=0)
    blob.write_bytes(packed)
    conn = sqlite3.connect(base / "manifest.db")
    conn.executescript("""
        CREATE TABLE roots (root_key TEXT PRIMARY KEY, path TEXT NOT NULL);
        CREATE TABLE files (root_key TEXT NOT NULL, rel TEXT NOT NULL, version INTEGER NOT NULL, blob TEXT NOT NULL,
            raw_size INTEGER NOT NULL, sha256 TEXT NOT NULL, gz_bytes INTEGER NOT NULL,
            first_seen REAL NOT NULL, last_seen REAL NOT NULL, PRIMARY KEY (root_key, rel, version));""")
    import hashlib

    conn.execute("INSERT INTO files VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?)",
                 (key, REL, f"{key}/{REL}.gz", len(data), hashlib.sha256(data).hexdigest(), len(packed),
                  time.time(), time.time()))
    conn.commit()
    conn.close()
    return blob


def test_an_archive_written_before_redaction_is_redacted_when_opened(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    data = _line("hi", "u1") + _line(f"the key: {SECRET}", "u2")
    old_blob = _old_archive(tmp_path / "a", projects, data)
    assert CORE.encode() in _everything(tmp_path / "a")
    arch = Archive(tmp_path / "a")
    assert not old_blob.exists()
    assert arch.read(root_key(projects), REL) == redact_transcript(REL, data, arch.redactor)
    # and it keeps growing from where the old code left it
    assert arch.add(projects, REL, data + _line("more", "u3")) == "appended"
    assert arch.verify() == []
    arch.close()
    assert CORE.encode() not in _everything(tmp_path / "a")


def test_transcripts_unchanged_for_archive_days_are_deleted(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    arch = Archive(tmp_path / "a")
    arch.add(root, "-p/old.jsonl", _line("old", "u1"))
    arch.add(root, "-p/old.jsonl", _line("old", "u1") + _line("older", "u2"))
    arch.add(root, "-p/new.jsonl", _line("new", "u1"))
    long_ago = time.time() - 40 * 86400
    arch.conn.execute("UPDATE files SET last_seen = ? WHERE rel = '-p/old.jsonl'", (long_ago,))
    arch.conn.commit()
    arch.close()
    kept = Archive(tmp_path / "a", keep_days=30)
    assert list(kept.files()) == [(root_key(root), "-p/new.jsonl")]
    assert not list((tmp_path / "a").rglob("old.jsonl*"))
    assert list(Archive(tmp_path / "a", keep_days=0).files()) == [(root_key(root), "-p/new.jsonl")]  # 0: keep all
    assert kept.prune(30, now=time.time() + 31 * 86400) == 1 and list(kept.files()) == []


def test_brain_collect_archives_redacted_and_applies_archive_days(projects: Path, runner: CliRunner) -> None:
    """The CLI's archive: redacted (fakehome's session holds an OpenAI key) and pruned by the setting."""
    env = {"BRAIN_API_URL": "http://127.0.0.1:9", "BRAIN_TOKEN": ""}
    first = runner.invoke(main, ["collect", "claude"], env=env)
    assert "client.token is not set" in first.output, first.output
    folder = config_mod.data_dir() / "claude-archive"
    assert list(folder.rglob("*.jsonl.gz"))
    assert CORE.encode() not in _everything(folder)
    conn = sqlite3.connect(folder / "manifest.db")
    conn.execute("UPDATE files SET last_seen = ?", (time.time() - 3 * 86400,))
    conn.commit()
    conn.close()
    runner.invoke(main, ["collect", "claude"], env={**env, "BRAIN_COLLECT_ARCHIVE_DAYS": "2"})
    assert not list(folder.rglob("*.jsonl.gz"))
