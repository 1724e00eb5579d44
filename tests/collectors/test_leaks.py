"""Issue 12: planted fake secrets never leave the laptop; look-alikes do, unchanged.

Every secret kind and every look-alike of ``secret_corpus`` is planted in every channel: Claude
transcripts (user text, tool input, tool output, also URL-encoded, JSON-escaped and HTML), a
Chrome ``History`` and a Firefox ``places.sqlite`` built from the real schemas (URL path, query,
fragment, title, URL-encoded, double-encoded, search terms, HTML-escaped titles, descriptions) and
files (code, shell, Markdown, JSON, YAML, HTML, INI, .env, TOML, Kubernetes Secrets, .netrc,
~/.aws/credentials). The real collectors run through the real CLI, first without a token (the
items wait in the outbox, which is grepped), then into a real brain-api on loopback, whose
database file, WAL, log and embedding requests are grepped too, and so is the transcript
archive the collector keeps on the laptop.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sqlite3
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brain.cli.main import main
from brain.shared import config as config_mod

from . import secret_corpus as corpus
from .fakehome import FIREFOX_SCHEMA, UrlRow, assistant, jsonl, unix_us, user, write_chrome_history, write_profiles_ini

pytestmark = pytest.mark.e2e

CWD = "/home/dev/corpus"
MAX_LOOKALIKES_REDACTED = 0.05


@dataclass
class Where:
    """Where a look-alike must be found after collection: the item and the text in it."""

    source: str  # claude / browser / file
    locator: str  # claude and file: the item id; browser: the planted URL
    expected: str


def _sid(name: str) -> str:
    return str(uuid.UUID(hashlib.sha256(name.encode()).hexdigest()[:32]))


# ---------------------------------------------------------------------- planting


def write_claude(projects: Path, plants: list[corpus.Plant]) -> dict[int, Where]:
    """One session per kind (secrets and look-alikes apart), one exchange per channel."""
    where: dict[int, Where] = {}
    sessions: dict[str, list[dict[str, Any]]] = {}
    for i, p in enumerate(plants):
        if not p.channel.startswith("claude_"):
            continue
        sid = _sid(f"{p.kind}-{p.secret}")
        lines = sessions.setdefault(sid, [user(sid, "2026-03-01T10:00:00.000Z", CWD, f"{sid}-0",
                                               f"corpus session {p.kind}")])
        n = len(lines)
        ts = f"2026-03-01T10:{n // 60:02d}:{n % 60:02d}.000Z"
        text = corpus.claude_text(p)
        if p.channel == "claude_user":
            lines.append(user(sid, ts, CWD, f"{sid}-{n}", text))
            expected = "user: " + text.strip()
        else:
            command = text if p.channel == "claude_tool_input" else "cat /tmp/notes.txt"
            lines.append(assistant(sid, ts, CWD, f"{sid}-{n}", f"msg_{n}", [
                {"type": "tool_use", "id": f"toolu_{n}", "name": "Bash", "input": {"command": command}}]))
            output = "exit 0" if p.channel == "claude_tool_input" else text
            lines.append(user(sid, ts, CWD, f"{sid}-{n}r", [
                {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": output}]))
            expected = f"tool Bash: {text.strip()}" if p.channel == "claude_tool_input" else \
                f"result (Bash): {text.strip()}"
        where[i] = Where("claude", f"claude:{sid}", expected)
    for sid, lines in sessions.items():
        jsonl(projects / "-home-dev-corpus" / f"{sid}.jsonl", lines)
    return where


def write_browsers(home: Path, plants: list[corpus.Plant]) -> dict[int, Where]:
    """A Chrome History and a Firefox places.sqlite holding the browser plants, one URL each."""
    where: dict[int, Where] = {}
    chrome_rows: list[UrlRow] = []
    firefox_rows: list[tuple[str, str, str]] = []
    for i, p in enumerate(plants):
        if not p.channel.startswith(("chrome_", "firefox_")):
            continue
        url, title, desc = corpus.browser_url(p, i)
        where[i] = Where("browser", url, corpus.expected_browser_text(p, url, title, desc))
        if p.channel.startswith("chrome_"):
            terms = (p.text,) if p.channel == "chrome_search_term" else ()
            chrome_rows.append(UrlRow(url, title, ["2026-02-01T09:00:00Z"], terms=terms))
        else:
            firefox_rows.append((url, title, desc))
    write_chrome_history(home / ".config" / "google-chrome" / "Default" / "History", chrome_rows)
    base = home / ".mozilla" / "firefox"
    write_profiles_ini(base, {"default": "c0rpus.default"})
    (base / "c0rpus.default").mkdir(parents=True)
    conn = sqlite3.connect(base / "c0rpus.default" / "places.sqlite")
    conn.executescript(FIREFOX_SCHEMA)
    for n, (url, title, desc) in enumerate(firefox_rows):
        t = unix_us("2026-02-02T09:00:00Z") + n
        cur = conn.execute("INSERT INTO moz_places(url, title, rev_host, visit_count, frecency, last_visit_date, guid, "
                           "description) VALUES (?, ?, '', 1, 100, ?, ?, ?)", (url, title, t, f"g{n:011d}", desc))
        conn.execute("INSERT INTO moz_historyvisits(place_id, visit_date, visit_type, session) VALUES (?, ?, 1, 0)",
                     (cur.lastrowid, t))
    conn.commit()
    conn.close()
    return where


def write_files(root: Path, plants: list[corpus.Plant], host: str) -> dict[int, Where]:
    """One file per channel, secrets and look-alikes in separate folders."""
    where: dict[int, Where] = {}
    names = {**corpus.SNIPPET_FILES, **corpus.KEYED_FILES}
    groups: dict[tuple[str, bool], list[tuple[int, corpus.Plant]]] = defaultdict(list)
    for i, p in enumerate(plants):
        if p.channel.startswith("file_"):
            groups[(p.channel, p.secret)].append((i, p))
    for (channel, secret), members in groups.items():
        path = root / ("secrets" if secret else "lookalikes") / names[channel]
        path.parent.mkdir(parents=True, exist_ok=True)
        if channel.startswith("file_json"):
            entries = [corpus.json_entry_text(p) for _, p in members]
            expected = [json.dumps(e) if channel != "file_json_escaped" else corpus.json_unicode_escape(e)
                        for e in entries]
        else:
            entries = [corpus.file_entry(p, n) for n, (_, p) in enumerate(members)]
            expected = [e.strip("\n") for e in entries]
        path.write_text(corpus.file_text(channel, entries, secret), encoding="utf-8")
        for (i, _), exp in zip(members, expected):
            where[i] = Where("file", f"file:{host}:{path}", exp)
    return where


def plant_everything(home: Path, plants: list[corpus.Plant], host: str) -> dict[int, Where]:
    where = write_claude(home / ".claude" / "projects", plants)
    where |= write_browsers(home, plants)
    where |= write_files(home / "code", plants, host)
    return where


# ---------------------------------------------------------------------- checking


PIECE = 12  # a leaked fragment of 2 * PIECE - 1 characters holds a whole piece of its core


def pieces(core: str) -> list[str]:
    """A core cut into pieces, so that a partial leak (a clipped or half-redacted value) is found."""
    if len(core) <= PIECE:
        return [core]
    return [core[i:i + PIECE] for i in range(0, len(core) - PIECE + 1, PIECE)] + [core[-PIECE:]]


def find_cores(blobs: dict[str, bytes], plants: Iterable[tuple[int, corpus.Plant]]) -> dict[int, list[str]]:
    """Which plants have a piece of a core in which blob: every alphanumeric run of every blob is
    slid over with an 8-byte window looked up among the pieces' first 8 bytes (fast for thousands
    of cores in megabytes of data, where ``piece in blob`` for each would take minutes)."""
    by_key: dict[bytes, list[tuple[int, bytes]]] = defaultdict(list)
    for i, p in plants:
        for core in p.cores:
            for piece in pieces(core):
                by_key[piece[:8].encode()].append((i, piece.encode()))
    found: dict[int, list[str]] = defaultdict(list)
    for name, blob in blobs.items():
        for m in re.finditer(rb"[A-Za-z0-9]{8,}", blob):
            run = m.group()
            for j in range(len(run) - 7):
                for i, core in by_key.get(run[j:j + 8], ()):
                    if run.startswith(core, j) and name not in found[i]:
                        found[i].append(name)
    return {i: names for i, names in found.items() if names}


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def server_items(db_path: Path) -> dict[str, dict[str, Any]]:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return {r["id"]: dict(r) for r in conn.execute("SELECT * FROM items")}
    finally:
        conn.close()


def lookalike_survives(w: Where, items: dict[str, dict[str, Any]], by_uri: dict[str, dict[str, Any]]) -> bool:
    item = by_uri.get(w.locator) if w.source == "browser" else items.get(w.locator)
    if item is None:
        return False
    text = "\n".join(str(item.get(k) or "") for k in ("title", "uri", "content"))
    return w.expected in text


# ---------------------------------------------------------------------- the test


@pytest.fixture
def brain_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """The real brain-api (gunicorn) with the OpenAI embeddings stand-in, whose requests are kept."""
    from tests.conftest import start_api_server, stop_api_server
    from tests.standins.openai_embeddings import EmbeddingsStandIn

    embed = EmbeddingsStandIn(dim=64).start()
    server = start_api_server(tmp_path_factory.mktemp("api-leaks"), {
        "BRAIN_EMBED_PROVIDER": "openai", "OPENAI_API_KEY": embed.expected_key, "BRAIN_EMBED_BASE_URL": embed.url})
    yield server, embed
    stop_api_server(server)
    embed.stop()


def test_no_planted_secret_leaves_the_laptop_and_look_alikes_survive(brain_api, runner, home: Path) -> None:
    server, embed = brain_api
    plants = corpus.plants()
    secrets = [(i, p) for i, p in enumerate(plants) if p.secret]
    lookalikes = [(i, p) for i, p in enumerate(plants) if not p.secret]
    assert len({p.kind for _, p in secrets}) >= 60 and len({p.kind for _, p in lookalikes}) >= 60
    assert all(p.cores for _, p in secrets)  # each secret can be found if it leaks
    where = plant_everything(home, plants, "corpusbox")
    env = {"BRAIN_API_URL": server.url, "BRAIN_COLLECT_FILES_ROOTS": str(home / "code"),
           "BRAIN_COLLECT_HOST": "corpusbox"}

    # 1. no token: everything is collected and waits in the outbox
    first = runner.invoke(main, ["collect", "all"], env=env)
    assert "client.token is not set" in first.output, first.output
    outbox = files_under(config_mod.state_dir())
    assert sum(len(b) for b in outbox.values()) > 100_000

    # 2. with the token: sent into the real brain-api
    second = runner.invoke(main, ["collect", "all"], env={**env, "BRAIN_TOKEN": server.token})
    assert second.exit_code == 0, second.output
    blobs = {**outbox, **{f"outbox after sending: {k}": v for k, v in files_under(config_mod.state_dir()).items()}}
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(server.db_path) + suffix)
        if path.exists():
            blobs[f"server {path.name}"] = path.read_bytes()
    blobs["server log"] = server.log().encode()
    # the transcript archive on the laptop is redacted at rest too (its blobs decompressed)
    for name, data in files_under(config_mod.data_dir() / "claude-archive").items():
        blobs[f"archive {name}"] = gzip.decompress(data) if name.endswith(".gz") else data
    blobs["collector output"] = (first.output + second.output).encode()
    blobs["embedding requests"] = json.dumps(embed.requests).encode()

    leaks = find_cores(blobs, secrets)
    leaked = Counter((plants[i].kind, plants[i].channel) for i in leaks)
    items = server_items(server.db_path)
    by_uri = {it["uri"]: it for it in items.values() if it["source"] == "browser"}
    lost = [(p.kind, p.channel) for i, p in lookalikes if not lookalike_survives(where[i], items, by_uri)]
    report = (f"{len(leaks)} of {len(secrets)} planted secrets leaked ({len({p.kind for _, p in secrets})} kinds); "
              f"{len(lost)} of {len(lookalikes)} look-alikes redacted ({len({p.kind for _, p in lookalikes})} kinds)")
    print(report)
    assert not leaked, f"{report}: {sorted(leaked)[:40]} in {sorted({n for v in leaks.values() for n in v})}"
    assert len(lost) <= MAX_LOOKALIKES_REDACTED * len(lookalikes), f"{report}: {sorted(lost)[:40]}"
    # every collector delivered: the look-alikes above prove each channel was read
    assert {it["source"] for it in items.values()} == {"claude", "browser", "file"}
