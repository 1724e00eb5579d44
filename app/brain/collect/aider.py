"""Aider chat histories -> one ``agent:aider:<file key>:<start>`` item per chat session.

Format, as written by Aider-AI/aider ``aider/io.py`` (``InputOutput.__init__``, ``user_input``,
``ai_output``, ``tool_output``, ``append_chat_history``) to ``<repo>/.aider.chat.history.md``
(``--chat-history-file``, ``aider/args.py``):

* ``# aider chat started at YYYY-MM-DD HH:MM:SS`` (local time, no zone) starts a session; it is
  the only timestamp and the only session boundary, and there are no ids: a session is named by
  its file and its start time, so the id is stable while the file grows.
* ``#### `` lines are the user's prompt (a multi-line prompt is consecutive ``#### `` lines);
  ``> `` lines are Aider's tool output (commands, token counts, applied edits, questions);
  everything else is the assistant's reply. Lines end with two spaces (Markdown line breaks).
  A reader that takes ``>`` lines for the user gets every session wrong.
* Files are found under ``collect.aider_roots`` (default: ``collect.files_roots``, else the home
  folder), at most ``AIDER_DEPTH`` folders deep, never inside the usual skipped folders.
* There is no resume command: ``aider`` in the repo with ``--restore-chat-history`` reloads it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from brain.collect import expand
from brain.collect.agents import Bad, Lines, Session, Unit, archive_files, decode
from brain.shared.settings import LaptopConfig

NAME = "aider"
FILE = ".aider.chat.history.md"
AIDER_DEPTH = 4  # also named in collect.aider_roots' description
_START = re.compile(r"^# aider chat started at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s*$")

# collect.aider_roots is registered with the other collect.* settings (collectors/__init__.py)


def roots(cfg: LaptopConfig) -> list[Path]:
    """The chat history files found (each file is its own root)."""
    bases = expand(cfg.collect.aider_roots or cfg.collect.files_roots) or [Path.home()]
    skip = set(cfg.collect.files_skip_dirs)
    found: dict[str, Path] = {}
    for base in bases:
        for path in _find(base, skip):
            found.setdefault(os.path.realpath(path), path)
    return [found[k] for k in sorted(found)]


def _find(base: Path, skip: set[str], depth: int = AIDER_DEPTH) -> Iterator[Path]:
    """The history files at ``base`` and up to ``depth`` folders below it, in name order.

    Why os.scandir: its entries carry the file type the directory listing already holds, so a
    folder of 20,000 downloads costs one listing, not 20,000 stat calls (1 s -> 0.1 s for a
    40,000-entry home)."""
    try:
        with os.scandir(base) as it:
            entries = list(it)
    except OSError:
        return
    subs: list[str] = []
    for entry in entries:
        try:
            if entry.name == FILE and entry.is_file():
                yield base / FILE
            elif (depth > 0 and entry.name not in skip and not entry.name.startswith(".")
                  and entry.is_dir(follow_symlinks=False)):
                subs.append(entry.name)
        except OSError:
            continue
    for name in sorted(subs):
        yield from _find(base / name, skip, depth - 1)


def units(cfg: LaptopConfig, found: list[Path]) -> Iterator[Unit]:
    """One unit per file: its sessions are items of their own but share the file's changes."""
    for path in found:
        def build(p: Path = path) -> list[Session]:
            return sessions(p, cfg, Bad())

        yield Unit(str(path), [path], build, archive_files(path.parent, [path]))


def file_key(path: Path) -> str:
    """Ten hex characters naming this file on this machine (an id never holds a raw path)."""
    return hashlib.sha256(f"{socket.gethostname()}:{os.path.realpath(path)}".encode()).hexdigest()[:10]


def split_sessions(text: str) -> list[tuple[str, list[str]]]:
    """(start time text, lines) per session; lines before the first header are a session of their own."""
    out: list[tuple[str, list[str]]] = []
    current: list[str] = []
    start = ""
    for line in text.splitlines():
        m = _START.match(line)
        if m:
            if start or any(x.strip() for x in current):
                out.append((start, current))
            start, current = m.group(1), []
        else:
            current.append(line)
    if start or any(x.strip() for x in current):
        out.append((start, current))
    return out


def render(lines: list[str], out: Lines) -> None:
    """``####`` -> user, ``>`` -> tool output (a command shown as a call), the rest -> assistant."""
    block: list[str] = []
    kind = ""

    def flush() -> None:
        text = "\n".join(block).strip()
        if kind == "user":
            if text.startswith(("/run ", "/test ", "/git ", "/shell ")):
                cmd, _, rest = text.partition(" ")
                out.tool(cmd[1:], {"command": rest})
            else:
                out.user(text)
        elif kind == "tool" and text:
            out.result("aider", text)
        elif kind == "assistant":
            out.assistant(text)
        block.clear()

    for raw in lines:
        line = raw.rstrip()
        new = "user" if line.startswith("####") else "tool" if line.startswith(">") else "assistant"
        body = line[4:].lstrip() if new == "user" else line[1:].lstrip() if new == "tool" else raw.rstrip(" ")
        if new == "assistant" and kind != "assistant" and not line:
            continue  # the blank lines around blocks
        if new != kind:
            flush()
            kind = new
        block.append(body)
    flush()


def local_time(text: str) -> datetime | None:
    """The header's local time (no zone written) as an aware datetime in this machine's zone."""
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").astimezone()
    except ValueError:
        return None


def sessions(path: Path, cfg: LaptopConfig, bad: Bad) -> list[Session]:
    text = decode(path.read_bytes(), str(path), bad)
    key, repo = file_key(path), str(path.parent)
    out: list[Session] = []
    seen: dict[str, int] = {}
    for start, lines in split_sessions(text):
        stamp = local_time(start)
        sid = f"{key}:{stamp.strftime('%Y%m%dT%H%M%S') if stamp else 'start'}"
        seen[sid] = seen.get(sid, 0) + 1
        if seen[sid] > 1:  # two sessions started in the same second
            sid += f"-{seen[sid]}"
        body = Lines(cfg)
        render(lines, body)
        out.append(Session(NAME, sid, body, [FILE], project=repo, times=[stamp] if stamp else [], bad=bad,
                           resume=f"cd {shlex.quote(repo)} && aider --restore-chat-history"))
    if out:  # the last session runs until the file's last write
        out[-1].times.append(datetime.fromtimestamp(path.stat().st_mtime).astimezone())
    return out
