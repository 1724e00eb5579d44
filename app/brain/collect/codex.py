"""Codex CLI sessions -> one ``agent:codex:<session id>`` item per rollout file.

Format, as read in openai/codex (``codex-rs/history/src/lib.rs`` and ``rollout_payload.rs`` for
the line envelope and ``CompactedItem``; ``codex-rs/protocol/src/models.rs`` for
``ResponseItem``; ``protocol.rs`` for ``SessionMeta``, ``UserMessageEvent``; ``core/src/git_info.rs``
for ``GitInfo``):

* Files: ``$CODEX_HOME`` (default ``~/.codex``) ``/sessions/YYYY/MM/DD/rollout-<ts>-<uuid>.jsonl``.
  Resuming appends to the same file; a sub-agent or a fork gets a file of its own.
* Lines: ``{timestamp, ordinal?, type, payload}``. ``session_meta`` (the first line: ``id``,
  ``forked_from_id``, ``cwd``, ``cli_version``, ``git{commit_hash, branch, repository_url}``; a
  fork copies its parent's lines after its own, so only the first counts), ``turn_context``
  (``cwd``, ``model``; the cwd can change), ``response_item`` (``message`` with
  ``input_text``/``output_text`` parts, ``reasoning`` with ``summary[].text``,
  ``function_call`` whose ``arguments`` is a JSON *string*, ``custom_tool_call`` (``input``),
  ``local_shell_call`` (``action.command``), ``web_search_call`` (``action.query``), and
  ``*_output`` joined to their call by ``call_id``), ``event_msg`` (``user_message``,
  ``agent_message``, ``token_count`` ...), ``compacted`` (``message``: the summary;
  ``replacement_history`` repeats earlier items and is not shown again). Other line types
  (``world_state``, ``token_usage_record`` ...) are bookkeeping.
* The user's words appear twice: as a role=user ``message`` (next to harness messages such as
  ``<environment_context>`` and AGENTS.md instructions) and as the ``user_message`` event. The
  events are shown; the ``message`` items only in a file that has no such event (old versions).
  Likewise the assistant: ``message`` items, ``agent_message`` events only when there are none.
* Reopened with ``codex resume <id>``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from brain.collect.agents import Bad, Lines, Session, Unit, archive_files, json_or_text, read_jsonl, text_of, when
from brain.shared.settings import LaptopConfig

NAME = "codex"
_UUID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.jsonl$", re.I)
HARNESS_PREFIXES = ("<environment_context>", "<user_instructions>", "# AGENTS.md instructions", "<INSTRUCTIONS>",
                    "<permissions instructions>", "<user_shell_command>", "<turn_aborted>")
KNOWN_TYPES = {"session_meta", "response_item", "event_msg", "turn_context", "compacted", "world_state",
               "token_usage_record", "inter_agent_communication", "inter_agent_communication_metadata",
               "security_risk_score", "retained_context", "realtime_item"}


def roots(cfg: LaptopConfig, env: dict[str, str] | None = None) -> list[Path]:
    """``$CODEX_HOME/sessions`` (default ``~/.codex/sessions``) when it exists."""
    env = dict(os.environ if env is None else env)
    home = Path(env["CODEX_HOME"]).expanduser() if env.get("CODEX_HOME") else Path.home() / ".codex"
    sessions = home / "sessions"
    return [sessions] if sessions.is_dir() else []


def units(cfg: LaptopConfig, found: list[Path]) -> Iterator[Unit]:
    for root in found:
        for path in sorted(root.rglob("rollout-*.jsonl")):
            rel = path.relative_to(root).as_posix()
            def build(p: Path = path, r: str = rel) -> Session | None:
                return parse(p.read_bytes(), r, cfg)

            yield Unit(rel, [path], build,
                       archive_files(root, [path]))


class _Reader:
    """One pass over a rollout's lines; ``users``/``assistants`` keep both channels until the
    end, where the one to show is chosen."""

    def __init__(self, cfg: LaptopConfig, rel: str):
        self.lines = Lines(cfg)
        self.rel = rel
        self.meta: dict[str, Any] = {}
        self.cwds: list[str] = []
        self.models: list[str] = []
        self.calls: dict[str, str] = {}
        self.events = {"user": False, "assistant": False}
        self.items = {"user": False, "assistant": False}
        self.pending: list[tuple[int, str, str, str]] = []  # (index in lines, channel, role, text)

    def _say(self, channel: str, role: str, text: str) -> None:
        if text.strip():
            self.pending.append((len(self.lines.out), channel, role, text))
            self.lines.out.append("")  # placeholder, filled in finish()
            (self.events if channel == "event" else self.items)[role] = True

    def line(self, obj: dict[str, Any]) -> None:
        kind, payload = obj.get("type"), obj.get("payload")
        if not isinstance(payload, dict):
            payload = {}
        if kind == "session_meta" and not self.meta:
            self.meta = payload
            if isinstance(payload.get("cwd"), str):
                self.cwds.append(payload["cwd"])
        elif kind == "turn_context":
            if isinstance(payload.get("cwd"), str):
                self.cwds.append(payload["cwd"])
            if isinstance(payload.get("model"), str):
                self.models.append(payload["model"])
        elif kind == "response_item":
            self.response_item(payload)
        elif kind == "event_msg":
            if payload.get("type") == "user_message":
                self._say("event", "user", text_of(payload.get("message")))
            elif payload.get("type") == "agent_message":
                self._say("event", "assistant", text_of(payload.get("message")))
        elif kind == "compacted":
            self.lines.compacted(text_of(payload.get("message")))

    def response_item(self, p: dict[str, Any]) -> None:
        t = p.get("type")
        if t == "message" and p.get("role") in ("user", "assistant"):
            text = text_of(p.get("content"))
            if p["role"] == "user" and text.lstrip().startswith(HARNESS_PREFIXES):
                return
            self._say("item", str(p["role"]), text)
        elif t == "reasoning":
            self.lines.thought(text_of(p.get("summary")))
        elif t in ("function_call", "custom_tool_call"):
            name = str(p.get("name") or "tool")
            self.calls[str(p.get("call_id"))] = name
            self.lines.tool(name, json_or_text(p.get("arguments", p.get("input"))))
        elif t == "local_shell_call":
            self.calls[str(p.get("call_id"))] = "shell"
            action = got if isinstance(got := p.get("action"), dict) else {}
            self.lines.tool("shell", {"command": action.get("command")})
        elif t == "web_search_call":
            action = got if isinstance(got := p.get("action"), dict) else {}
            self.lines.tool("web_search", {"query": action.get("query") or action.get("url")})
        elif t in ("function_call_output", "custom_tool_call_output"):
            text, error = _output(p.get("output"))
            self.lines.result(self.calls.get(str(p.get("call_id")), "tool"), text, error)

    def finish(self) -> None:
        """Fill the placeholders from one channel per role; drop the others."""
        show = {role: "event" if self.events[role] else "item" for role in ("user", "assistant")}
        keep = {i: (role, text) for i, channel, role, text in self.pending if show[role] == channel}
        drafted, self.lines.out = self.lines.out, []
        for i, line in enumerate(drafted):
            if i in keep:
                role, text = keep[i]
                (self.lines.user if role == "user" else self.lines.assistant)(text)
            elif line:
                self.lines.out.append(line)


def _output(raw: Any) -> tuple[str, bool]:
    """(text, failed) of a call's output: a string (older versions: JSON ``{output, metadata:
    {exit_code}}``), content items, or ``{content, success}``."""
    if isinstance(raw, dict):
        return text_of(raw.get("content")) or json.dumps(raw, ensure_ascii=False), raw.get("success") is False
    if isinstance(raw, list):
        return text_of(raw), False
    if isinstance(raw, str) and raw.startswith("{"):
        try:
            obj = json.loads(raw)
        except ValueError:
            return raw, False
        if isinstance(obj, dict) and isinstance(obj.get("output"), str):
            code = obj.get("metadata", {}).get("exit_code") if isinstance(obj.get("metadata"), dict) else None
            return obj["output"], isinstance(code, int) and code != 0
    return ("" if raw is None else str(raw)), False


def parse(data: bytes, rel: str, cfg: LaptopConfig) -> Session | None:
    """One rollout file as a session (None when it has no session id at all)."""
    bad = Bad()
    reader = _Reader(cfg, rel)
    times = []
    for obj in read_jsonl(data, rel, bad):
        if obj.get("type") not in KNOWN_TYPES:
            bad.skipped += 1
            continue
        t = when(obj.get("timestamp"))
        if t:
            times.append(t)
        reader.line(obj)
    reader.finish()
    meta = reader.meta
    m = _UUID.search(rel)
    sid = str(meta.get("id") or meta.get("session_id") or (m.group(1) if m else ""))
    if not sid:
        return None
    git = got if isinstance(got := meta.get("git"), dict) else {}
    cwds = list(dict.fromkeys(reader.cwds))
    return Session(
        NAME, sid, reader.lines, [rel], project=cwds[0] if cwds else None, times=times, bad=bad,
        resume=f"codex resume {sid}",
        meta={"cwds": cwds if len(cwds) > 1 else None, "git_branch": git.get("branch"),
              "git_commit": git.get("commit_hash"), "repository_url": git.get("repository_url"),
              "agent_version": meta.get("cli_version"), "forked_from": meta.get("forked_from_id"),
              "model": reader.models[-1] if reader.models else None,
              "models": sorted(set(reader.models)) if len(set(reader.models)) > 1 else None})
