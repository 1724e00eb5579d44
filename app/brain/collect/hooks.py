"""Claude Code hooks: ``brain hooks install`` writes them into Claude Code's settings, Claude
Code runs them, and they never get in the way of a session.

The contract, as Claude Code's hooks reference documents it (read again before changing any
name here):

* Settings (``~/.claude/settings.json``, ``$CLAUDE_CONFIG_DIR/settings.json`` when that is set,
  ``<project>/.claude/settings.json``): ``{"hooks": {"<Event>": [{"matcher": "<regex>",
  "hooks": [{"type": "command", "command": "<shell command>", "timeout": <seconds>}]}]}}``. An
  empty matcher matches everything; SessionStart matches on its ``source`` (``startup``,
  ``resume``, ``clear``, ``compact``), SessionEnd on its ``reason``; Stop has no matcher. Hooks of
  every settings file run, in parallel; the default timeout is 600 s.
* Input: one JSON object on stdin with ``session_id``, ``transcript_path``, ``cwd``,
  ``permission_mode``, ``hook_event_name``; SessionStart adds ``source`` and ``model``, SessionEnd
  ``reason`` (``clear``, ``resume``, ``logout``, ``prompt_input_exit``,
  ``bypass_permissions_disabled``, ``other``), Stop ``stop_hook_active``, PreCompact ``trigger``. ``CLAUDE_PROJECT_DIR`` is the
  project root in the hook's environment.
* Output: exit 0 is success, and SessionStart's stdout reaches the model (plain text, or JSON
  ``{"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": "..."}}``);
  exit 2 is a blocking error (stderr goes to Claude or the user); any other code is a
  non-blocking error shown to the user. These hooks always exit 0 and say nothing on failure:
  the brain being down must never show up in a session. What went wrong goes to
  ``<state dir>/hooks.log``.
* SessionEnd hooks are killed about 1.5 s after Claude Code starts exiting, so the session-end
  hook only starts a detached child and returns (see :func:`spawn_collect`).

Which hooks (:data:`HOOKS`): SessionStart (``brain hooks session-start``) prints what the brain
knows about the project; Stop and SessionEnd (``brain hooks session-end``) send the session in
the background. Stop fires after every answer, so a session is remembered while it runs and
even when it ends without a SessionEnd (a closed terminal). PreCompact is not installed: a
compaction keeps every line of the transcript, and the Stop after it sends them; the command
accepts it all the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brain.shared import config as config_mod
from brain.shared.hook_deadline import log as log  # the hook log, written without the settings
from brain.shared.settings import LaptopConfig

STDIN_MAX_BYTES = 1 << 20
STDIN_WAIT_S = 1.0  # Claude Code writes its JSON at once
LOCK_WAIT_S = 300.0  # how long a background collection waits for a running `brain collect`


@dataclass(frozen=True)
class Hook:
    """One hook the brain installs: the event, its matcher and the ``brain hooks`` sub-command."""

    event: str
    matcher: str
    command: str
    timeout: int  # seconds; Claude Code's backstop, the commands keep their own shorter deadlines


HOOKS = (
    # resume is left out: the resumed conversation already holds what the brain said when it began
    Hook("SessionStart", "startup|clear|compact", "session-start", 10),
    Hook("Stop", "", "session-end", 10),
    Hook("SessionEnd", "", "session-end", 10),
)


class SettingsError(Exception):
    """A settings file the brain will not touch (not JSON, or hooks of an unknown shape)."""


# ---------------------------------------------------------------------- where and what


def user_settings_paths(env: dict[str, str] | None = None) -> list[Path]:
    """Claude Code's user settings: ``settings.json`` in each ``$CLAUDE_CONFIG_DIR`` folder
    (comma-separated, as the Claude collector reads it), else in ``~/.claude``."""
    env = dict(os.environ if env is None else env)
    dirs = [Path(p.strip()).expanduser() for p in env.get("CLAUDE_CONFIG_DIR", "").split(",") if p.strip()]
    return [d / "settings.json" for d in (dirs or [Path.home() / ".claude"])]


def project_settings_path(project: Path) -> Path:
    return project.expanduser() / ".claude" / "settings.json"


def brain_argv(config_path: str | None = None) -> list[str]:
    """How to run this very installation of ``brain``: the console script beside the running
    interpreter (a venv's or pipx's ``bin/``), else ``python -m brain``. An absolute path,
    because Claude Code runs hooks with its own ``PATH``; ``--config`` kept when one was given."""
    script = Path(sys.executable).parent / "brain"
    argv = [str(script)] if script.is_file() and os.access(script, os.X_OK) else [sys.executable, "-m", "brain"]
    if config_path:
        argv += ["--config", str(Path(config_path).expanduser().resolve())]
    return argv


def hook_command(hook: Hook, config_path: str | None = None) -> str:
    return shlex.join([*brain_argv(config_path), "hooks", hook.command])


def is_ours(entry: Any, command: str) -> bool:
    """Whether a settings hook entry runs ``brain ... hooks <command>`` (whichever install of
    brain, with or without ``--config``): the user's own hooks are never matched."""
    if not isinstance(entry, dict) or entry.get("type") != "command" or not isinstance(entry.get("command"), str):
        return False
    try:
        argv = shlex.split(entry["command"])
    except ValueError:
        return False
    if argv[-2:] != ["hooks", command]:
        return False
    return Path(argv[0]).name == "brain" or argv[1:3] == ["-m", "brain"]


# ---------------------------------------------------------------------- settings files


def read_settings(path: Path) -> dict[str, Any]:
    """The settings object (``{}`` when the file is missing); refuses what it cannot merge into."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"{path}: not valid JSON ({exc}); fix it first, nothing was changed") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: not a JSON object; nothing was changed")
    hooks = data.get("hooks", {})
    if not isinstance(hooks, dict) or not all(isinstance(v, list) for v in hooks.values()):
        raise SettingsError(f"{path}: \"hooks\" is not an object of lists as Claude Code documents it; "
                            "nothing was changed")
    return data


def write_settings(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (a crash leaves the old file or the new one, never half of one), keeping
    the file's permissions; 2-space JSON as Claude Code writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.brain-{os.getpid()}.tmp")
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _entries(groups: list[Any]) -> Iterator[tuple[dict[str, Any], list[Any], int]]:
    """(group, its hooks list, index) for every hook entry of an event, in order."""
    for group in groups:
        if isinstance(group, dict) and isinstance(group.get("hooks"), list):
            for i in range(len(group["hooks"])):
                yield group, group["hooks"], i


def merge_install(data: dict[str, Any], config_path: str | None = None) -> list[str]:
    """Add the brain's hooks to a settings object in place; returns what changed (empty: it was
    already there). The user's hooks keep their place and content; a brain hook already present
    is updated where it is (a moved install), and a duplicate of it removed."""
    changes: list[str] = []
    hooks = data.setdefault("hooks", {})
    for hook in HOOKS:
        wanted = {"type": "command", "command": hook_command(hook, config_path), "timeout": hook.timeout}
        groups = hooks.setdefault(hook.event, [])
        ours = [(group, lst, i) for group, lst, i in _entries(groups) if is_ours(lst[i], hook.command)]
        if not ours:
            groups.append({"matcher": hook.matcher, "hooks": [wanted]})
            changes.append(f"added {hook.event}")
            continue
        _, first_list, first_i = ours[0]
        if first_list[first_i] != wanted:
            first_list[first_i] = wanted
            changes.append(f"updated {hook.event}")
        for _, lst, i in reversed(ours[1:]):
            del lst[i]
            changes.append(f"removed a duplicate {hook.event}")
        _drop_empty(groups, [g for g, _, _ in ours[1:]])
    return changes


def _drop_empty(groups: list[Any], touched: list[dict[str, Any]]) -> None:
    """Remove the groups the brain emptied (never a group the user left empty, even an equal one)."""
    emptied = {id(g) for g in touched if not g["hooks"]}
    groups[:] = [g for g in groups if id(g) not in emptied]


def merge_uninstall(data: dict[str, Any]) -> list[str]:
    """Remove the brain's hooks (and the groups and events only they filled); returns what changed."""
    changes: list[str] = []
    hooks = data.get("hooks")
    if not isinstance(hooks, dict):
        return changes
    for event in dict.fromkeys(h.event for h in HOOKS):
        groups = hooks.get(event)
        if not isinstance(groups, list):
            continue
        commands = {h.command for h in HOOKS if h.event == event}
        ours = [(g, lst, i) for g, lst, i in _entries(groups) if any(is_ours(lst[i], c) for c in commands)]
        for _, lst, i in reversed(ours):
            del lst[i]
        if ours:
            changes.append(f"removed {event}")
            _drop_empty(groups, [g for g, _, _ in ours])
            if not groups:
                del hooks[event]
    if changes and not hooks:
        del data["hooks"]
    return changes


def installed(data: dict[str, Any]) -> dict[str, list[str]]:
    """The brain's hook commands per event in a settings object."""
    out: dict[str, list[str]] = {}
    hooks = got if isinstance(got := data.get("hooks"), dict) else {}
    for hook in HOOKS:
        groups = got if isinstance(got := hooks.get(hook.event), list) else []
        found = [lst[i]["command"] for _, lst, i in _entries(groups) if is_ours(lst[i], hook.command)]
        if found:
            out[hook.event] = found
    return out


# ---------------------------------------------------------------------- running as a hook


def read_input(stream: Any = None, timeout: float = STDIN_WAIT_S) -> dict[str, Any]:
    """The hook's JSON input; ``{}`` when there is none (a terminal), it is not an object, or
    stdin is not closed within ``timeout`` seconds (Claude Code writes the JSON and closes it; a
    caller that keeps it open must not hold the hook past its deadline)."""
    stream = sys.stdin if stream is None else stream
    try:
        if stream.isatty():
            return {}
        data = json.loads(_read_until_eof(stream.fileno(), time.monotonic() + timeout) or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_until_eof(fd: int, deadline: float) -> str:
    """Everything on ``fd`` up to EOF (at most ``STDIN_MAX_BYTES``); raises ValueError at the deadline."""
    chunks: list[bytes] = []
    size = 0
    while size < STDIN_MAX_BYTES:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise ValueError("stdin was not closed in time")
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def project_dir(payload: dict[str, Any], env: dict[str, str] | None = None) -> str:
    """The project a session runs in, as collected items record it (the folder Claude Code was
    started in): ``CLAUDE_PROJECT_DIR``, else the input's ``cwd``, else this process's."""
    env = dict(os.environ if env is None else env)
    for value in (env.get("CLAUDE_PROJECT_DIR"), payload.get("cwd")):
        if isinstance(value, str) and value.strip():
            return value.rstrip("/") or "/"
    return os.getcwd()


def spawn_collect(transcript: str, config_path: str | None = None) -> int:
    """Start ``brain hooks collect <transcript>`` detached and return its pid at once.

    Why detached: Claude Code waits for a hook's stdout to close and kills SessionEnd hooks soon
    after it begins exiting. The child gets a session of its own (no signal to Claude Code's
    process group reaches it), no terminal, and the log file as stdout and stderr (an inherited
    pipe would keep Claude Code waiting for it)."""
    path = config_mod.state_dir() / "hooks.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as out:
        child = subprocess.Popen([*brain_argv(config_path), "hooks", "collect", transcript],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=out, close_fds=True,
                                 start_new_session=True, cwd="/")
    return child.pid


# ---------------------------------------------------------------------- the background collection


class SessionQueued:
    """A per-session flock held while a background collection waits for the collectors' lock.

    Why: Stop fires after every answer; while one child waits its turn, another for the same
    session adds nothing (the waiting one reads the transcript as it is when its turn comes), so
    it leaves at once. The flock is released as soon as the turn comes, so an answer written
    during that collection starts a new one."""

    def __init__(self, session_id: str):
        self.path = config_mod.state_dir() / "hooks" / f"{session_id}.queued"
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # a late opener locks a stale inode: one extra run, harmless
                self.path.unlink()
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def wait_run_lock(deadline: float) -> Any:
    """The collectors' run lock (the one ``brain collect`` takes), held, once it is free; None when
    it stayed busy until ``deadline`` (``time.monotonic()``). A cron run holds it for a while;
    this collection is small, so it waits instead of giving up. The lock says it is a hook's, so
    a cron run that finds it waits for it briefly instead of failing (``collect.lock_wait``).
    Release it with ``__exit__``."""
    from brain.collect.outbox import LockBusy, RunLock, wait_for_run_lock

    try:
        return wait_for_run_lock(RunLock(config_mod.state_dir() / "collect.lock", holder="hook"),
                                 max(0.0, deadline - time.monotonic()))
    except LockBusy:
        return None


def collect_one(cfg: LaptopConfig, transcript: Path, lock_wait: float = LOCK_WAIT_S) -> str:
    """Collect one transcript into the outbox and send the outbox; returns a summary for the log.

    The real collection path: ``claude.collect_transcript`` (redacted, archived, remembered in
    the collectors' file index, so cron later finds the session unchanged), the tombstones as
    ``brain collect`` learns them (a forgotten session is not sent again), and the same flush."""
    from brain.collect import claude
    from brain.collect.archive import Archive
    from brain.collect.cli import _count_forgotten, _flush, archive_path, state_path
    from brain.collect.forgotten import learn
    from brain.collect.outbox import OutboxSink, State
    from brain.collect.redact import default_redactor
    from brain.shared.progress import Progress

    queued = SessionQueued(transcript.stem)
    if not queued.acquire():
        return "skipped: a collection of this session is already waiting its turn"
    try:
        lock = wait_run_lock(time.monotonic() + lock_wait)
    finally:
        queued.release()
    if lock is None:
        return f"gave up: another brain collect run held the lock for {lock_wait:g} s; cron collects it"
    try:
        state = State(state_path())
        archive = Archive(archive_path(), cfg.collect.archive_days)
        try:
            problems: list[str] = []
            sink = OutboxSink(state)
            sink.rules = learn(cfg, state, problems.append)
            stats = claude.collect_transcript(cfg, state, sink, default_redactor(), archive, transcript)
            _count_forgotten(stats, sink.forgotten)
            state.drop_forgotten(sink.rules)
            summary, problem = _flush(cfg, state, problems.append, Progress(False))
        finally:
            archive.close()
            state.close()
    finally:
        lock.__exit__(None, None, None)
    parts = [stats.summary(), summary, *stats.warnings, *stats.errors, *problems, problem]
    return "; ".join(p for p in parts if p)
