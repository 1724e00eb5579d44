"""``brain hooks ...``: install the Claude Code hooks, and the commands Claude Code runs.

Why the hook commands never fail: Claude Code shows a failing hook to the user, and a SessionStart
hook that hangs delays the session. ``session-start`` and ``session-end`` exit 0 whatever happens,
print nothing but the context, and log what went wrong in ``<state dir>/hooks.log``.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from brain.collect import hooks
from brain.shared import config as config_mod
from brain.shared import hook_deadline
from brain.shared.words import counted

LOG_LINES = 5


def _targets(project: Path | None) -> list[Path]:
    return [hooks.project_settings_path(project)] if project else hooks.user_settings_paths()


def _project_option(f: Any) -> Any:
    return click.option("--project", "project", type=click.Path(file_okay=False, path_type=Path),
                        help="A project's .claude/settings.json instead of the user settings.")(f)


@click.group("hooks")
def hooks_group() -> None:
    """Claude Code hooks: the brain's memory at the start of a session, and the session sent
    to brain-api as it ends (without waiting for cron).

    \b
    Example:
      brain hooks install && brain hooks status
    """


@hooks_group.command("install")
@_project_option
@click.pass_obj
def install_cmd(obj: Any, project: Path | None) -> None:
    """Add the brain's hooks to Claude Code's settings (~/.claude/settings.json, or each
    $CLAUDE_CONFIG_DIR), merged with the hooks already there: yours are never changed or
    reordered, and installing twice is installing once.

    \b
    Example:
      brain hooks install
      brain hooks install --project ~/projects/spotter
    """
    for path in _targets(project):
        try:
            data = hooks.read_settings(path)
            changes = hooks.merge_install(data, obj.config_path)
            if changes:
                hooks.write_settings(path, data)
        except (hooks.SettingsError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{path}: {', '.join(changes) if changes else 'already installed, nothing changed'}")


@hooks_group.command("uninstall")
@_project_option
def uninstall_cmd(project: Path | None) -> None:
    """Remove the brain's hooks from Claude Code's settings; every other hook stays as it is.

    \b
    Example:
      brain hooks uninstall
    """
    for path in _targets(project):
        if not path.exists():
            click.echo(f"{path}: no such file, nothing to remove")
            continue
        try:
            data = hooks.read_settings(path)
            changes = hooks.merge_uninstall(data)
            if changes:
                hooks.write_settings(path, data)
        except (hooks.SettingsError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{path}: {', '.join(changes) if changes else 'no brain hooks found, nothing changed'}")


def _runnable(command: str) -> bool:
    try:
        exe = shlex.split(command)[0]
    except (ValueError, IndexError):
        return False
    return os.access(exe, os.X_OK)


@hooks_group.command("status")
@_project_option
@click.pass_obj
def status_cmd(obj: Any, project: Path | None) -> None:
    """Which brain hooks each settings file has, whether their command still runs, where they
    send to, and the last lines of the hook log.

    \b
    Example:
      brain hooks status
    """
    for path in _targets(project):
        try:
            found = hooks.installed(hooks.read_settings(path))
        except hooks.SettingsError as exc:
            click.echo(f"{path}: {exc}")
            continue
        click.echo(f"{path}:" + ("" if path.exists() else " (no such file)"))
        for hook in hooks.HOOKS:
            commands = found.get(hook.event, [])
            state = "not installed" if not commands else "; ".join(
                c + ("" if _runnable(c) else "  (NOT RUNNABLE: run `brain hooks install` again)") for c in commands)
            click.echo(f"  {hook.event}: {state}")
    cfg = obj.laptop
    token = "token set" if cfg.client.token else "no token (set client.token or BRAIN_TOKEN): nothing can be sent"
    click.echo(f"brain-api: {cfg.client.api_url}, {token}")
    log_path = config_mod.state_dir() / "hooks.log"
    lines = log_path.read_text(errors="replace").splitlines()[-LOG_LINES:] if log_path.exists() else []
    click.echo(f"log: {log_path}" + ("" if lines else " (empty)"))
    for line in lines:
        click.echo(f"  {line}")


# ---------------------------------------------------------------------- what Claude Code runs


def _context(cfg: Any, payload: dict[str, Any], started: float, deadline: float) -> str:
    """The SessionStart context (redacted), or "" when there is none by ``deadline``."""
    from brain.collect import session_context
    from brain.collect.redact import default_redactor

    project = hooks.project_dir(payload)
    found: list[session_context.Parts] = []
    worker = threading.Thread(target=lambda: found.append(session_context.gather(cfg, payload, project, deadline)),
                              daemon=True)
    worker.start()
    redactor = default_redactor()  # compiles its patterns while the requests are out
    worker.join(max(0.0, deadline - time.monotonic()) + 0.05)
    if not found:
        hooks.log("session-start", f"{project}: nothing printed, the context was not ready by the deadline")
        return ""
    parts = found[0]
    if parts.sessions is None:
        hooks.log("session-start", f"{project}: nothing printed, no session list from brain-api: "
                  f"{'; '.join(parts.problems)}")
        return ""
    text = redactor.redact(session_context.compose(parts, cfg.hooks.context_tokens)).text
    problems = f"; left out: {'; '.join(parts.problems)}" if parts.problems else ""
    if text:
        hooks.log("session-start", f"{project}: {counted(len(parts.sessions or []), 'session')}, "
                  f"{counted(len(parts.memories or []), 'memory', 'memories')}, ~{session_context.token_estimate(text)} tokens in "
                  f"{time.monotonic() - started:.2f} s from the hook's start{problems}")
    else:
        hooks.log("session-start", f"{project}: nothing to say{problems}")
    return text


@hooks_group.command("session-start")
@click.pass_obj
def session_start_cmd(obj: Any) -> None:
    """The SessionStart hook: reads Claude Code's JSON from stdin and prints the brain's context
    for the project (recent sessions and how to resume them, where the last one stopped, related
    memories) as additionalContext, within hooks.start_budget of the hook's start or not at all.
    Always exits 0.

    \b
    Example (as Claude Code runs it):
      echo '{"session_id": "s1", "cwd": "'$PWD'", "hook_event_name": "SessionStart", "source": "startup"}' \\
        | brain hooks session-start
    """
    # Counted from the process's start, not from here: brain.cli.main armed the bound before its
    # imports (0.3 s on an idle 2-core laptop, over 1.5 s at load 10), which the session waits for too.
    guard = hook_deadline.armed()
    try:
        cfg = obj.laptop
    except Exception as exc:  # a broken config: logged, never shown to the session
        guard.finish(why=f"failed: {type(exc).__name__}: {exc}")
    budget = cfg.hooks.start_budget
    started = guard.started
    guard.move(started + budget, f"nothing printed: the hook's {budget:g} s from its start ran out")
    deadline = started + budget - hook_deadline.EXIT_MARGIN
    if time.monotonic() >= deadline:
        guard.finish(why=f"nothing printed: the process took {time.monotonic() - started:.2f} s to start, "
                     f"past hooks.start_budget ({budget:g} s) less {hook_deadline.EXIT_MARGIN:g} s to print")
    payload = hooks.read_input(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
    text = ""
    try:
        text = _context(cfg, payload, started, deadline)
    except Exception as exc:  # an unexpected bug: logged, never shown to the session
        hooks.log("session-start", f"failed: {type(exc).__name__}: {exc}")
    guard.finish(json.dumps({"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": text}},
                            ensure_ascii=False) + "\n" if text else "")


@hooks_group.command("session-end")
@click.pass_obj
def session_end_cmd(obj: Any) -> None:
    """The Stop and SessionEnd hook (PreCompact works too): starts `brain hooks collect` for the
    session's transcript in the background and returns at once. Always exits 0.

    \b
    Example (as Claude Code runs it):
      echo '{"transcript_path": "'$HOME'/.claude/projects/-x/1234.jsonl", "hook_event_name": "SessionEnd"}' \\
        | brain hooks session-end
    """
    payload = hooks.read_input()
    event = str(payload.get("hook_event_name") or "session-end")
    why = payload.get("reason") or payload.get("trigger")
    event += f" ({why})" if isinstance(why, str) and why else ""
    transcript = payload.get("transcript_path")
    if not isinstance(transcript, str) or not transcript.strip():
        hooks.log(event, "no transcript_path in the hook input: nothing to collect")
        return
    try:
        pid = hooks.spawn_collect(transcript, obj.config_path)
    except OSError as exc:
        hooks.log(event, f"cannot start the background collection: {exc}")
        return
    hooks.log(event, f"collecting {transcript} in the background (pid {pid})")


@hooks_group.command("collect")
@click.argument("transcript", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def collect_cmd(obj: Any, transcript: Path) -> None:
    """Collect one Claude Code transcript and send the outbox: what session-end runs in the
    background. Waits for a running `brain collect` to finish; logs to the hook log.

    \b
    Example:
      brain hooks collect ~/.claude/projects/-home-me-app/0b5e...-4f2d.jsonl
    """
    try:
        summary = hooks.collect_one(obj.laptop, transcript)
    except Exception as exc:  # the log is the only place a background run can report to
        hooks.log("collect", f"{transcript}: failed: {type(exc).__name__}: {exc}")
        raise
    hooks.log("collect", f"{transcript}: {summary}")
    if sys.stdout.isatty():
        click.echo(summary)
