"""Forgetting that sticks (issue 16, point 7), end to end: the real collectors on a fake home, into
a real brain-api (gunicorn) on loopback, forgetting with ``brain forget``.

A forgotten file, page and session stay gone after their sources change and ``brain collect all``
runs again; the collectors skip them before they are queued (the server's ingest answers show it
refused nothing: nothing forgotten was sent), also with brain-api unreachable, and an item queued
before the forget is taken out of the outbox unsent.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from brain.cli.main import main
from brain.client.http import ApiClient, ApiError
from brain.collect.outbox import State
from brain.shared import config as config_mod
from tests.conftest import closed_port_url

from .fakehome import assistant, chrome_us, copy_real_claude, user, write_chrome_history

pytestmark = pytest.mark.e2e

SID = "55604662-cf2a-4331-851a-ec234028f8ca"
SESSION_ID = f"claude:{SID}"
SPOTTER = "/home/marco/projects/spotter"


def env_for(server: Any, home: Path, **extra: str) -> dict[str, str]:
    return {"BRAIN_API_URL": server.url, "BRAIN_TOKEN": server.token, "BRAIN_COLLECT_HOST": "devbox",
            "BRAIN_COLLECT_FILES_ROOTS": str(home / "code"), **extra}


def collect(runner: Any, env: dict[str, str], *which: str, ok: bool = True) -> str:
    result = runner.invoke(main, ["collect", *(which or ("all",))], env=env)
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def gone(client: ApiClient, item_id: str) -> bool:
    try:
        client.get_item(item_id)
    except ApiError as exc:
        return exc.status == 404
    return False


def chrome_id(client: ApiClient, url: str) -> str:
    page = client.list_items(source="browser", limit=500)["items"]
    return next(it["id"] for it in page if it["uri"] == url)


def visit_again(history: Path, url: str, at: str) -> None:
    """A new visit of ``url`` in Chrome's History, as Chrome writes it."""
    conn = sqlite3.connect(history)
    row = conn.execute("SELECT id FROM urls WHERE url = ?", (url,)).fetchone()
    if row is None:
        url_id = conn.execute("INSERT INTO urls(url, title, visit_count, typed_count, last_visit_time, hidden) "
                              "VALUES (?, ?, 1, 0, ?, 0)", (url, "SQLite WAL", chrome_us(at))).lastrowid
    else:
        url_id = row[0]
        conn.execute("UPDATE urls SET visit_count = visit_count + 1, last_visit_time = ? WHERE id = ?",
                     (chrome_us(at), url_id))
    conn.execute("INSERT INTO visits(url, visit_time, transition) VALUES (?, ?, 805306368)", (url_id, chrome_us(at)))
    conn.commit()
    conn.close()


def continue_session(projects: Path) -> None:
    """The user goes on in the forgotten Claude session: two more lines in its transcript."""
    path = projects / "-home-marco-projects-spotter" / f"{SID}.jsonl"
    lines = [user(SID, "2026-02-11T09:00:00.000Z", SPOTTER, "f-u1", "the secret plan, part two"),
             assistant(SID, "2026-02-11T09:00:05.000Z", SPOTTER, "f-a1", "msg_forget01",
                       [{"type": "text", "text": "noted the secret plan"}])]
    with path.open("a", encoding="utf-8") as fh:
        for entry in lines:
            fh.write(json.dumps(entry, separators=(",", ":")) + "\n")


def sent_summary(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("sent: "))


def test_a_forgotten_file_page_and_session_stay_gone_after_a_recollect(api_server_fast_embed, runner,
                                                                        home: Path) -> None:
    server = api_server_fast_embed
    projects = home / ".claude" / "projects"
    copy_real_claude(projects)
    history = home / ".config" / "google-chrome" / "Default" / "History"
    write_chrome_history(history)
    code = home / "code" / "proj"
    (code / ".git").mkdir(parents=True)
    diary = code / "diary.md"
    diary.write_text("dear diary: the secret plan\n")
    (code / "app.py").write_text("def handler():\n    return 1\n")
    env = env_for(server, home)
    collect(runner, env)
    client = ApiClient(server.url, server.token)
    diary_id = f"file:devbox:{diary}"
    docs = "https://docs.python.org/3/library/sqlite3.html"
    page_id = chrome_id(client, docs)
    assert client.get_item(diary_id) and client.get_item(page_id) and client.get_item(SESSION_ID)

    for args in ([diary_id], ["--domain", "docs.python.org"], ["--id", SESSION_ID]):
        result = runner.invoke(main, ["forget", *args, "--yes"], env=env)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("forgot 1 item; tombstone #")
    assert all(gone(client, i) for i in (diary_id, page_id, SESSION_ID))
    listed = runner.invoke(main, ["forget", "--list"], env=env)
    assert "domain=docs.python.org" in listed.output and f"id={SESSION_ID}" in listed.output

    # every source changes: the file is edited, the page visited again, the session continued
    diary.write_text("dear diary: the secret plan, edited\n")
    os.utime(diary, (2_000_000_000, 2_000_000_000))
    visit_again(history, docs, "2026-01-20T10:00:00Z")
    visit_again(history, "https://sqlite.org/wal.html", "2026-01-20T10:05:00Z")  # not forgotten
    continue_session(projects)
    output = collect(runner, env)

    assert all(gone(client, i) for i in (diary_id, page_id, SESSION_ID))
    for name in ("files", "browser", "claude"):
        line = next(ln for ln in output.splitlines() if ln.startswith(f"{name}: "))
        assert "skipped forgotten 1" in line or "forgotten 1" in line, line
    assert "forgotten 0" in sent_summary(output)  # brain-api refused nothing: nothing forgotten was sent
    assert client.get_item(chrome_id(client, "https://sqlite.org/wal.html"))  # the run did collect
    hits = client.search("secret plan", mode="bm25")["results"]
    assert not {diary_id, page_id, SESSION_ID} & {h["id"] for h in hits}

    # undo the page's tombstone: the next visit brings it back (what was deleted is not restored)
    tomb = next(t for t in client.tombstones() if t["rule"] == {"domain": "docs.python.org"})
    undo = runner.invoke(main, ["forget", "--undo", str(tomb["id"])], env=env)
    assert undo.exit_code == 0 and "accepted again" in undo.output
    visit_again(history, docs, "2026-01-21T10:00:00Z")
    collect(runner, env, "browser")
    assert client.get_item(page_id)["uri"] == docs
    assert gone(client, diary_id) and gone(client, SESSION_ID)


def test_offline_the_learnt_tombstones_still_skip_and_the_outbox_drops_what_was_forgotten_meanwhile(
        api_server_fast_embed, runner, home: Path) -> None:
    server = api_server_fast_embed
    code = home / "code" / "proj"
    (code / ".git").mkdir(parents=True)
    secret, later, plain = code / "secret.md", code / "later.md", code / "plain.md"
    secret.write_text("secret one\n")
    plain.write_text("plain\n")
    env = env_for(server, home)
    collect(runner, env, "files")
    client = ApiClient(server.url, server.token)
    glob = str(code / "secret*")
    counted = runner.invoke(main, ["forget", "--path", glob, "--dry-run"], env=env)
    assert counted.exit_code == 0 and counted.output == f"would forget 1 item (path_glob={glob})\n"
    declined = runner.invoke(main, ["forget", "--path", glob], env=env, input="n\n")
    assert declined.exit_code == 1 and "Forget 1 item (path_glob=" in declined.output
    assert client.tombstones() == [] and client.get_item(f"file:devbox:{secret}")
    client.forget(path_glob=glob)
    collect(runner, env, "files")  # learns the tombstone

    # brain-api unreachable: the rule learnt last time still keeps the edited secret off the outbox
    secret.write_text("secret one, edited offline\n")
    later.write_text("written offline\n")
    offline = env_for(server, home, BRAIN_API_URL=closed_port_url(), BRAIN_CLIENT_MAX_RETRIES="0")
    output = collect(runner, offline, "files", ok=False)
    assert "cannot fetch what was forgotten" in output and "skipping by the 1 tombstone learnt" in output
    assert "skipped forgotten 1" in output
    st = State(config_mod.state_dir() / "collect.db")
    try:
        queued = [r[0] for r in st.conn.execute("SELECT item_id FROM outbox WHERE op = 'upsert'")]
    finally:
        st.close()
    assert queued == [f"file:devbox:{later}"]

    # forgotten while it waited in the outbox: taken out at the next run, never sent
    client.forget(id=f"file:devbox:{later}")
    output = collect(runner, env, "files")
    assert "outbox: 1 queued items were forgotten meanwhile; not sent" in output
    assert gone(client, f"file:devbox:{later}") and gone(client, f"file:devbox:{secret}")
    assert client.get_item(f"file:devbox:{plain}")["content"] == "plain\n"
