"""End to end: every collector on a fake home, into a real brain-api (gunicorn) on loopback.

Also the crash test of issue 3: a collector killed with SIGKILL while sending, then the next
run delivers every item exactly once into the store.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from brain.cli.main import main
from brain.client.http import ApiClient, ApiError
from brain.collect.outbox import State
from brain.shared import config as config_mod

from .fakehome import LiveFirefox, copy_real_claude, write_chrome_history, write_profiles_ini, write_synthetic_claude

pytestmark = pytest.mark.e2e


def api_env(server: Any, **extra: str) -> dict[str, str]:
    return {"BRAIN_API_URL": server.url, "BRAIN_TOKEN": server.token, **extra}


def all_ids(client: ApiClient, source: str) -> list[str]:
    ids: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = client.list_items(source=source, limit=500, offset=offset)
        ids += [it["id"] for it in page["items"]]
        offset = page["next_offset"]
    return ids


def test_every_collector_end_to_end_into_brain_api(api_server_fast_embed, runner, home: Path) -> None:
    api_server = api_server_fast_embed
    copy_real_claude(home / ".claude" / "projects")
    write_synthetic_claude(home / ".claude" / "projects")
    write_chrome_history(home / ".config" / "google-chrome" / "Default" / "History")
    base = home / ".mozilla" / "firefox"
    write_profiles_ini(base, {"default": "x1.default"})
    firefox = LiveFirefox(base / "x1.default")
    code = home / "code" / "proj"
    (code / ".git").mkdir(parents=True)
    (code / ".gitignore").write_text("dist/\n")
    (code / "app.py").write_text("def handler():\n    return 'sqlite busy timeout'\n")
    (code / "dist").mkdir()
    (code / "dist" / "bundle.js").write_text("ignored")
    (code / ".env").write_text("TOKEN=never-leaves\n")
    env = api_env(api_server, BRAIN_COLLECT_FILES_ROOTS=str(home / "code"), BRAIN_COLLECT_HOST="devbox")
    try:
        result = runner.invoke(main, ["collect", "all"], env=env)
    finally:
        firefox.close()
    assert result.exit_code == 0, result.output
    client = ApiClient(api_server.url, api_server.token)

    session = client.get_item("claude:55604662-cf2a-4331-851a-ec234028f8ca")
    assert session["title"] == "mix phx.server doesnt seem to start"
    assert session["project"] == "/home/marco/projects/spotter"
    assert session["meta"]["resume"] == "claude --resume 55604662-cf2a-4331-851a-ec234028f8ca"
    assert "tool Bash: mix phx.server 2>&1 | head -80" in session["content"]
    assert len(all_ids(client, "claude")) == 6

    browser_items = [client.get_item(i) for i in all_ids(client, "browser")]
    uris = {it["uri"] for it in browser_items}
    assert "https://docs.python.org/3/library/sqlite3.html" in uris
    assert "https://news.ycombinator.com/item?id=1" in uris  # Firefox, only in the -wal
    assert "https://example.com/reset?token=[REDACTED:url_param]&lang=en" in uris
    assert not any("EXAMPLE" in it["content"] + (it["uri"] or "") for it in browser_items)
    assert len(browser_items) == 8 + 4

    f = client.get_item(f"file:devbox:{code / 'app.py'}")
    assert f["project"] == str(code) and f["meta"]["language"] == "python" and f["meta"]["line_count"] == 2
    assert all_ids(client, "file") == [f["id"]]
    hits = client.search("sqlite busy timeout", source="file")["results"]
    assert hits and hits[0]["id"] == f["id"]

    # a deleted file is deleted from the brain by the next run
    (code / "app.py").unlink()
    result = runner.invoke(main, ["collect", "files"], env=env)
    assert result.exit_code == 0, result.output
    assert "1 deleted" in result.stdout
    with pytest.raises(ApiError) as exc:
        client.get_item(f["id"])
    assert exc.value.status == 404


class HoldingProxy:
    """Forwards to brain-api, but after forwarding the ``hold_at``-th item batch it never answers:
    the batch is stored, the collector never learns it. That is the moment the test kills it."""

    def __init__(self, upstream: str, hold_at: int):
        self.upstream, self.hold_at = upstream, hold_at
        self.posts = 0
        self.held = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                resp = requests.request(self.command, proxy.upstream + self.path, data=body, headers=headers, timeout=120)
                if self.command == "POST":
                    proxy.posts += 1
                    if proxy.posts == proxy.hold_at:
                        proxy.held.set()
                        proxy.release.wait(60)
                        self.close_connection = True
                        return
                self.send_response(resp.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_DELETE = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_sigkill_mid_send_then_every_item_exactly_once(api_server, runner, home: Path) -> None:
    tree = home / "code"
    for i in range(30):
        (tree / f"pkg{i % 3}").mkdir(parents=True, exist_ok=True)
        (tree / f"pkg{i % 3}" / f"mod{i}.py").write_text(f"def f{i}():\n    return {i}\n")
    proxy = HoldingProxy(api_server.url, hold_at=2)
    env = {**os.environ, "BRAIN_API_URL": proxy.url, "BRAIN_TOKEN": api_server.token,
           "BRAIN_COLLECT_FILES_ROOTS": str(tree), "BRAIN_COLLECT_BATCH_ITEMS": "10", "BRAIN_COLLECT_HOST": "devbox"}
    proc = subprocess.Popen([sys.executable, "-m", "brain", "collect", "files"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert proxy.held.wait(60), "the collector never sent its second batch"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proxy.stop()

    client = ApiClient(api_server.url, api_server.token)
    assert len(all_ids(client, "file")) == 20  # batches 1 and 2 are stored ...
    st = State(config_mod.state_dir() / "collect.db")
    assert st.pending()["upsert"] == 20  # ... but only batch 1 was acknowledged
    st.close()

    result = runner.invoke(main, ["collect", "files"], env=api_env(
        api_server, BRAIN_COLLECT_FILES_ROOTS=str(tree), BRAIN_COLLECT_BATCH_ITEMS="10", BRAIN_COLLECT_HOST="devbox"))
    assert result.exit_code == 0, result.output
    assert "files: 30 scanned, 0 queued, 30 unchanged" in result.stdout  # the index survived the kill
    assert "sent: 20 items in 2 batches" in result.stdout and "unchanged 10" in result.stdout

    ids = all_ids(client, "file")
    assert len(ids) == len(set(ids)) == 30
    for i in range(30):
        path = tree / f"pkg{i % 3}" / f"mod{i}.py"
        assert client.get_item(f"file:devbox:{path}")["content"] == f"def f{i}():\n    return {i}\n"
    db = sqlite3.connect(api_server.db_path)
    try:
        assert db.execute("SELECT COUNT(*) FROM items WHERE source = 'file'").fetchone()[0] == 30
        dup_chunks = db.execute("SELECT item_id, seq FROM chunks GROUP BY item_id, seq HAVING COUNT(*) > 1").fetchall()
        assert dup_chunks == []
    finally:
        db.close()
