"""Claude Code sessions -> one ``claude:<sessionId>`` item per session.

Format: ``../shared/reference/claude-code-logs.md``. The rules that shape this module:

* Every ``projects/`` root is read: ``~/.claude``, each dir of ``CLAUDE_CONFIG_DIR``
  (comma-separated), ``~/.config/claude`` (or ``collect.claude_roots``).
* The project path comes from the entries' ``cwd``: the folder name encoding is lossy.
* Lines are dispatched on ``type``; broken, truncated, non-object and unknown lines are counted
  and skipped, never fatal; invalid UTF-8 and lone surrogates (``"\\ud83d"``, half an emoji)
  are replaced with U+FFFD. Broken and repaired lines are named (file and line) in the run's
  ``dropped``/``repaired``, and a session that fails for any other reason is dropped and named
  while the others are collected. Assistant lines split per content block share ``message.id``
  and are merged back into one message.
* Subagents (inline ``isSidechain`` lines of 1.0.x, ``agent-*.jsonl`` beside the session in
  2.0.x, ``<session>/subagents/`` from 2.1.2) are attached to their parent session, even when
  the parent file is gone (then the item is built from the subagents alone).
* A tool output too large for the transcript (over 50k characters since 2.1.51, 100k before) is
  stored in ``<session>/tool-results/<tool_use_id>.txt`` (``.json`` when the result was content
  blocks) and only a ``<persisted-output>`` preview ("Output too large (…). Full output saved to:
  <path>", then "Preview (first 2KB):") stays inline: the file is read instead of the preview
  (bounded by ``collect.tool_result_chars`` like any result) and archived with the session. The
  preview's shape is as quoted by transcript readers (delexw/claude-code-trace issue #7) and seen
  in published transcripts; Claude Code's own source is not public.
* Harness text is not the user's words: ``isMeta`` user lines and ``<system-reminder>`` blocks
  are left out. A prompt typed while the agent worked is only an ``attachment`` of type
  ``queued_command`` (``origin.kind`` human): it is the user's. Titles: ``custom-title`` >
  ``agent-name`` > ``ai-title`` > ``summary`` > the first prompt; ``pr-link`` records become
  ``meta.pull_requests``. ``user_messages`` counts the main conversation only.
* Files are found and grouped from relative paths only, so the same code rebuilds items from
  the transcript archive (``--from-archive``).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from brain.collect import TITLE_SOURCE_CHARS, Problem, RunStats, expand, prepare, repair_text
from brain.collect.archive import Archive, is_claude_root
from brain.collect.outbox import Queued, Sink, State
from brain.shared import timeutil
from brain.shared.settings import LaptopConfig

KEPT_TYPES = {"user", "assistant", "system", "summary", "ai-title", "custom-title", "agent-name", "pr-link",
              "attachment"}
# Bookkeeping records of newer versions: known, not part of the conversation (names as listed by
# transcript readers that track Claude Code 2.1.x; ``progress`` duplicates subagent messages).
IGNORED_TYPES = {"progress", "file-history-snapshot", "queue-operation", "agent-setting",
                 "permission-mode", "mode", "last-prompt", "worktree-state", "atis-latch", "tag", "agent-color",
                 "bridge-session", "cost-state", "frame-link", "file-history-delta", "teleported-from",
                 "relocated", "ended-by-model", "continued-in", "memory-mode", "isolation-latch", "dev-mods",
                 "history-suppression", "attribution-snapshot", "content-replacement", "api-request",
                 "api-request-shape", "api-request-blob", "fork-context-ref", "observer-ref",
                 "artifact-comment-monitor", "artifact-autoreact-ledger"}
TOOL_RESULT_EXTS = (".txt", ".json")  # .json: a result that was not a string (a list of blocks)
KEY_INPUTS: dict[str, tuple[str, ...]] = {
    "Bash": ("command",), "Read": ("file_path",), "Write": ("file_path",), "Edit": ("file_path",),
    "MultiEdit": ("file_path",), "NotebookEdit": ("notebook_path",), "NotebookRead": ("notebook_path",),
    "Glob": ("pattern", "path"), "Grep": ("pattern", "path", "glob"), "LS": ("path",),
    "WebSearch": ("query",), "WebFetch": ("url", "prompt"), "Task": ("description", "subagent_type", "prompt"),
    "Agent": ("description", "subagent_type", "prompt"), "Skill": ("skill", "command"),
    "BashOutput": ("bash_id",), "KillShell": ("shell_id",), "SlashCommand": ("command",),
}
# meta the collector derives itself (ids, counts, versions): not redacted. ``files`` is: its paths come
# from the session's tool inputs, which are the user's text
PLAIN_META = ("resume", "session_id", "model", "models", "claude_version", "slug", "subagents", "user_messages",
              "tool_calls", "parent_missing", "skipped_lines", "persisted_outputs")
GENERIC_KEYS = ("command", "file_path", "path", "pattern", "query", "url", "description", "prompt")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TAG = re.compile(r"<(command-name|command-args|local-command-stdout|local-command-stderr)>(.*?)</\1>", re.DOTALL)
_REMINDER = re.compile(r"<system-reminder>.*?(?:</system-reminder>|\Z)", re.DOTALL)
_PERSISTED = re.compile(r"<persisted-output>(.*?)(?:</persisted-output>|\Z)", re.DOTALL)
_SAVED_TO = re.compile(r"saved to:?\s*(\S[^\n]*?\.(?:txt|json))\b", re.IGNORECASE)


# ---------------------------------------------------------------------- files


@dataclass
class Source:
    """One raw file (a transcript or a subagent's ``.meta.json``), on disk or in the archive.
    ``rel`` is relative to ``projects/``."""

    rel: str
    read: Callable[[], bytes]
    size: int = 0
    mtime_ns: int = 0
    path: Path | None = None
    agent_type: str = ""


@dataclass
class SessionFiles:
    session_id: str
    main: Source | None = None
    subagents: list[Source] = field(default_factory=list)
    sidecars: list[Source] = field(default_factory=list)
    tool_results: dict[str, Source] = field(default_factory=dict)  # file name -> file

    @property
    def sources(self) -> list[Source]:
        """Every file of the session: what is archived and watched for changes."""
        return ([self.main] if self.main else []) + self.subagents + self.sidecars + \
            [self.tool_results[k] for k in sorted(self.tool_results)]


def claude_roots(cfg: LaptopConfig, env: dict[str, str] | None = None) -> list[Path]:
    """The ``projects/`` folders to read, deduplicated, existing ones only."""
    env = dict(os.environ if env is None else env)
    if cfg.collect.claude_roots:
        bases = expand(cfg.collect.claude_roots)
    else:
        bases = [Path.home() / ".claude"]
        bases += [Path(p.strip()).expanduser() for p in env.get("CLAUDE_CONFIG_DIR", "").split(",") if p.strip()]
        xdg = env.get("XDG_CONFIG_HOME", "")
        bases.append((Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config") / "claude")
    out: list[Path] = []
    seen: set[str] = set()
    for base in bases:
        projects = base if base.name == "projects" else base / "projects"
        key = os.path.realpath(projects)
        if key not in seen and projects.is_dir():
            seen.add(key)
            out.append(projects)
    return out


def _file_source(projects: Path, path: Path) -> Source:
    st = path.stat()
    return Source(path.relative_to(projects).as_posix(), path.read_bytes, st.st_size, st.st_mtime_ns, path)


def list_sources(projects: Path) -> Iterator[Source]:
    """Every transcript under one ``projects/`` folder (sessions, subagents, their sidecars)."""
    for proj in sorted(p for p in projects.iterdir() if p.is_dir()):
        yield from project_sources(projects, proj)


def project_sources(projects: Path, proj: Path) -> Iterator[Source]:
    """Every file of one project folder (``projects/<encoded cwd>/``): its sessions, their
    subagents with sidecars, and their persisted tool outputs."""
    for entry in sorted(proj.iterdir()):
        if entry.is_file() and entry.name.endswith(".jsonl"):
            yield _file_source(projects, entry)
        elif entry.is_dir():
            if (entry / "subagents").is_dir():
                for sub in sorted((entry / "subagents").rglob("agent-*")):
                    if sub.is_file() and sub.name.endswith((".jsonl", ".meta.json")):
                        yield _file_source(projects, sub)
            if (entry / "tool-results").is_dir():
                for out in sorted((entry / "tool-results").iterdir()):
                    if out.is_file() and out.name.endswith(TOOL_RESULT_EXTS):
                        yield _file_source(projects, out)


def _agent_type(sidecar: Source) -> str:
    """``agentType`` from ``agent-<id>.meta.json`` (newer Claude Code versions)."""
    try:
        data = json.loads(sidecar.read())
    except (OSError, ValueError):
        return ""
    return str(data.get("agentType", "")) if isinstance(data, dict) else ""


def _first_session_id(data: bytes) -> str:
    """The ``sessionId`` in a legacy ``agent-*.jsonl`` file: its parent session."""
    for line in data.splitlines()[:50]:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("sessionId"), str):
            return obj["sessionId"]
    return ""


def group_sessions(sources: Iterable[Source]) -> dict[str, SessionFiles]:
    """Group transcript files by the session they belong to."""
    sessions: dict[str, SessionFiles] = {}
    sources = list(sources)
    sidecars = {s.rel: s for s in sources if s.rel.endswith(".meta.json")}
    for src in sources:
        parts = src.rel.split("/")
        name = parts[-1]
        if len(parts) == 4 and parts[2] == "tool-results" and name.endswith(TOOL_RESULT_EXTS):
            sessions.setdefault(parts[1], SessionFiles(parts[1])).tool_results[name] = src
            continue
        if not name.endswith(".jsonl"):
            continue
        if len(parts) == 2 and not name.startswith("agent-"):
            sessions.setdefault(name[: -len(".jsonl")], SessionFiles(name[: -len(".jsonl")])).main = src
        elif len(parts) == 2:
            try:
                parent = _first_session_id(src.read())
            except (OSError, ValueError):
                parent = ""
            parent = parent or "orphan-" + name[len("agent-"): -len(".jsonl")]
            sessions.setdefault(parent, SessionFiles(parent)).subagents.append(src)
        elif len(parts) >= 4 and parts[2] == "subagents" and name.startswith("agent-"):
            files = sessions.setdefault(parts[1], SessionFiles(parts[1]))
            files.subagents.append(src)
            sidecar = sidecars.get(src.rel[: -len(".jsonl")] + ".meta.json")
            if sidecar is not None:
                src.agent_type = _agent_type(sidecar)
                files.sidecars.append(sidecar)
    return sessions


# ---------------------------------------------------------------------- parsing


@dataclass
class LineStats:
    lines: int = 0
    malformed: int = 0
    truncated: int = 0
    non_object: int = 0
    crlf: int = 0
    unknown_type: int = 0
    repaired: int = 0
    dropped_lines: list[Problem] = field(default_factory=list)
    repaired_lines: list[Problem] = field(default_factory=list)

    def skipped(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items()
                if k not in ("lines", "crlf", "repaired", "dropped_lines", "repaired_lines") and v}


def parse_jsonl(data: bytes, stats: LineStats, name: str = "") -> list[dict[str, Any]]:
    """Decode the kept entries of a transcript (``name``: its path, for the problems it names).
    Never raises on bad lines.

    A CRLF line is valid JSON and is kept (dropping it would lose a message); it is counted.
    An unparseable last line without a newline is the tail still being written: ``truncated``.
    Invalid UTF-8 and lone surrogates are replaced with U+FFFD: the line is kept, and named.
    """
    out: list[dict[str, Any]] = []
    lines = data.split(b"\n")
    for n, raw in enumerate(lines):
        if not raw.strip():
            continue
        stats.lines += 1
        where = f"{name} line {n + 1}"
        if raw.endswith(b"\r"):
            stats.crlf += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
            stats.repaired += 1
            stats.repaired_lines.append((where, "invalid UTF-8 replaced with U+FFFD"))
        try:
            obj = json.loads(text)
        except ValueError:
            if n == len(lines) - 1:
                stats.truncated += 1
            else:
                stats.malformed += 1
                stats.dropped_lines.append((where, "not valid JSON"))
            continue
        if not isinstance(obj, dict):
            stats.non_object += 1
            stats.dropped_lines.append((where, "not a JSON object"))
            continue
        if "\\ud" in text or "\\uD" in text:  # a surrogate escape: maybe half of a pair
            obj, surrogates = repair_text(obj)
            if surrogates:
                stats.repaired += 1
                stats.repaired_lines.append((where, f"{surrogates} lone surrogates replaced with U+FFFD"))
        kind = obj.get("type")
        if kind in KEPT_TYPES:
            out.append(obj)
        elif kind not in IGNORED_TYPES:
            stats.unknown_type += 1
    return out


_CUT_AFTER = frozenset(" \t\r\n\"'`,;<>()[]{}")
CUT_LOOKBACK = 256


def _clip(text: str, limit: int) -> str:
    """The text, cut to ``limit`` characters at a boundary: a cut through the middle of a token
    would leave a piece of a secret that no detector recognises any more."""
    text = text.strip()
    if limit and len(text) > limit:
        cut = limit
        for i in range(limit, max(0, limit - CUT_LOOKBACK), -1):
            if text[i - 1] in _CUT_AFTER or text[i] in _CUT_AFTER:
                cut = i
                break
        return text[:cut].rstrip() + f" [... {len(text) - cut} more chars]"
    return text


PROMPT_TITLE_CHARS = 120  # a title made of the first prompt
WRITTEN_TITLE_CHARS = 200  # a title the agent wrote (custom-title, ai-title, summary)


def _block_text(content: Any) -> str:
    """Text of a tool_result ``content``: a string or a list of text/image blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for b in content:
            if isinstance(b, dict) and b.get("type") == "text":
                parts.append(str(b.get("text", "")))
            elif isinstance(b, dict) and b.get("type") == "image":
                parts.append("[image]")
        return "\n".join(parts)
    return "" if content is None else str(content)


@dataclass
class Renderer:
    """Turns entries into readable text: ``user:``/``assistant:`` turns, tool calls, results."""

    include_thinking: bool = False
    tool_result_chars: int = 2000
    tool_input_chars: int = 500

    def tool_call(self, name: str, inp: Any) -> str:
        if not isinstance(inp, dict):
            return f"tool {name}"
        keys = KEY_INPUTS.get(name) or tuple(k for k in GENERIC_KEYS if k in inp)[:1]
        shown = [(k, inp[k]) for k in keys if inp.get(k) not in (None, "")]
        if name == "TodoWrite" and isinstance(inp.get("todos"), list):
            todos = [str(t.get("content", "")) for t in inp["todos"] if isinstance(t, dict)]
            return f"tool TodoWrite: {_clip('; '.join(todos), self.tool_input_chars)}"
        if not shown:
            text = json.dumps(inp, ensure_ascii=False, sort_keys=True)
            return f"tool {name}: {_clip(text, self.tool_input_chars)}"
        first, rest = shown[0][1], shown[1:]
        text = str(first) + "".join(f" {k}={json.dumps(v, ensure_ascii=False)}" for k, v in rest)
        return f"tool {name}: {_clip(text, self.tool_input_chars)}"

    def user_text(self, text: str) -> str | None:
        """A typed prompt, a slash-command echo or local command output; None for harness noise
        (caveats, ``<system-reminder>`` blocks the harness adds to the user's turn)."""
        if "<system-reminder>" in text:
            text = _REMINDER.sub("", text)
        if "<local-command-caveat>" in text or text.startswith("Caveat: The messages below were generated"):
            return None
        tags = {m.group(1): m.group(2).strip() for m in _TAG.finditer(text)}
        if "command-name" in tags:
            return f"user: {tags['command-name']} {tags.get('command-args', '')}".rstrip()
        if "local-command-stdout" in tags or "local-command-stderr" in tags:
            out = tags.get("local-command-stdout", "") or tags.get("local-command-stderr", "")
            out = _ANSI.sub("", out)
            return f"output: {_clip(out, self.tool_result_chars)}" if out else None
        text = text.strip()
        return f"user: {text}" if text else None

    def render(self, entries: list[dict[str, Any]], outputs: dict[str, Source] | None = None) -> list[str]:
        """Lines of one conversation (main session or one subagent), in file order; ``outputs``:
        the session's ``tool-results/`` files by name, read where a result was persisted."""
        turns: list[list[str]] = []
        by_message: dict[str, tuple[list[str], set[str]]] = {}
        tool_names: dict[str, str] = {}
        for e in entries:
            kind = e.get("type")
            msg = got if isinstance(got := e.get("message"), dict) else {}
            if kind == "assistant":
                mid = msg.get("id") or e.get("uuid") or str(id(e))
                if mid not in by_message:
                    by_message[mid] = ([], set())
                    turns.append(by_message[mid][0])
                lines, seen = by_message[mid]
                for block in got if isinstance(got := msg.get("content"), list) else []:
                    key = json.dumps(block, sort_keys=True, default=str)
                    if key in seen:
                        continue
                    seen.add(key)
                    line = self._assistant_block(block, tool_names)
                    if line:
                        lines.append(line)
            elif kind == "user" and not e.get("isMeta"):
                turns.append(self._user_lines(e, msg, tool_names, outputs or {}))
            elif kind == "attachment":
                line = self.queued_prompt(e.get("attachment"))
                if line:
                    turns.append([line])
            elif kind == "system":
                turns.append(self._system_lines(e))
        return [line for t in turns for line in t]

    def _assistant_block(self, block: Any, tool_names: dict[str, str]) -> str | None:
        if not isinstance(block, dict):
            return None
        btype = block.get("type")
        if btype == "text":
            text = str(block.get("text", "")).strip()
            return f"assistant: {text}" if text else None
        if btype == "thinking":
            text = str(block.get("thinking", "")).strip()
            return f"assistant (thinking): {text}" if self.include_thinking and text else None
        if btype == "tool_use":
            name = str(block.get("name", "?"))
            if block.get("id"):
                tool_names[str(block["id"])] = name
            return self.tool_call(name, block.get("input"))
        return None  # redacted_thinking, server tool blocks, images: nothing readable

    def _user_lines(self, e: dict[str, Any], msg: dict[str, Any], tool_names: dict[str, str],
                    outputs: dict[str, Source]) -> list[str]:
        content = msg.get("content")
        if e.get("isCompactSummary") and isinstance(content, str):
            return [f"[summary of the conversation so far] {_clip(content, 4 * self.tool_result_chars)}"]
        if isinstance(content, str):
            line = self.user_text(content)
            return [line] if line else []
        out = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            btype = block.get("type")
            if btype == "text":
                line = self.user_text(str(block.get("text", "")))
                if line:
                    out.append(line)
            elif btype == "image":
                out.append("user: [image]")
            elif btype == "tool_result":
                name = tool_names.get(str(block.get("tool_use_id")), "tool")
                flag = ", error" if block.get("is_error") else ""
                text = _block_text(block.get("content"))
                if "<persisted-output>" in text:
                    text = self.persisted(text, str(block.get("tool_use_id") or ""), outputs)
                if "<system-reminder>" in text:
                    text = _REMINDER.sub("", text)
                text = _ANSI.sub("", text)
                out.append(f"result ({name}{flag}): {_clip(text, self.tool_result_chars)}")
        return out

    def persisted(self, text: str, tool_use_id: str, outputs: dict[str, Source]) -> str:
        """The whole output a ``<persisted-output>`` preview stands for, read from the session's
        ``tool-results/`` file (named in the preview, else ``<tool_use_id>.txt``); the preview
        itself, without its wrapper, when that file is gone. Only as much as the result limit
        keeps is decoded: the file can be many megabytes."""
        m = _PERSISTED.search(text)
        body = m.group(1) if m else text
        names = []
        saved = _SAVED_TO.search(body)
        if saved:
            names.append(re.split(r"[\\/]", saved.group(1).strip())[-1])
        if tool_use_id:
            names.append(f"{tool_use_id}.txt")
        for name in names:
            src = outputs.get(name)
            if src is None:
                continue
            try:
                data = src.read()
            except (OSError, ValueError):  # ValueError: an archived copy failed its checksum
                continue
            return self._persisted_text(name, data)
        lines = [ln for ln in body.strip().splitlines()
                 if not ln.startswith(("Output too large", "Full output saved to", "Output has been saved to"))
                 and not re.match(r"Preview \(.*\):?$", ln)]
        return "\n".join(lines).strip()

    def _persisted_text(self, name: str, data: bytes) -> str:
        """A ``tool-results/`` file as text. A ``.json`` file holds a result that was not a
        string (content blocks, written whole by Claude Code): its text blocks are shown. A
        ``.txt`` file is decoded only as far as the result limit keeps (4 bytes a character at
        most): such a file can be many megabytes."""
        if name.endswith(".json"):
            try:
                return _block_text(json.loads(data.decode("utf-8", "replace")))
            except ValueError:
                pass  # not JSON after all: shown as text
        if self.tool_result_chars:
            data = data[: 4 * self.tool_result_chars + CUT_LOOKBACK]
        return data.decode("utf-8", "replace")  # UTF-8 surrogate bytes are invalid: U+FFFD too

    def queued_prompt(self, attachment: Any) -> str | None:
        """A prompt the user typed while the agent was busy: Claude Code 2.1.x records it as an
        ``attachment`` of type ``queued_command`` (``commandMode: "prompt"``, ``origin.kind:
        "human"``, ``prompt`` a string or blocks) and writes no ``user`` record for it. Task
        notifications, other sessions' messages and harness attachments are not the user's."""
        if not isinstance(attachment, dict) or attachment.get("type") != "queued_command":
            return None
        origin = attachment.get("origin")
        kind = origin.get("kind", "human") if isinstance(origin, dict) else "human"
        if attachment.get("isMeta") or attachment.get("commandMode", "prompt") != "prompt" or kind != "human":
            return None
        prompt = attachment.get("prompt")
        return self.user_text(prompt if isinstance(prompt, str) else _block_text(prompt))

    def _system_lines(self, e: dict[str, Any]) -> list[str]:
        sub = e.get("subtype")
        if sub == "local_command" and isinstance(e.get("content"), str):
            line = self.user_text(e["content"])
            return [line] if line else []
        if sub == "compact_boundary":
            return ["--- context compacted ---"]
        if sub == "api_error" or e.get("level") == "error":
            text = got if isinstance(got := e.get("content"), str) else json.dumps(e.get("error", ""))
            return [f"error: {_clip(str(text), 500)}"]
        return []


# ---------------------------------------------------------------------- sessions -> items


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return timeutil.parse(value)
    except ValueError:
        return None


def _message(e: dict[str, Any]) -> dict[str, Any]:
    """The record's ``message``, or ``{}`` when a damaged record has something else there."""
    msg = e.get("message")
    return msg if isinstance(msg, dict) else {}


def _first_prompt(entries: list[dict[str, Any]], renderer: Renderer) -> str:
    """The first prompt the user typed, whole (``prepare`` makes it one line after redaction)."""
    for e in entries:
        if e.get("type") != "user" or e.get("isMeta") or e.get("isCompactSummary"):
            continue
        content = _message(e).get("content")
        texts = [content] if isinstance(content, str) else [
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        ] if isinstance(content, list) else []
        for text in texts:
            line = renderer.user_text(str(text))
            if line and line.startswith("user: ") and not line.startswith("user: [Request interrupted"):
                return _clip(line[len("user: "):], TITLE_SOURCE_CHARS)
    return ""


TITLE_KINDS = (("custom-title", "customTitle"), ("agent-name", "agentName"), ("ai-title", "aiTitle"),
               ("summary", "summary"))


def _title(entries: list[dict[str, Any]], renderer: Renderer) -> tuple[str, int]:
    """custom-title > agent-name > ai-title > summary line > first user prompt (last of each
    kind wins: Claude Code writes them again on resume and after a rename), whole, and the
    length ``prepare`` cuts it to once it is redacted."""
    found: dict[str, str] = {}
    for e in entries:
        for kind, key in TITLE_KINDS:
            if e.get("type") == kind and isinstance(e.get(key), str) and e[key].strip():
                found[kind] = e[key].strip()
    for kind, _ in TITLE_KINDS:
        if kind in found:
            return _clip(found[kind], TITLE_SOURCE_CHARS), WRITTEN_TITLE_CHARS
    return _first_prompt(entries, renderer), PROMPT_TITLE_CHARS


def _first_timestamp(entries: list[dict[str, Any]]) -> str:
    """For ordering subagents: ISO timestamps with ``Z`` sort as text; none sorts last."""
    return min((e["timestamp"] for e in entries if isinstance(e.get("timestamp"), str)), default="~")


@dataclass
class SessionDoc:
    """A parsed session, before redaction."""

    item: dict[str, Any]
    stats: LineStats
    ended_at: datetime | None
    title_chars: int = WRITTEN_TITLE_CHARS  # the title's length once redacted (``prepare``)


Agent = tuple[str, str, list[dict[str, Any]]]  # (agent id, agent type, entries)


def _read_session(files: SessionFiles, stats: LineStats) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                                   list[Agent]]:
    """(all entries of the main file, its main-chain entries, subagents ordered by start time).

    Subagents are the inline ``isSidechain`` lines of old versions (grouped by ``agentId``) and
    the separate ``agent-*.jsonl`` files.
    """
    main_entries = parse_jsonl(files.main.read(), stats, files.main.rel) if files.main else []
    main = [e for e in main_entries if not e.get("isSidechain")]
    inline: dict[str, list[dict[str, Any]]] = {}
    for e in main_entries:
        if e.get("isSidechain"):
            inline.setdefault(str(e.get("agentId") or "sidechain"), []).append(e)
    agents: list[Agent] = [(name, "", ents) for name, ents in inline.items()]
    for src in files.subagents:
        name = src.rel.rsplit("/", 1)[-1][len("agent-"): -len(".jsonl")]
        agents.append((name, src.agent_type, parse_jsonl(src.read(), stats, src.rel)))
    agents.sort(key=lambda a: _first_timestamp(a[2]))
    return main_entries, main, agents


def _strings(entries: list[dict[str, Any]], key: str) -> list[str]:
    return [e[key] for e in entries if isinstance(e.get(key), str) and e[key]]


def _session_meta(files: SessionFiles, meta_src: list[dict[str, Any]], everything: list[dict[str, Any]],
                  agents: list[Agent], lines: list[str], stats: LineStats, prompts: int) -> dict[str, Any]:
    """Where the session ran and how to reopen it (``resume``), models, counts, skipped lines.
    ``prompts``: the user's messages in the main conversation (a subagent's prompt is written by
    the parent agent, not the user); tool calls are counted everywhere."""
    sid = files.session_id
    cwds, branches = _strings(meta_src, "cwd"), _strings(meta_src, "gitBranch")
    versions, slugs = _strings(meta_src, "version"), _strings(meta_src, "slug")
    models = Counter(m for m in (_message(e).get("model") for e in everything
                                 if e.get("type") == "assistant") if isinstance(m, str) and m != "<synthetic>")
    meta: dict[str, Any] = {
        "resume": f"claude --resume {sid}", "session_id": sid, "cwd": cwds[0] if cwds else None,
        "git_branch": branches[-1] if branches else None, "model": models.most_common(1)[0][0] if models else None,
        "models": sorted(models), "claude_version": versions[-1] if versions else None,
        "slug": slugs[-1] if slugs else None, "subagents": [a[0] for a in agents],
        "user_messages": prompts,
        "tool_calls": sum(1 for line in lines if line.startswith("tool ")),
        "files": [s.rel for s in files.sources if s.rel.endswith(".jsonl")],
        "cwds": sorted(set(cwds)) if len(set(cwds)) > 1 else None,
        "pull_requests": list(dict.fromkeys(e["prUrl"] for e in everything if e.get("type") == "pr-link"
                                            and isinstance(e.get("prUrl"), str))),
        "persisted_outputs": len(files.tool_results) or None,
        "parent_missing": True if files.main is None else None,
        "skipped_lines": stats.skipped() or None,
    }
    return {k: v for k, v in meta.items() if v not in (None, [], {})}


def build_session(files: SessionFiles, renderer: Renderer) -> SessionDoc | None:
    """Parse all files of one session into an API item (None if nothing readable)."""
    stats = LineStats()
    main_entries, main, agents = _read_session(files, stats)
    everything = main + [e for _, _, ents in agents for e in ents]
    if not any(e.get("type") in ("user", "assistant") for e in everything):
        return None
    lines = renderer.render(main, files.tool_results)
    prompts = sum(1 for line in lines if line.startswith("user: "))
    for name, agent_type, ents in agents:
        lines.append(f"\n=== subagent {name} ({agent_type}) ===" if agent_type else f"\n=== subagent {name} ===")
        lines.extend(renderer.render(ents, files.tool_results))
    times = sorted(t for t in (_ts(e.get("timestamp")) for e in everything) if t)
    meta = _session_meta(files, main or everything, everything, agents, lines, stats,
                         prompts if files.main else sum(1 for line in lines if line.startswith("user: ")))
    sid = files.session_id
    title, title_chars = _title(main_entries, renderer)
    if not title:
        title, title_chars = _title(everything, renderer)
    title = title or meta.get("slug") or sid
    item = {
        "id": f"claude:{sid}", "source": "claude", "title": title, "uri": f"claude://session/{sid}",
        "project": meta.get("cwd"),
        "created_at": timeutil.fmt(times[0]) if times else None,
        "updated_at": timeutil.fmt(times[-1]) if times else None,
        "content": "\n".join(lines).strip(), "meta": meta,
    }
    return SessionDoc(item, stats, times[-1] if times else None, title_chars)


# ---------------------------------------------------------------------- the collector


def _renderer(cfg: LaptopConfig) -> Renderer:
    return Renderer(cfg.collect.include_thinking, cfg.collect.tool_result_chars, cfg.collect.tool_input_chars)


def _changed(state: State, files: SessionFiles) -> bool:
    for src in files.sources:
        row = state.conn.execute("SELECT size, mtime_ns FROM claude_files WHERE path = ?",
                                 (str(src.path),)).fetchone()
        if row is None or (row[0], row[1]) != (src.size, src.mtime_ns):
            return True
    return False


def _remember(state: State, files: SessionFiles) -> None:
    state.conn.executemany(
        "INSERT INTO claude_files(path, session_id, size, mtime_ns) VALUES (?, ?, ?, ?) ON CONFLICT(path) DO UPDATE "
        "SET session_id = excluded.session_id, size = excluded.size, mtime_ns = excluded.mtime_ns",
        [(str(s.path), files.session_id, s.size, s.mtime_ns) for s in files.sources])


def _emit(doc: SessionDoc, sink: Sink, stats: RunStats, redactor: Any, cfg: LaptopConfig) -> None:
    item, counts = prepare(doc.item, redactor, cfg.collect.max_item_bytes, PLAIN_META, stats, doc.title_chars)
    if sink.upsert(Queued(item, counts)):
        stats.queued += 1
        stats.redacted.update(counts)
    else:
        stats.unchanged += 1


def _process(sessions: dict[str, SessionFiles], sink: Sink, stats: RunStats, cfg: LaptopConfig, redactor: Any,
             since: datetime | None, on_built: Callable[[SessionFiles], None]) -> None:
    renderer = _renderer(cfg)
    for sid in sorted(sessions):
        files = sessions[sid]
        stats.scanned += 1
        try:
            doc = build_session(files, renderer)
        except (OSError, ValueError) as exc:  # ValueError: an archived copy failed its checksum
            stats.errors.append(f"claude session {sid}: cannot read: {exc}")
            continue
        except Exception as exc:  # one strange session must not stop the others
            stats.dropped.append((f"claude session {sid}", f"cannot be read: {type(exc).__name__}"))
            continue
        if doc is None:
            stats.skipped["empty"] += 1
            on_built(files)
            continue
        for k, v in doc.stats.skipped().items():
            stats.skipped[f"{k} lines"] += v
        stats.repaired.extend(doc.stats.repaired_lines)
        stats.dropped.extend(doc.stats.dropped_lines)
        if since and doc.ended_at and doc.ended_at < since:
            stats.skipped["before --since"] += 1
            on_built(files)
            continue
        try:
            _emit(doc, sink, stats, redactor, cfg)
        except (UnicodeError, ValueError, TypeError) as exc:
            stats.dropped.append((f"claude session {sid}", f"cannot be queued: {type(exc).__name__}"))
            continue
        on_built(files)


def collect(cfg: LaptopConfig, state: State, sink: Sink, redactor: Any, archive: Archive | None,
            since: datetime | None = None) -> RunStats:
    """Read every live ``projects/`` root; archive changed raw files; queue changed sessions."""
    stats = RunStats("claude")
    roots = claude_roots(cfg)
    if not roots:
        stats.warnings.append("claude: no Claude Code projects folder found (~/.claude/projects, "
                              "$CLAUDE_CONFIG_DIR, ~/.config/claude/projects)")
    for projects in roots:
        try:
            sessions = group_sessions(list_sources(projects))
        except OSError as exc:
            stats.errors.append(f"claude: cannot list {projects}: {exc}")
            continue
        todo = {sid: f for sid, f in sessions.items() if _changed(state, f)}
        stats.unchanged += len(sessions) - len(todo)
        _process(todo, sink, stats, cfg, redactor, since, _on_built(projects, archive, state, stats))
    return stats


def _on_built(projects: Path, archive: Archive | None, state: State,
              stats: RunStats) -> Callable[[SessionFiles], None]:
    """What follows a session's item: archive its files, remember their size and mtime, commit."""
    def built(files: SessionFiles) -> None:
        if archive is not None:
            for src in files.sources:
                try:
                    archive.add(projects, src.rel, src.read())
                except OSError as exc:
                    stats.errors.append(f"claude archive: {src.rel}: {exc}")
        _remember(state, files)
        state.checkpoint()
    return built


def _root_of(cfg: LaptopConfig, proj: Path) -> Path:
    """The ``projects/`` root a project folder belongs to, spelled as a full run spells it (the
    file index and the archive key files by that path), else the folder's parent."""
    real = os.path.realpath(proj.parent)
    return next((root for root in claude_roots(cfg) if os.path.realpath(root) == real), proj.parent)


def collect_transcript(cfg: LaptopConfig, state: State, sink: Sink, redactor: Any, archive: Archive | None,
                       transcript: Path) -> RunStats:
    """One session, named by its transcript (``projects/<encoded cwd>/<sessionId>.jsonl``, the
    ``transcript_path`` a Claude Code hook is given), collected as a full run collects it.

    Why not a full run: a hook wants this session searchable now, and reading every project is
    what cron is for. Only the session's project folder is listed (its subagents, sidecars and
    tool outputs, legacy ``agent-*.jsonl`` beside it), and the session is queued, archived and
    remembered in the same file index, so the next full run finds it unchanged."""
    stats = RunStats("claude (one session)")
    transcript = Path(transcript).expanduser()
    if transcript.suffix != ".jsonl" or transcript.name.startswith("agent-"):
        stats.errors.append(f"claude: {transcript} is not a session transcript (<sessionId>.jsonl)")
        return stats
    if not transcript.is_file():
        stats.warnings.append(f"claude: no transcript at {transcript} (nothing written yet?)")
        return stats
    projects = _root_of(cfg, transcript.parent)
    try:
        sessions = group_sessions(project_sources(projects, transcript.parent))
    except OSError as exc:
        stats.errors.append(f"claude: cannot list {transcript.parent}: {exc}")
        return stats
    files = sessions.get(transcript.name[: -len(".jsonl")])
    if files is None or files.main is None:
        stats.warnings.append(f"claude: no transcript at {transcript} (nothing written yet?)")
        return stats
    if not _changed(state, files):
        stats.unchanged += 1
        return stats
    _process({files.session_id: files}, sink, stats, cfg, redactor, None, _on_built(projects, archive, state, stats))
    return stats


def collect_from_archive(cfg: LaptopConfig, state: State, sink: Sink, redactor: Any, archive: Archive,
                         since: datetime | None = None) -> RunStats:
    """Rebuild every session from the archived raw files alone (checksums verified)."""
    stats = RunStats("claude (archive)")
    by_root: dict[str, list[Source]] = {}
    for root_key, rel in archive.files():
        if not is_claude_root(root_key):  # another agent's file (brain collect agents reads those)
            continue
        by_root.setdefault(root_key, []).append(
            Source(rel, partial(archive.read, root_key, rel)))
    for root_key in sorted(by_root):
        _process(group_sessions(by_root[root_key]), sink, stats, cfg, redactor, since,
                 lambda files: state.checkpoint())
    return stats
