"""Issue 12: planted fake secrets never leave the laptop; look-alikes do, unchanged.

Every secret kind and every look-alike of ``secret_corpus`` is planted in every channel: Claude
transcripts (user text, tool input, tool output, also URL-encoded, JSON-escaped and HTML), the
other coding agents' sessions in their own formats (Codex CLI rollouts, Gemini CLI chats, Cursor's
``state.vscdb``, Aider's chat history, opencode's database: user text, assistant text, a tool
call's input, a tool's output), a Chrome ``History`` and a Firefox ``places.sqlite`` built from
the real schemas (URL path, query, fragment, title, URL-encoded, double-encoded, search terms,
HTML-escaped titles, descriptions) and files (code, shell, Markdown, JSON, YAML, HTML, INI, .env,
TOML, Kubernetes Secrets, .netrc, ~/.aws/credentials). The real collectors run through the real
CLI, first without a token (the items wait in the outbox, which is grepped), then into a real
brain-api on loopback, whose database file, WAL, log and embedding requests are grepped too, and
so is the transcript archive the collectors keep on the laptop (Claude's and every agent's).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shlex
import sqlite3
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brain.cli.main import main
from brain.collect import aider
from brain.shared import config as config_mod

from . import agent_homes as ah
from . import secret_corpus as corpus
from .fakehome import FIREFOX_SCHEMA, UrlRow, assistant, jsonl, unix_us, user, write_chrome_history, write_profiles_ini

pytestmark = pytest.mark.e2e

CWD = "/home/dev/corpus"
MAX_LOOKALIKES_REDACTED = 0.05


@dataclass
class Where:
    """Where a look-alike must be found after collection: the item and the text in it."""

    source: str  # claude / agent / browser / file
    locator: str  # claude, agent and file: the item id; browser: the planted URL
    expected: str | tuple[str, ...]  # several: each must be in the item


def _sid(name: str) -> str:
    return str(uuid.UUID(hashlib.sha256(name.encode()).hexdigest()[:32]))


# ---------------------------------------------------------------------- planting


def write_claude(projects: Path, plants: list[corpus.Plant]) -> dict[int, Where]:
    """One session per kind (secrets and look-alikes apart), one exchange per channel; the first
    is the user's, so it is the session's title too."""
    where: dict[int, Where] = {}
    sessions: dict[str, list[dict[str, Any]]] = {}
    for i, p in enumerate(plants):
        if not p.channel.startswith("claude_"):
            continue
        sid = _sid(f"{p.kind}-{p.secret}")
        lines = sessions.setdefault(sid, [])
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


# The other coding agents: one session per kind (secrets and look-alikes apart) in each agent,
# holding the kind's four plants in the order of corpus.AGENT_ROLES (the user's plant first, so
# it is also the item's title where the agent has none of its own).
AGENT_CWD = "/home/dev/corpus"
LIST_COMMAND = "cat /tmp/notes.txt"


def agent_sessions(plants: list[corpus.Plant], agent: str) -> list[tuple[str, list[tuple[int, corpus.Plant]]]]:
    """(session name, its plants by role) for one agent."""
    sessions: dict[str, list[tuple[int, corpus.Plant]]] = {}
    for i, p in enumerate(plants):
        if p.channel.startswith(f"{agent}_"):
            sessions.setdefault(f"{agent}-{p.kind}-{p.secret}", []).append((i, p))
    return list(sessions.items())


def shown(agent: str, p: corpus.Plant) -> tuple[str, ...]:
    """What an agent's item shows of a plant (``Lines`` in brain.collect.agents), for look-alikes."""
    role, text = corpus.agent_role(p), corpus.agent_text(p)
    if agent == "aider" and role in ("user", "tool_input"):  # each line of a prompt after "#### ", read back stripped
        text = "\n".join(line.strip() for line in text.split("\n"))
    if role == "user":
        return ("user: " + text.strip(),)
    if role == "assistant":
        return ("assistant: " + text.strip(),)
    if role == "tool_input":
        shell = {"codex": ("shell", shlex.join(["bash", "-lc", text])), "gemini": ("run_shell_command", text),
                 "cursor": ("run_terminal_cmd", text), "opencode": ("bash", text), "aider": ("run", text)}
        name, command = shell[agent]
        return (f"tool {name}: {command.strip()}",)
    if agent == "aider":  # Aider quotes only a message's first line ("> "): the others read as text
        first, *rest = text.strip().split("\n")
        return (f"result (aider): {first}", *(line for line in rest if line))
    name = {"codex": "shell", "gemini": "read_file", "cursor": "read_file", "opencode": "read"}[agent]
    return (f"result ({name}): {text.strip()}",)


def _ts(n: int, day: str = "2026-05-02", hour: int = 8) -> str:
    return f"{day}T{hour + n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z"


def write_codex(home: Path, plants: list[corpus.Plant]) -> dict[int, Where]:
    """Rollouts as Codex CLI writes them: the user's words as a message and a ``user_message``
    event, the answer likewise, a ``shell`` ``function_call`` whose ``arguments`` is a JSON string
    (so a secret in a command is JSON-escaped inside a JSON string) and its output, a JSON string
    too."""
    where: dict[int, Where] = {}
    for name, members in agent_sessions(plants, "codex"):
        sid = _sid(name)
        lines = [ah.cx(_ts(0), "session_meta", {"id": sid, "timestamp": _ts(0), "cwd": AGENT_CWD, "originator":
                                                 "codex_cli_rs", "cli_version": "0.61.0", "source": "cli"}),
                 ah.cx(_ts(1), "turn_context", {"cwd": AGENT_CWD, "approval_policy": "on-request",
                                                "model": "gpt-5-codex"})]
        for n, (i, p) in enumerate(members, start=1):
            ts, role, text = _ts(10 * n), corpus.agent_role(p), corpus.agent_text(p)
            if role in ("user", "assistant"):
                event = "user_message" if role == "user" else "agent_message"
                lines += [ah.cx_msg(ts, role, text), ah.cx(ts, "event_msg", {"type": event, "message": text})]
            else:
                command = text if role == "tool_input" else LIST_COMMAND
                output = "exit 0\n" if role == "tool_input" else text
                lines += [ah.cx(ts, "response_item", {
                              "type": "function_call", "name": "shell", "call_id": f"call_{n}",
                              "arguments": json.dumps({"command": ["bash", "-lc", command], "workdir": AGENT_CWD})}),
                          ah.cx(ts, "response_item", {
                              "type": "function_call_output", "call_id": f"call_{n}",
                              "output": json.dumps({"output": output, "metadata": {"exit_code": 0,
                                                                                   "duration_seconds": 0.1}})})]
            where[i] = Where("agent", f"agent:codex:{sid}", shown("codex", p))
        ah.write_lines(ah.codex_path(home, sid), lines)
    return where


def write_gemini(home: Path, plants: list[corpus.Plant]) -> dict[int, Where]:
    """Chats as Gemini CLI records them: messages, tool calls with their ``args`` and their
    ``functionResponse``, the project named in ``projects.json``."""
    where: dict[int, Where] = {}
    gem = home / ".gemini"
    gem.mkdir(parents=True, exist_ok=True)
    (gem / "projects.json").write_text(json.dumps({"projects": {AGENT_CWD: "corpus"}}, indent=2))
    for name, members in agent_sessions(plants, "gemini"):
        sid = _sid(name)
        records: list[dict[str, Any]] = [{"sessionId": sid, "projectHash": "corpus", "startTime": _ts(0, "2026-05-04"),
                                          "lastUpdated": _ts(60, "2026-05-04"), "kind": "main"}]
        for n, (i, p) in enumerate(members, start=1):
            ts, role, text = _ts(10 * n, "2026-05-04"), corpus.agent_role(p), corpus.agent_text(p)
            if role == "user":
                records.append(ah.gm(f"m{n}", ts, "user", [{"text": text}]))
            elif role == "assistant":
                records.append(ah.gm(f"m{n}", ts, "gemini", text, model="gemini-2.5-pro"))
            else:
                tool, args, out = ("run_shell_command", {"command": text, "description": "Write the notes"}, "exit 0") \
                    if role == "tool_input" else ("read_file", {"absolute_path": "/tmp/notes.txt"}, text)
                call = {"id": f"{tool}-{n}", "name": tool, "args": args, "status": "success", "timestamp": ts,
                        "result": [{"functionResponse": {"id": f"{tool}-{n}", "name": tool,
                                                         "response": {"output": out}}}]}
                records.append(ah.gm(f"m{n}", ts, "gemini", "", model="gemini-2.5-pro", toolCalls=[call]))
            where[i] = Where("agent", f"agent:gemini:{sid}", shown("gemini", p))
        ah.write_lines(gem / "tmp" / "corpus" / "chats" / f"session-2026-05-04T10-00-{sid[:8]}.jsonl", records)
    return where


def write_cursor(home: Path, plants: list[corpus.Plant]) -> dict[int, Where]:
    """Chats in Cursor's global ``state.vscdb``: a ``composerData`` row per chat, a ``bubbleId``
    row per message (a prompt also as the editor's ``richText``), tool calls with
    ``rawArgs``/``params``/``result`` as JSON strings."""
    where: dict[int, Where] = {}
    user_dir = ah.cursor_user(home)
    (user_dir / "globalStorage").mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(user_dir / "globalStorage" / "state.vscdb")
    conn.executescript(ah.VSCDB_SCHEMA)
    put = "INSERT INTO cursorDiskKV VALUES (?, ?)"
    for c, (name, members) in enumerate(agent_sessions(plants, "cursor")):
        cid = _sid(name)
        bubbles = []
        for n, (i, p) in enumerate(members, start=1):
            at, role, text = _ts(10 * n, "2026-05-06"), corpus.agent_role(p), corpus.agent_text(p)
            if role == "user":
                bubbles.append(ah.bubble(f"b{n}", 1, text, at, workspaceProjectDir=AGENT_CWD,
                                         workspaceUris=[f"file://{AGENT_CWD}"]) | {"richText": ah.lexical(text)})
            elif role == "assistant":
                bubbles.append(ah.bubble(f"b{n}", 2, text, at, modelInfo={"modelName": "claude-4.5-sonnet"}))
            elif role == "tool_input":
                bubbles.append(ah.tool_bubble(f"b{n}", at, "run_terminal_cmd", {"command": text, "is_background": False},
                                              {"output": "exit 0", "exitCodeV2": 0, "rejected": False}))
            else:
                bubbles.append(ah.tool_bubble(f"b{n}", at, "read_file", {"target_file": "/tmp/notes.txt"},
                                              {"contents": text, "totalLinesInFile": text.count("\n") + 1}))
            where[i] = Where("agent", f"agent:cursor:{cid}", shown("cursor", p))
        composer = {"_v": 10, "composerId": cid, "createdAt": 1778058000000 + c,
                    "lastUpdatedAt": 1778058060000 + c, "status": "completed", "unifiedMode": "agent",
                    "fullConversationHeadersOnly": [{"bubbleId": b["bubbleId"], "type": b["type"]} for b in bubbles],
                    "conversationMap": {}}
        if c % 2:  # Cursor names a chat after a while; until then the first prompt is its title
            composer["name"] = f"Corpus chat {c}"
        conn.execute(put, (f"composerData:{cid}", json.dumps(composer)))
        for b in bubbles:
            conn.execute(put, (f"bubbleId:{cid}:{b['bubbleId']}", json.dumps(b)))
    conn.commit()
    conn.close()
    return where


def _aider_prompt(text: str) -> str:
    """A prompt as Aider's ``InputOutput.user_input`` appends it: each line after ``#### ``."""
    return "\n#### " + "  \n#### ".join(text.split("\n")) + "  \n"


def write_aider(root: Path, plants: list[corpus.Plant]) -> dict[int, Where]:
    """One chat history per repository (secrets and look-alikes apart), a chat session per kind,
    written as Aider's ``io.py`` appends: prompts after ``#### ``, replies as they are, a command
    (``/run``) as a prompt, a command's output (``/git show``) after ``> `` on its first line."""
    where: dict[int, Where] = {}
    files: dict[Path, list[str]] = defaultdict(list)
    for s, (_name, members) in enumerate(agent_sessions(plants, "aider")):
        secret = members[0][1].secret
        path = root / ("secrets" if secret else "lookalikes") / aider.FILE
        start = f"2026-05-05 {10 + s // 60:02d}:{s % 60:02d}:00"
        item_id = f"agent:aider:{aider.file_key(path)}:{start.replace('-', '').replace(':', '').replace(' ', 'T')}"
        chunks = [f"\n# aider chat started at {start}\n\n> /home/dev/.local/bin/aider --model sonnet  \n"]
        for i, p in members:
            role, text = corpus.agent_role(p), corpus.agent_text(p)
            if role == "user":
                chunks.append(_aider_prompt(text))
            elif role == "assistant":
                chunks.append("\n" + text.strip() + "\n\n")
            elif role == "tool_input":
                chunks.append(_aider_prompt("/run " + text))
                chunks.append("> Add 0.1k tokens of command output to the chat? (Y)es/(N)o [Yes]: n  \n")
            else:
                chunks.append(_aider_prompt("/git show HEAD:notes.txt"))
                chunks.append("> " + text.strip() + "  \n")
            where[i] = Where("agent", item_id, shown("aider", p))
        files[path].append("".join(chunks))
    for path, chats in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(chats), encoding="utf-8")
    return where


def write_opencode(home: Path, plants: list[corpus.Plant]) -> dict[int, Where]:
    """Sessions in opencode's database: a user message with a text part, an assistant message with
    a text part and two tool parts (``state.input``, ``state.output``), placeholder titles (so the
    first prompt is the item's title)."""
    where: dict[int, Where] = {}
    data = home / ".local" / "share" / "opencode"
    data.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data / "opencode.db")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(ah.OPENCODE_SCHEMA)
    conn.execute("INSERT INTO project VALUES (?, ?, 'git', NULL, ?, ?, NULL, '[]')",
                 (ah.OC_PROJECT, AGENT_CWD, ah.MS, ah.MS))
    for s, (name, members) in enumerate(agent_sessions(plants, "opencode")):
        sid = "ses_" + hashlib.sha256(name.encode()).hexdigest()[:26]
        t = ah.MS + 10_000 * s
        conn.execute("INSERT INTO session (id, project_id, parent_id, slug, directory, title, version, time_created, "
                     "time_updated) VALUES (?, ?, NULL, ?, ?, 'New session - 2026-05-05T16:53:20.000Z', '1.2.6', ?, ?)",
                     (sid, ah.OC_PROJECT, f"corpus-{s}", AGENT_CWD, t, t + 5000))
        ask, reply = f"msg_{s:04d}a", f"msg_{s:04d}b"
        user_parts, reply_parts = [], []
        for n, (i, p) in enumerate(members, start=1):
            role, text = corpus.agent_role(p), corpus.agent_text(p)
            pid = f"prt_{s:04d}_{n:02d}"
            if role == "user":
                user_parts.append(ah.oc_part(pid, ask, sid, "text", text=text))
            elif role == "assistant":
                reply_parts.append(ah.oc_part(pid, reply, sid, "text", text=text))
            elif role == "tool_input":
                reply_parts.append(ah.oc_tool(pid, reply, sid, "bash", {"command": text, "description":
                                                                      "Write the notes"}, "completed", t + 2000,
                                              output="exit 0"))
            else:
                reply_parts.append(ah.oc_tool(pid, reply, sid, "read", {"filePath": "/tmp/notes.txt"}, "completed",
                                              t + 3000, output=text))
            where[i] = Where("agent", f"agent:opencode:{sid}", shown("opencode", p))
        ah.insert_messages(conn, sid, [(ah.oc_user(ask, sid, t + 1000), user_parts),
                                       (ah.oc_assistant(reply, sid, t + 1500, ask), reply_parts)])
    conn.commit()
    conn.close()
    return where


def plant_everything(home: Path, plants: list[corpus.Plant], host: str) -> dict[int, Where]:
    where = write_claude(home / ".claude" / "projects", plants)
    where |= write_codex(home, plants)
    where |= write_gemini(home, plants)
    where |= write_cursor(home, plants)
    where |= write_aider(home / "aider-repos", plants)
    where |= write_opencode(home, plants)
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
                for i, want in by_key.get(run[j:j + 8], ()):
                    if run.startswith(want, j) and name not in found[i]:
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
    return all(e in text for e in ((w.expected,) if isinstance(w.expected, str) else w.expected))


def source_of(p: corpus.Plant) -> str:
    """Which collector a plant is read by: claude, browser, file or the agent's name."""
    head = p.channel.split("_", 1)[0]
    return {"chrome": "browser", "firefox": "browser"}.get(head, head)


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
           "BRAIN_COLLECT_AIDER_ROOTS": str(home / "aider-repos"), "BRAIN_COLLECT_HOST": "corpusbox"}

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
    # the transcript archive on the laptop is redacted at rest too (its blobs decompressed): Claude's
    # transcripts and, under agents/<agent>/, every other agent's files and database exports
    archive = files_under(config_mod.data_dir() / "claude-archive")
    for name, data in archive.items():
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
    per_source = Counter(source_of(p) for _, p in secrets), Counter(source_of(p) for _, p in lookalikes)
    leaked_by, lost_by = Counter(source_of(plants[i]) for i in leaks), Counter(c.split("_", 1)[0] for _, c in lost)
    lost_by = Counter({{"chrome": "browser", "firefox": "browser"}.get(k, k): v for k, v in lost_by.items()})
    print(report)
    for source in sorted(per_source[0] | per_source[1]):
        print(f"  {source}: {leaked_by[source]} of {per_source[0][source]} secrets leaked, "
              f"{lost_by[source]} of {per_source[1][source]} look-alikes redacted")
    assert not leaked, f"{report}: {sorted(leaked)[:40]} in {sorted({n for v in leaks.values() for n in v})[:20]}"
    assert len(lost) <= MAX_LOOKALIKES_REDACTED * len(lookalikes), f"{report}: {sorted(lost)[:40]}"
    # each agent by itself too: its look-alikes survive in its own items
    for agent in corpus.AGENTS:
        assert lost_by[agent] <= MAX_LOOKALIKES_REDACTED * per_source[1][agent], f"{agent}: {sorted(lost)[:40]}"
    # every collector delivered (the look-alikes above prove each channel was read), every agent
    # has items of its own and its own archive
    assert {it["source"] for it in items.values()} == {"claude", "agent", "browser", "file"}
    assert {it["id"].split(":")[1] for it in items.values() if it["source"] == "agent"} == set(corpus.AGENTS)
    for agent in corpus.AGENTS:
        assert any(f"/agents/{agent}/" in name for name in archive), f"nothing of {agent} archived"
