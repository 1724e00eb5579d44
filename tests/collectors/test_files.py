"""Files collector on a real folder tree: .gitignore, binaries, .env, node_modules, big files."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from brain.collect import files
from brain.shared import timeutil

from .conftest import RecordingSink

_opened: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    """Records every file opened while a test listens: proves what the collector never reads."""
    if event == "open" and _opened is not None and isinstance(args[0], str | bytes | os.PathLike):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def opened() -> Iterator[list[str]]:
    global _opened
    _opened = []
    yield _opened
    _opened = None


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def tree(home: Path) -> Path:
    root = home / "projects"
    app = root / "app"
    (app / ".git" / "info").mkdir(parents=True)
    write(app / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(app / ".git" / "info" / "exclude", "scratch.md\n")
    write(app / ".gitignore", "# build output\nbuild/\n*.log\n/local.txt\nignored_*.py\n!ignored_but_kept.py\n")
    write(app / "main.py", "import os\n\nAPI_KEY = 'sk-proj-AbCdEf0123456789AbCdEf0123456789xyz'\nprint('hi')\n")
    write(app / "README.md", "# App\n\nDocs.")
    write(app / "Dockerfile", "FROM python:3.11\n")
    write(app / "local.txt", "rooted ignore\n")
    write(app / "debug.log", "log\n")
    write(app / "scratch.md", "excluded by .git/info/exclude\n")
    write(app / "build" / "out.py", "generated\n")
    write(app / "src" / "util.ts", "export const x = 1;\n")
    write(app / "src" / ".gitignore", "generated.ts\n")
    write(app / "src" / "generated.ts", "// generated\n")
    write(app / "src" / "ignored_tmp.py", "x = 1\n")
    write(app / "src" / "ignored_but_kept.py", "y = 2\n")
    write(app / "src" / "données.py", "é = 'ü'\n")
    write(app / ".env", "OPENAI_API_KEY=sk-never-read-EXAMPLE-0123456789abcdef\n")
    write(app / ".env.local", "SECRET=never-read\n")
    write(app / "prod.env", "SECRET=never-read\n")
    write(app / "id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\nnever read\n")
    write(app / "deploy" / "server.pem", "never read\n")
    write(app / "node_modules" / "pkg" / "index.js", "module.exports = 1\n")
    write(app / ".venv" / "lib" / "site.py", "x\n")
    write(app / "tools" / "env311" / "pyvenv.cfg", "home = /usr/bin\n")
    write(app / "tools" / "env311" / "lib" / "mod.py", "x\n")
    write(app / "binary.py", b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR")
    write(app / "big.py", "x = 1\n" * 2000)  # 12 kB, over the 10 kB cap used in these tests
    write(app / "photo.jpg", b"\xff\xd8\xff\xe0 not matched by the globs")
    # a nested repository starts afresh: the outer *.log/ignored_* rules do not apply inside it
    lib = app / "vendor" / "lib"
    (lib / ".git").mkdir(parents=True)
    write(lib / ".gitignore", "*.md\n")
    write(lib / "ignored_here.py", "package lib\n")
    write(lib / "NOTES.md", "ignored by the nested rule\n")
    write(root / "notes" / "todo.md", "- [ ] write tests\n")
    os.symlink("/etc", root / "etc-link")
    os.symlink(app / "README.md", root / "notes" / "readme-link.md")
    return root


EXPECTED = {"app/main.py", "app/README.md", "app/Dockerfile", "app/src/util.ts", "app/src/ignored_but_kept.py",
            "app/src/données.py", "app/vendor/lib/ignored_here.py", "notes/todo.md"}


def collector(cfg, state, redactor, since=None) -> tuple[files.FilesCollector, RecordingSink]:
    sink = RecordingSink(state)
    return files.FilesCollector(cfg, state, sink, redactor, since), sink


def rels(sink: RecordingSink, root: Path) -> set[str]:
    return {it["meta"]["path"][len(str(root)) + 1:] for it in sink.items.values()}


@pytest.fixture
def cfg(tree: Path, make_cfg):
    return make_cfg(files_roots=[str(tree)], files_max_bytes=10_000, host="devbox")


def test_first_run_collects_exactly_the_right_files(tree, cfg, state, redactor, opened) -> None:
    c, sink = collector(cfg, state, redactor)
    stats = c.run()
    assert rels(sink, tree) == EXPECTED
    assert stats.errors == [] and stats.skipped["env file"] == 3 and stats.skipped["denied"] == 2
    assert stats.skipped["binary"] == 1 and stats.skipped["too big"] == 1
    # secret files are never even opened
    never = (".env", ".env.local", "prod.env", "id_rsa", "server.pem", "index.js", "site.py", "mod.py", "out.py")
    assert not [p for p in opened if os.path.basename(p) in never]
    assert "big.py" not in {os.path.basename(p) for p in opened}  # decided by its size alone


def test_item_shape(tree, cfg, state, redactor) -> None:
    c, sink = collector(cfg, state, redactor)
    c.run()
    path = str(tree / "app" / "main.py")
    it = sink.items[f"file:devbox:{path}"]
    assert it["source"] == "file" and it["uri"] == f"file://devbox{path}"
    assert it["project"] == str(tree / "app")  # nearest git root
    assert it["title"] == "app/main.py"
    assert "[REDACTED:openai]" in it["content"] and "sk-proj" not in it["content"]
    m = it["meta"]
    assert (m["language"], m["line_count"], m["size"]) == ("python", 4, (tree / "app" / "main.py").stat().st_size)
    assert m["mtime"] == it["updated_at"] == timeutil.fmt(datetime.fromtimestamp(os.stat(path).st_mtime, UTC))
    todo = sink.items[f"file:devbox:{tree / 'notes' / 'todo.md'}"]
    assert todo["project"] == str(tree) and todo["meta"]["language"] == "markdown"
    assert sink.items[f"file:devbox:{tree / 'app' / 'Dockerfile'}"]["meta"]["language"] == "dockerfile"
    assert sink.items[f"file:devbox:{tree / 'app/vendor/lib/ignored_here.py'}"]["project"] == str(tree / "app/vendor/lib")


def test_unchanged_rerun_costs_a_stat_only(tree, cfg, state, redactor, opened) -> None:
    collector(cfg, state, redactor)[0].run()
    opened.clear()
    c, sink = collector(cfg, state, redactor)
    stats = c.run()
    assert sink.items == {} and sink.deleted == [] and c.reads == 0
    assert stats.unchanged == len(EXPECTED) + 1  # + the binary file, remembered as binary
    assert {os.path.basename(p) for p in opened} <= {".gitignore", "exclude"}  # ignore rules only


def test_changes_and_deletions_are_sent(tree, cfg, state, redactor) -> None:
    collector(cfg, state, redactor)[0].run()
    write(tree / "app" / "main.py", "print('changed')\n")
    os.utime(tree / "app" / "main.py", ns=(1, 1_700_000_000_000_000_000))
    (tree / "app" / "README.md").unlink()
    write(tree / "app" / "src" / "util.ts", "x" * 20_000)  # now over the cap: leaves the brain
    write(tree / "app" / ".gitignore", "build/\n*.log\n/local.txt\nignored_*.py\n!ignored_but_kept.py\nnotes.txt\n"
          "Dockerfile\n")
    write(tree / "app" / "new.go", "package main\n")
    c, sink = collector(cfg, state, redactor)
    stats = c.run()
    assert rels(sink, tree) == {"app/main.py", "app/new.go"}
    assert sorted(sink.deleted) == sorted(f"file:devbox:{tree / p}" for p in (
        "app/README.md", "app/src/util.ts", "app/Dockerfile"))
    assert stats.deleted == 3
    assert sink.items[f"file:devbox:{tree / 'app' / 'main.py'}"]["content"] == "print('changed')\n"


def test_a_missing_root_deletes_nothing(tree, cfg, make_cfg, state, redactor) -> None:
    collector(cfg, state, redactor)[0].run()
    os.rename(tree, tree.with_name("moved"))
    c, sink = collector(cfg, state, redactor)
    stats = c.run()
    assert sink.deleted == [] and "is not a folder" in stats.errors[0]


def test_root_inside_a_repository_uses_the_ignore_files_above_it(tree, make_cfg, state, redactor) -> None:
    cfg = make_cfg(files_roots=[str(tree / "app" / "src")], host="devbox")
    c, sink = collector(cfg, state, redactor)
    c.run()
    assert rels(sink, tree / "app" / "src") == {"util.ts", "ignored_but_kept.py", "données.py"}
    assert next(iter(sink.items.values()))["project"] == str(tree / "app")


def test_since_reads_only_recent_files_and_deletes_nothing_else(tree, cfg, state, redactor) -> None:
    old = 1_600_000_000
    for p in tree.rglob("*"):
        if p.is_file() and not p.is_symlink():
            os.utime(p, (old, old))
    os.utime(tree / "app" / "main.py", None)  # touched now
    c, sink = collector(cfg, state, redactor, since=timeutil.parse("2025-01-01"))
    stats = c.run()
    # the 7 other expected files and binary.py are older than --since: not opened
    assert rels(sink, tree) == {"app/main.py"} and stats.skipped["before --since"] == len(EXPECTED)
    c, sink = collector(cfg, state, redactor)
    c.run()
    assert rels(sink, tree) == EXPECTED - {"app/main.py"} and sink.deleted == []


def test_glob_set_fast_paths_agree_with_gitignore_semantics() -> None:
    g = files.GlobSet(["*.py", "Makefile", "docs/**/*.rst", "# comment", ""])
    assert g.match("a.py", "x/a.py") and g.match("Makefile", "sub/Makefile")
    assert g.match("i.rst", "docs/a/b/i.rst") and not g.match("i.rst", "other/i.rst")
    assert not g.match("a.pyc", "a.pyc") and not g.match(".py", ".py")
    assert files.is_env_file(".env") and files.is_env_file(".env.production") and files.is_env_file("x.env")
    assert not files.is_env_file("environment.py")


def test_default_host_is_the_hostname(make_cfg) -> None:
    assert files.host_name(make_cfg()) == socket.gethostname()


def test_undecodable_binary_unreadable_and_unnameable_files_are_named_and_the_rest_collected(
        home: Path, make_cfg, state, redactor, monkeypatch) -> None:
    root = home / "poison"
    write(root / "good.py", "print('fine')\n")
    write(root / "latin1.txt", b"caf\xe9 cr\xe8me br\xfbl\xe9e\n")
    write(root / "blob.py", b"\x00\x01\x02 compiled")
    locked = write(root / "locked.md", "you may not read me\n")
    os.chmod(locked, 0)
    if os.access(locked, os.R_OK):  # running as root: permissions do not stop a read, so refuse it here
        real_open = open

        def refusing_open(path, *args, **kwargs):
            if os.fspath(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(locked))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(files, "open", refusing_open, raising=False)
    unnameable = os.path.join(os.fsencode(root), b"bad-\xff-name.py")
    with open(unnameable, "wb") as fh:
        fh.write(b"x = 1\n")
    try:
        c, sink = collector(make_cfg(files_roots=[str(root)], host="devbox"), state, redactor)
        stats = c.run()
    finally:
        os.chmod(locked, 0o600)
    assert rels(sink, root) == {"good.py", "latin1.txt"}
    latin = next(it for it in sink.items.values() if it["meta"]["rel_path"] == "latin1.txt")
    assert latin["content"] == "caf\ufffd cr\ufffdme br\ufffdl\ufffde\n"
    assert stats.repaired == [(str(root / "latin1.txt"), "invalid UTF-8 replaced with U+FFFD")]
    assert sorted(stats.dropped) == sorted([
        (str(root / "blob.py"), "binary (a NUL byte in the first 8 KiB)"),
        (str(locked), "cannot be read: Permission denied"),
        (str(root) + "/bad-\ufffd-name.py", "file name is not valid UTF-8"),
    ])
    assert stats.errors == [] and "dropped 3 (" in stats.summary()
