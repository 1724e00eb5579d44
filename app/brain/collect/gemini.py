"""Gemini CLI sessions -> one ``agent:gemini:<sessionId>`` item per session.

Format, as read in google-gemini/gemini-cli (``packages/core/src/services/chatRecordingTypes.ts``
for the records, ``chatRecordingService.ts`` ``loadConversationRecord`` for how they are
replayed, ``config/storage.ts`` and ``config/projectRegistry.ts`` for the folders,
``utils/paths.ts`` for ``GEMINI_CLI_HOME``, ``utils/sessionUtils.ts`` for harness prompts):

* Files: ``$GEMINI_CLI_HOME`` (default ``~``) ``/.gemini/tmp/<projectId>/chats/
  session-<YYYY-MM-DDTHH-MM>-<sid8>.jsonl`` (older: one ``.json`` document); a sub-agent's file
  is ``chats/<parentSessionId>/<sessionId>.jsonl`` and is shown inside its parent's item.
  ``<projectId>`` is a slug mapped to the project root by ``~/.gemini/projects.json``
  (``{"projects": {root: slug}}``) and by the ``.project_root`` file in its folder; older
  folders are ``sha256(root)``. No cwd is stored in the records.
* Records, replayed in order: the metadata record ``{sessionId, projectHash, startTime,
  lastUpdated, kind}``; messages ``{id, timestamp, type: user|gemini|info|error|warning,
  content, toolCalls[{name, args, result, status}], thoughts, model}``, a message written again
  with the same ``id`` replacing the earlier copy in its place; ``{$set: {...}}`` metadata
  patches (``messages`` in it is a checkpoint: the list replaces everything); ``{$rewindTo:
  id}`` drops that message and every later one (all of them when the id is unknown).
* User prompts starting with ``<session_context>`` or ``<hook_context>`` are harness text.
* Reopened with ``gemini --resume <sessionId>`` from the project folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from brain.collect.agents import Bad, Lines, Session, Unit, archive_files, decode, load_json, read_jsonl, text_of, when
from brain.shared.settings import LaptopConfig

NAME = "gemini"
HARNESS_PREFIXES = ("<session_context>", "<hook_context>")


def gemini_dir(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ if env is None else env)
    return (Path(env["GEMINI_CLI_HOME"]).expanduser() if env.get("GEMINI_CLI_HOME") else Path.home()) / ".gemini"


def roots(cfg: LaptopConfig, env: dict[str, str] | None = None) -> list[Path]:
    tmp = gemini_dir(env) / "tmp"
    return [tmp] if tmp.is_dir() else []


def project_roots(tmp: Path) -> dict[str, str]:
    """Project folder id (slug, or legacy sha256 of the root) -> project root."""
    out: dict[str, str] = {}
    try:
        data = json.loads((tmp.parent / "projects.json").read_text("utf-8", "replace"))
        projects = data.get("projects") if isinstance(data, dict) else None
        for root, slug in (projects or {}).items():
            if isinstance(root, str) and isinstance(slug, str):
                out[slug] = root
                out[hashlib.sha256(root.encode()).hexdigest()] = root
    except (OSError, ValueError):
        pass
    return out


def units(cfg: LaptopConfig, found: list[Path]) -> Iterator[Unit]:
    for tmp in found:
        names = project_roots(tmp)
        for chats in sorted(tmp.glob("*/chats")):
            pid = chats.parent.name
            root = names.get(pid) or _marker(chats.parent)
            for path in sorted(p for p in chats.iterdir() if p.is_file() and p.suffix in (".jsonl", ".json")):
                subs = sorted((chats / _sid_of(path)).glob("*.jsonl")) if (chats / _sid_of(path)).is_dir() else []
                paths = [path, *subs]
                rel = path.relative_to(tmp).as_posix()
                yield Unit(rel, paths, partial(parse, paths, tmp, root, cfg), archive_files(tmp, paths))


def _marker(folder: Path) -> str | None:
    try:
        return (folder / ".project_root").read_text("utf-8", "replace").strip() or None
    except OSError:
        return None


def _sid_of(path: Path) -> str:
    """The full session id, which names a session's sub-agent folder, from its first record."""
    try:
        with path.open("rb") as fh:
            first = json.loads(fh.readline() or b"{}")
    except (OSError, ValueError):
        return "-"
    sid = first.get("sessionId") if isinstance(first, dict) else None
    return sid if isinstance(sid, str) and sid and "/" not in sid and sid not in (".", "..") else "-"


class Conversation:
    """The replay of one file: metadata and the messages that survive rewinds and rewrites."""

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}
        self.messages: dict[str, dict[str, Any]] = {}  # insertion order = conversation order

    def apply(self, rec: dict[str, Any]) -> bool:
        """Apply one record; False when it is none of the known kinds."""
        if isinstance(rec.get("$rewindTo"), str):
            ids = list(self.messages)
            cut = ids.index(rec["$rewindTo"]) if rec["$rewindTo"] in ids else 0
            for mid in ids[cut:]:
                del self.messages[mid]
        elif isinstance(rec.get("id"), str):
            self.messages[rec["id"]] = rec  # a rewrite keeps its place
        elif isinstance(rec.get("$set"), dict):
            self._metadata(rec["$set"])
        elif isinstance(rec.get("sessionId"), str):
            self._metadata(rec)
        else:
            return False
        return True

    def _metadata(self, values: dict[str, Any]) -> None:
        if isinstance(values.get("messages"), list):  # a checkpoint, or a whole legacy document
            self.messages = {m["id"]: m for m in values["messages"] if isinstance(m, dict) and isinstance(m.get("id"), str)}
        self.meta.update({k: v for k, v in values.items() if k != "messages"})


def read_file(path: Path, rel: str, bad: Bad) -> Conversation:
    conv = Conversation()
    data = path.read_bytes()
    if path.suffix == ".json":  # the older format: one ConversationRecord document
        doc = load_json(decode(data, rel, bad), rel, bad)
        if isinstance(doc, dict):
            conv.apply(doc)
        return conv
    for rec in read_jsonl(data, rel, bad):
        if not conv.apply(rec):
            bad.skipped += 1
    return conv


def _result_text(call: dict[str, Any]) -> tuple[str, bool]:
    """A tool call's output: ``functionResponse.response.output`` / ``.error`` parts, else the
    display text; failed when the status is not success."""
    texts, error = [], call.get("status") not in (None, "success")
    result = call.get("result")
    for part in result if isinstance(result, list) else [result]:
        if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
            resp = part["functionResponse"].get("response")
            if isinstance(resp, dict):
                for key in ("output", "error", "llmContent"):
                    if isinstance(resp.get(key), str):
                        texts.append(resp[key])
                        error = error or key == "error"
        elif isinstance(part, dict | str):
            texts.append(text_of(part))
    text = "\n".join(t for t in texts if t)
    if not text and isinstance(call.get("resultDisplay"), str):
        text = call["resultDisplay"]
    return text, error


def render(conv: Conversation, lines: Lines, models: list[str]) -> list[Any]:
    """Append one conversation's messages; returns their timestamps."""
    times = []
    for msg in conv.messages.values():
        times.append(when(msg.get("timestamp")))
        kind, text = msg.get("type"), text_of(msg.get("content"))
        if kind == "user" and not text.lstrip().startswith(HARNESS_PREFIXES):
            lines.user(text)
        elif kind == "gemini":
            if isinstance(msg.get("model"), str):
                models.append(msg["model"])
            for th in msg.get("thoughts") or []:
                if isinstance(th, dict):
                    lines.thought(": ".join(str(th[k]) for k in ("subject", "description") if th.get(k)))
            lines.assistant(text)
            for call in msg.get("toolCalls") or []:
                if isinstance(call, dict):
                    name = str(call.get("name") or "tool")
                    lines.tool(name, call.get("args"))
                    out, failed = _result_text(call)
                    lines.result(name, out, failed)
        elif kind == "error":
            lines.error(text)
    return times


def parse(paths: list[Path], tmp: Path, project: str | None, cfg: LaptopConfig) -> Session | None:
    bad = Bad()
    lines = Lines(cfg)
    main = read_file(paths[0], paths[0].relative_to(tmp).as_posix(), bad)
    sid = main.meta.get("sessionId")
    if not isinstance(sid, str) or not sid:
        return None
    models: list[str] = []
    times = render(main, lines, models)
    for sub in paths[1:]:
        conv = read_file(sub, sub.relative_to(tmp).as_posix(), bad)
        lines.note(f"\n=== subagent {conv.meta.get('sessionId') or sub.stem} ===")
        times += render(conv, lines, models)
    times += [when(main.meta.get("startTime")), when(main.meta.get("lastUpdated"))]
    title = got if isinstance(got := main.meta.get("summary"), str) else ""
    return Session(
        NAME, sid, lines, [p.relative_to(tmp).as_posix() for p in paths], title=title, project=project,
        times=[t for t in times if t], bad=bad,
        resume=f"cd {shlex.quote(project)} && gemini --resume {sid}" if project else f"gemini --resume {sid}",
        meta={"model": models[-1] if models else None,
              "models": sorted(set(models)) if len(set(models)) > 1 else None,
              "project_id": paths[0].parent.parent.name,
              "directories": main.meta.get("directories") if isinstance(main.meta.get("directories"), list)
              else None})
