"""Cursor chats -> one ``agent:cursor:<composerId>`` item per chat.

Cursor is closed source; its state databases are read as the open readers document them and as
they agree with each other (michaeldhood/chatrxiv ``docs/cursor/storage-reference.md``,
jverre/agents-for-cursor's tool-bubble notes, thomas-pedersen/cursor-chat-browser
``src/app/api/workspaces/[id]/tabs/route.ts``, somogyijanos/cursor-chat-export ``src/export.py``):

* Files: ``User/globalStorage/state.vscdb`` and ``User/workspaceStorage/<id>/state.vscdb`` (next
  to ``workspace.json``: ``{"folder": "file:///..."}``) under ``$XDG_CONFIG_HOME/Cursor`` (default
  ``~/.config/Cursor``) on Linux and ``~/Library/Application Support/Cursor`` on macOS. VS Code's
  storage: SQLite tables ``ItemTable`` and ``cursorDiskKV``, both ``(key TEXT UNIQUE, value
  BLOB)`` holding JSON, read from a private copy.
* Chats (composer, agent) in ``cursorDiskKV``: ``composerData:<composerId>`` ``{composerId, name,
  createdAt, lastUpdatedAt (Unix ms), modelConfig.modelName, fullConversationHeadersOnly:
  [{bubbleId, type}]}``, and each message at ``bubbleId:<composerId>:<bubbleId>``: ``{type: 1 user |
  2 assistant, text (else rawText), createdAt (ISO), thinking.text, modelInfo.modelName,
  toolFormerData{name, rawArgs and params (JSON strings), result (a JSON string), status:
  loading|completed|cancelled|error, userDecision}, workspaceProjectDir, workspaceUris}``. A
  header whose message is gone (Cursor prunes them) is skipped. Older chats hold their messages
  inline: ``conversation: [message...]`` (or ``conversationMap`` by bubble id).
* The oldest chat panel: ``ItemTable`` ``workbench.panel.aichat.view.aichat.chatdata`` in a
  workspace's database, ``{tabs: [{tabId, chatTitle, lastSendTime, bubbles: [{type: user|ai,
  text, rawText}]}]}``: one ``agent:cursor:<tabId>`` item per tab, in that workspace's folder.
* Project: the messages' ``workspaceProjectDir`` (newer builds), else their first
  ``workspaceUris``, else the folder of the workspace whose ``ItemTable``
  ``composer.composerData`` (``allComposers[].composerId``) lists the chat.
* Incremental: a database is copied and read only when it (or its ``-wal``) changed; a chat is
  read again when its ``composerData`` value or its number of messages changed (its ``status``,
  ``lastUpdatedAt`` and headers change with every turn; a message's own row is not watched).
* No resume command: a chat is reopened from Cursor's chat history in its project.
* Archived as one JSON-lines export per chat (the rows read for it), without ``richText``: the
  Lexical editor's copy of ``text`` (a message's, the composer's draft), which the collector
  never reads. It holds each line of the text as a JSON node of its own, and there a secret
  that needs its lines around it (an INI section's password of words) is not found, so
  redacted at rest it would keep what ``text`` loses.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from brain.collect.agents import (
    Bad,
    Lines,
    Session,
    Unit,
    archive_rows,
    as_text,
    db_snapshot,
    decode,
    json_or_text,
    row_json,
    tables,
    when,
)
from brain.shared.settings import LaptopConfig

NAME = "cursor"
CHATDATA = "workbench.panel.aichat.view.aichat.chatdata"
COMPOSERS = "composer.composerData"
GLOBAL_DB = "globalStorage/state.vscdb"
ARG_KEYS = ("command", "target_file", "file_path", "target_directory", "relativeWorkspacePath", "query", "pattern",
            "glob_pattern", "search_term", "url", "path")
RESULT_KEYS = ("output", "contents", "content", "error", "message")


def _config_home(env: dict[str, str]) -> Path:
    xdg = env.get("XDG_CONFIG_HOME", "")
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"


def roots(cfg: LaptopConfig, env: dict[str, str] | None = None) -> list[Path]:
    """Cursor's ``User`` folders (Linux, macOS) that hold a state database."""
    env = dict(os.environ if env is None else env)
    found = []
    for user in (_config_home(env) / "Cursor" / "User", Path.home() / "Library/Application Support/Cursor/User"):
        if (user / GLOBAL_DB).is_file() or any(user.glob("workspaceStorage/*/state.vscdb")):
            found.append(user)
    return found


def _wal(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


def units(cfg: LaptopConfig, found: list[Path]) -> Iterator[Unit]:
    """The global database (chats), then each workspace's (the oldest chat panel's tabs)."""
    for user in found:
        workspaces = Workspaces(user)
        db = user / GLOBAL_DB
        if db.is_file():
            yield Unit(GLOBAL_DB, [db, _wal(db)], None, expand=partial(composer_units, db, user, workspaces, cfg))
        for wdb in sorted(user.glob("workspaceStorage/*/state.vscdb")):
            rel = wdb.relative_to(user).as_posix()
            yield Unit(rel, [wdb, _wal(wdb)], None, expand=partial(tab_units, wdb, user, workspaces, cfg))


# ---------------------------------------------------------------------- workspaces and projects


def folder_of(workspace: Path) -> str | None:
    """The folder a workspace opened (``workspace.json``): a path for ``file://``, else the URI."""
    try:
        data = json.loads((workspace / "workspace.json").read_text("utf-8", "replace"))
    except (OSError, ValueError):
        return None
    uri = data.get("folder") or data.get("workspace") if isinstance(data, dict) else None
    return uri_path(uri) if isinstance(uri, str) else None


def uri_path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


@dataclass
class Workspaces:
    """Which workspace lists a chat (``composer.composerData``), read only for a chat whose own
    messages name no folder, newest workspaces first, each database once per run."""

    user: Path
    read: dict[Path, set[str]] = field(default_factory=dict)

    def folder(self, composer_id: str, created: datetime | None) -> str | None:
        dbs = sorted(self.user.glob("workspaceStorage/*/state.vscdb"), key=_mtime, reverse=True)
        for db in dbs:
            if created and _mtime(db) < created.timestamp() - 86400:
                break  # a workspace lists a chat from the day it was opened in it
            if db not in self.read:
                self.read[db] = _listed(db)
            if composer_id in self.read[db]:
                return folder_of(db.parent)
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _listed(db: Path) -> set[str]:
    try:
        with db_snapshot(db) as conn:
            value = _item(conn, COMPOSERS)
    except (OSError, sqlite3.Error):
        return set()
    composers = value.get("allComposers") if isinstance(value, dict) else None
    return {c["composerId"] for c in composers or [] if isinstance(c, dict) and isinstance(c.get("composerId"), str)}


def _item(conn: sqlite3.Connection, key: str) -> Any:
    """An ``ItemTable`` value, parsed (None when missing or broken)."""
    if "ItemTable" not in tables(conn):
        return None
    row = conn.execute("SELECT value FROM ItemTable WHERE key = ?", (key,)).fetchone()
    if row is None or row[0] is None:
        return None
    try:
        return json.loads(decode(row[0], key, Bad()) if isinstance(row[0], bytes) else row[0])
    except ValueError:
        return None


# ---------------------------------------------------------------------- chats (cursorDiskKV)


def composer_units(db: Path, user: Path, workspaces: Workspaces, cfg: LaptopConfig) -> Iterator[Unit]:
    """One unit per ``composerData:<id>`` row, read from one private copy of the database."""
    with db_snapshot(db) as conn:
        if "cursorDiskKV" not in tables(conn):
            raise sqlite3.DatabaseError("no cursorDiskKV table: not a Cursor state database")
        counts = _bubble_counts(conn)
        rows = conn.execute("SELECT key, value FROM cursorDiskKV WHERE key >= 'composerData:' AND key < 'composerData;'")
        for key, value in rows.fetchall():
            cid = as_text(key).removeprefix("composerData:")
            digest = hashlib.sha256(value if isinstance(value, bytes) else str(value).encode()).hexdigest()[:16]
            chat = Chat(conn, user, cid, value, workspaces, cfg)
            yield Unit(f"{GLOBAL_DB} composerData:{cid}", [], chat.build,
                       archive_rows(user, f"{GLOBAL_DB}/{cid}.jsonl", chat.records), stamp=f"{digest}:{counts.get(cid, 0)}")


def _bubble_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Messages per chat, from the keys alone (their values can be megabytes each)."""
    out: dict[str, int] = {}
    for (key,) in conn.execute("SELECT key FROM cursorDiskKV WHERE key >= 'bubbleId:' AND key < 'bubbleId;'"):
        cid = as_text(key).split(":")[1] if as_text(key).count(":") >= 2 else ""
        out[cid] = out.get(cid, 0) + 1
    return out


class Chat:
    """One chat: its ``composerData`` and its messages, parsed (``build``) and exported (``records``)."""

    def __init__(self, conn: sqlite3.Connection, user: Path, cid: str, value: Any, workspaces: Workspaces,
                 cfg: LaptopConfig):
        self.conn, self.user, self.cid, self.value, self.workspaces, self.cfg = conn, user, cid, value, workspaces, cfg
        self.rows: list[dict[str, Any]] = []

    def _bubble(self, bid: str, data: dict[str, Any], bad: Bad) -> dict[str, Any] | None:
        """A message by id: its own row, else the chat's ``conversationMap`` (None when pruned)."""
        key = f"bubbleId:{self.cid}:{bid}"
        row = self.conn.execute("SELECT value FROM cursorDiskKV WHERE key = ?", (key,)).fetchone()
        if row is not None:
            bubble = row_json(row[0], f"{GLOBAL_DB} {key}", bad)
            self.rows.append({"key": key, "value": _archived(bubble) if bubble is not None else as_text(row[0])})
            return bubble
        inline = got if isinstance(got := data.get("conversationMap"), dict) else {}
        if isinstance(inline.get(bid), dict):
            return inline[bid]
        bad.skipped += 1  # Cursor pruned it: not a broken record
        return None

    def messages(self, data: dict[str, Any], bad: Bad) -> list[dict[str, Any]]:
        headers = data.get("fullConversationHeadersOnly")
        if isinstance(headers, list) and headers:
            out = []
            for h in headers:
                bid = h.get("bubbleId") if isinstance(h, dict) else None
                bubble = self._bubble(bid, data, bad) if isinstance(bid, str) else None
                if bubble is not None:
                    out.append(bubble)
            return out
        inline = data.get("conversation")
        return [b for b in inline if isinstance(b, dict)] if isinstance(inline, list) else []

    def build(self) -> Session | None:
        bad = Bad()
        self.rows = []
        data = row_json(self.value, f"{GLOBAL_DB} composerData:{self.cid}", bad)
        self.rows.append({"key": f"composerData:{self.cid}",
                          "value": _archived(data) if data is not None else as_text(self.value)})
        if data is None:
            return Session(NAME, self.cid, Lines(self.cfg), [GLOBAL_DB], bad=bad)  # empty, its problem named
        bubbles = self.messages(data, bad)
        lines = Lines(self.cfg)
        models: list[str] = []
        times = [when(data.get("createdAt")), when(data.get("lastUpdatedAt"))]
        times += [render_bubble(b, lines, models) for b in bubbles]
        created = when(data.get("createdAt"))
        project = _project(bubbles) or self.workspaces.folder(self.cid, created)
        config = got if isinstance(got := data.get("modelConfig"), dict) else {}
        if not models and isinstance(config.get("modelName"), str) and config["modelName"] != "default":
            models.append(config["modelName"])
        return Session(NAME, self.cid, lines, [GLOBAL_DB], title=str(data.get("name") or ""), project=project,
                       times=[t for t in times if t], bad=bad,
                       meta={"model": models[-1] if models else None,
                             "models": sorted(set(models)) if len(set(models)) > 1 else None,
                             "mode": data.get("unifiedMode") or data.get("forceMode") or None})

    def records(self) -> list[dict[str, Any]]:
        return self.rows


def _archived(value: Any) -> Any:
    """A row's value as the archive keeps it: without ``richText``, also in the messages an
    older chat holds inline (see the module's docstring)."""
    if isinstance(value, dict):
        return {k: _archived(v) for k, v in value.items() if k != "richText"}
    if isinstance(value, list):
        return [_archived(v) for v in value]
    return value


def _project(bubbles: list[dict[str, Any]]) -> str | None:
    """The folder the chat's messages name: ``workspaceProjectDir``, else ``workspaceUris``."""
    for b in bubbles:
        if isinstance(b.get("workspaceProjectDir"), str) and b["workspaceProjectDir"]:
            return b["workspaceProjectDir"]
    for b in bubbles:
        uris = b.get("workspaceUris")
        if isinstance(uris, list) and uris and isinstance(uris[0], str):
            return uri_path(uris[0])
    return None


def render_bubble(bubble: dict[str, Any], lines: Lines, models: list[str]) -> datetime | None:
    """One message (a composer bubble, or an old panel's ``user``/``ai`` bubble); returns its time."""
    kind = bubble.get("type")
    said = bubble.get("text") if isinstance(bubble.get("text"), str) and bubble["text"].strip() else bubble.get("rawText")
    said = said if isinstance(said, str) else ""
    if kind in (1, "user"):
        lines.user(said)
    elif kind in (2, "ai"):
        model = bubble.get("modelInfo", {}).get("modelName") if isinstance(bubble.get("modelInfo"), dict) else None
        if isinstance(model, str) and model:
            models.append(model)
        thinking = bubble.get("thinking")
        if isinstance(thinking, dict) and isinstance(thinking.get("text"), str):
            lines.thought(thinking["text"])
        lines.assistant(said)
        if isinstance(bubble.get("toolFormerData"), dict):
            _tool(bubble["toolFormerData"], lines)
    stamp = bubble.get("createdAt", bubble.get("timestamp"))
    return when(stamp)


def _tool(tool: dict[str, Any], lines: Lines) -> None:
    """A tool call (``toolFormerData``) and its result; a bubble with no tool name is not a call."""
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        return
    args = json_or_text(tool.get("rawArgs")) or json_or_text(tool.get("params"))
    if isinstance(args, dict):
        shown = next((args[k] for k in ARG_KEYS if isinstance(args.get(k), str) and args[k]), None)
        args = shown if shown is not None else args
    lines.tool(name, args)
    result = json_or_text(tool.get("result"))
    failed = tool.get("status") in ("error", "cancelled") or tool.get("userDecision") == "rejected" or \
        (isinstance(result, dict) and result.get("rejected") is True)
    if result is None and not failed:
        return
    if isinstance(result, dict):
        text = next((result[k] for k in RESULT_KEYS if isinstance(result.get(k), str) and result[k]), None)
        result = text if text is not None else json.dumps(result, ensure_ascii=False, sort_keys=True)
    elif result is not None and not isinstance(result, str):
        result = json.dumps(result, ensure_ascii=False)
    if not result and tool.get("userDecision") == "rejected":
        result = "rejected by the user"
    lines.result(name, result or str(tool.get("status") or ""), error=failed)


# ---------------------------------------------------------------------- the oldest chat panel (ItemTable)


def tab_units(db: Path, user: Path, workspaces: Workspaces, cfg: LaptopConfig) -> Iterator[Unit]:
    """One unit per tab of a workspace's ``aichat`` panel (most workspaces have none); the
    workspace's chat list is learnt on the way, so no chat needs its database copied again."""
    with db_snapshot(db) as conn:
        listed = _item(conn, COMPOSERS)
        workspaces.read[db] = {c["composerId"] for c in (listed or {}).get("allComposers") or []
                               if isinstance(c, dict) and isinstance(c.get("composerId"), str)} \
            if isinstance(listed, dict) else set()
        bad = Bad()
        raw = conn.execute("SELECT value FROM ItemTable WHERE key = ?", (CHATDATA,)).fetchone() \
            if "ItemTable" in tables(conn) else None
        where = f"{db.relative_to(user).as_posix()} {CHATDATA}"
        chat = row_json(raw[0], where, bad) if raw is not None else None
    tabs = chat.get("tabs") if isinstance(chat, dict) else None
    folder = folder_of(db.parent)
    rel = db.relative_to(user).as_posix()
    if chat is None and bad.dropped:  # the panel's value is broken: name it once
        yield Unit(where, [], lambda: Session(NAME, "-", Lines(cfg), [rel], bad=bad), stamp=str(len(bad.dropped)))
    for tab in tabs if isinstance(tabs, list) else []:
        if not isinstance(tab, dict) or not isinstance(tab.get("tabId"), str):
            continue
        digest = hashlib.sha256(json.dumps(tab, sort_keys=True, default=str).encode("utf-8", "replace")).hexdigest()[:16]
        yield Unit(f"{rel} tab {tab['tabId']}", [], partial(tab_session, tab, folder, rel, cfg),
                   archive_rows(user, f"{rel}/{tab['tabId']}.jsonl", partial(_tab_rows, tab)),
                   stamp=digest)


def _tab_rows(tab: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows one chat panel tab is archived as."""
    return [{"key": CHATDATA, "tab": tab}]


def tab_session(tab: dict[str, Any], folder: str | None, rel: str, cfg: LaptopConfig) -> Session:
    lines = Lines(cfg)
    models: list[str] = []
    times = [render_bubble(b, lines, models) for b in tab.get("bubbles") or [] if isinstance(b, dict)]
    times.append(when(tab.get("lastSendTime")))
    for b in tab.get("bubbles") or []:
        if isinstance(b, dict) and isinstance(b.get("modelType"), str):
            models.append(b["modelType"])
    title = got if isinstance(got := tab.get("chatTitle"), str) else ""
    return Session(NAME, tab["tabId"], lines, [rel], title=title.split("\n")[0], project=folder,
                   times=[t for t in times if t], meta={"model": models[-1] if models else None, "panel": "aichat"})

