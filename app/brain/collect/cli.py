"""``brain collect ...`` and ``brain init``: run the collectors under cron.

Exit codes: 0 everything collected and delivered; 1 something failed (one ``error:`` line per
problem and a final ``brain collect failed: ...`` line on stderr; undelivered items stay in
the outbox); 75 (EX_TEMPFAIL) another ``brain collect`` holds the lock. A Claude Code hook's
collection of one session holding it is waited for up to ``collect.lock_wait`` seconds, then the
run is skipped with exit 0 and a ``skipped`` line: the hook sends what it collected, and a cron job
must not fail because a session just ended.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from brain.client.http import ApiClient
from brain.collect import RunStats
from brain.collect.archive import Archive
from brain.collect.forgotten import cached, learn
from brain.collect.outbox import AuthFailed, DryRunSink, LockBusy, OutboxSink, RunLock, Sink, State, wait_for_run_lock
from brain.collect.redact import default_redactor
from brain.shared import config as config_mod
from brain.shared import timeutil
from brain.shared.progress import Progress, progress
from brain.shared.settings import LaptopConfig
from brain.shared.words import counted

EX_TEMPFAIL = 75
SOURCES = ("claude", "agents", "browser", "files")


def state_path() -> Path:
    return config_mod.state_dir() / "collect.db"


def archive_path() -> Path:
    return config_mod.data_dir() / "claude-archive"


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return timeutil.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


def _run_one(name: str, cfg: LaptopConfig, state: State, sink: Sink, since: datetime | None,
             from_archive: bool, dry_run: bool) -> RunStats:
    redactor = default_redactor()
    if name == "claude":
        from brain.collect import claude

        archive = Archive(archive_path(), cfg.collect.archive_days) if (from_archive or not dry_run) else None
        try:
            if from_archive:
                assert archive is not None
                return claude.collect_from_archive(cfg, state, sink, redactor, archive, since)
            return claude.collect(cfg, state, sink, redactor, archive, since)
        finally:
            if archive is not None:
                archive.close()
    if name == "agents":
        from brain.collect import coding_agents

        archive = None if dry_run else Archive(archive_path(), cfg.collect.archive_days)
        try:
            return coding_agents.collect(cfg, state, sink, redactor, archive, since)
        finally:
            if archive is not None:
                archive.close()
    if name == "browser":
        from brain.collect import browser

        return browser.collect(cfg, state, sink, redactor, since)
    from brain.collect import files

    return files.collect(cfg, state, sink, redactor, since)


RUN_PROBLEMS_KEPT = 50  # bad records remembered per collector for `brain collect status`


def _record_run(state: State, stats: RunStats) -> None:
    """Keep this run's summary and its bad records (names and reasons, never content) in the state
    database, so `brain collect status` can say what the last cron run skipped or repaired."""
    record = {"finished_at": timeutil.now(), "summary": stats.summary(),
              "repaired": stats.repaired[:RUN_PROBLEMS_KEPT], "dropped": stats.dropped[:RUN_PROBLEMS_KEPT],
              "problems": len(stats.repaired) + len(stats.dropped), "errors": stats.errors[:RUN_PROBLEMS_KEPT]}
    state.set_cursor(f"run:{stats.name.split(' ')[0]}", json.dumps(record))
    state.checkpoint()


def _print_runs(state: State) -> None:
    runs = state.cursors("run:")
    if not runs:
        return
    click.echo("last runs:")
    for name, value in runs:
        try:
            run = json.loads(value)
        except ValueError:
            continue
        click.echo(f"  {name.removeprefix('run:')} at {run['finished_at']}: {run['summary']}")
        for label in ("repaired", "dropped"):
            for what, why in run.get(label, []):
                click.echo(f"    {label} {what}: {why}")
        shown = len(run.get("repaired", [])) + len(run.get("dropped", []))
        if run.get("problems", 0) > shown:
            click.echo(f"    ... and {run['problems'] - shown} more")
        for error in run.get("errors", []):
            click.echo(f"    error: {error}")


def _flush(cfg: LaptopConfig, state: State, err: Callable[[str], None], prog: Progress) -> tuple[str, str]:
    """Send the outbox. Returns (summary line, failure message or "")."""
    if not cfg.client.token:
        left = sum(state.pending().values())
        return "", f"client.token is not set (BRAIN_TOKEN or [client] token in the config); {counted(left, 'item')} kept in the outbox"
    try:
        client = ApiClient.from_config(cfg)
        bar = prog.bar("send", total=state.pending()["upsert"], detail="")
        result = state.flush(client, cfg.collect.batch_items, cfg.collect.batch_bytes,
                             progress=lambda r: bar.update(completed=r.sent + r.failed,
                                                           detail=counted(r.batches, "batch", "batches")))
    except AuthFailed as exc:
        return "", f"{exc}: check client.token (BRAIN_TOKEN); every item is kept in the outbox"
    for line in result.failures[:20]:
        err(f"error: item rejected: {line}")
    pending = state.pending()
    left = pending["upsert"] + pending["delete"]
    answers = ", ".join(f"{k} {v}" for k, v in sorted(result.answers.items()))
    summary = (f"sent: {counted(result.sent, 'item')} in {counted(result.batches, 'batch', 'batches')} "
               f"({answers or 'nothing to send'}), "
               f"{result.deleted} deleted; outbox: {left} pending, {pending['failed']} rejected")
    if result.error:
        return summary, f"{result.error}; {counted(left, 'item')} kept in the outbox for the next run"
    if result.failed:
        return summary, f"brain-api rejected {counted(result.failed, 'item')} (kept as failed; see `brain collect status`)"
    return summary, ""


def _count_forgotten(stats: RunStats, n: int) -> None:
    """A collector counts a skipped forgotten item as unchanged (the sink did not queue it); say
    what it was instead: ``skipped forgotten n`` in the summary line."""
    if n > 0:
        stats.unchanged = max(0, stats.unchanged - n)
        stats.skipped["forgotten"] += n


def run_collect(obj: Any, which: tuple[str, ...], dry_run: bool, since: str | None, from_archive: bool,
                quiet: bool) -> None:
    """Lock, collect into the outbox (or print for --dry-run), send, and exit with a status."""
    cfg = obj.laptop
    since_dt = _since(since)
    out: Callable[[str], None] = (lambda s: None) if quiet else click.echo
    err: Callable[[str], None] = lambda s: click.echo(s, err=True)  # noqa: E731
    failures: list[str] = []
    try:
        lock = wait_for_run_lock(RunLock(config_mod.state_dir() / "collect.lock"), cfg.collect.lock_wait,
                                 lambda busy: out(f"waiting up to {cfg.collect.lock_wait:g} s: {busy}"), only_for="hook")
    except LockBusy as exc:
        if exc.holder == "hook":  # it sends what it collected; the next run collects the rest
            click.echo(f"brain collect: skipped, {exc} for longer than collect.lock_wait "
                       f"({cfg.collect.lock_wait:g} s); the next run collects")
            return
        err(f"brain collect: {exc}; not running twice")
        sys.exit(EX_TEMPFAIL)
    try:
        with lock, progress(quiet or dry_run) as prog:
            state = State(state_path(), dry_run=dry_run)
            try:
                sink: Sink = DryRunSink(state, click.echo) if dry_run else OutboxSink(state)
                # a dry run talks to nobody: it skips by the tombstones the last real run learnt
                sink.rules = cached(state)[0] if dry_run else learn(cfg, state, lambda w: err(f"warning: {w}"))
                for name in which:
                    bar = prog.bar(f"collect {name}", detail="")
                    sink.on_item = lambda s, bar=bar, q0=sink.queued, u0=sink.unchanged: bar.update(
                        completed=s.queued - q0 + s.unchanged - u0, detail=f"{s.queued - q0} queued")
                    forgotten0 = sink.forgotten
                    try:
                        stats = _run_one(name, cfg, state, sink, since_dt, from_archive, dry_run)
                    except Exception as exc:  # one clear line for cron, and the other collectors still run
                        state.rollback()
                        kind = "" if isinstance(exc, OSError | sqlite3.Error) else f"unexpected {type(exc).__name__}: "
                        stats = RunStats(name, errors=[f"{name}: {kind}{exc}"])
                    _count_forgotten(stats, sink.forgotten - forgotten0)
                    out(stats.summary())
                    for w in stats.warnings:
                        err(f"warning: {w}")
                    for e in stats.errors:
                        err(f"error: {e}")
                    failures.extend(stats.errors)
                    if not dry_run:
                        _record_run(state, stats)
                if dry_run:
                    out("dry run: nothing was sent and no state was changed")
                else:
                    dropped = state.drop_forgotten(sink.rules)
                    if dropped:
                        out(f"outbox: {len(dropped)} queued items were forgotten meanwhile; not sent")
                    summary, problem = _flush(cfg, state, err, prog)
                    if summary:
                        out(summary)
                    if problem:
                        failures.append(problem)
            finally:
                state.close()
    finally:
        lock.__exit__(None, None, None)
    if failures:
        err(f"brain collect failed: {failures[-1]}" if len(failures) == 1 else
            f"brain collect failed: {len(failures)} problems, last: {failures[-1]}")
        sys.exit(1)


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("-q", "--quiet", is_flag=True, help="Print only warnings and errors (for cron).")(f)
    f = click.option("--since", metavar="DATE", help="Only activity at or after DATE (ISO-8601, e.g. 2026-11-01).")(f)
    f = click.option("--dry-run", is_flag=True, help="Print what would be sent (ids, titles, sizes, redactions); "
                     "send and change nothing.")(f)
    return f


@click.group("collect")
def collect_group() -> None:
    """Collect Claude Code sessions, browser history and code files into brain-api.

    Items are redacted, queued in a local outbox (~/.local/state/brain/collect.db) and sent to
    client.api_url with client.token (from the config file or BRAIN_API_URL / BRAIN_TOKEN).

    \b
    Example (crontab):
      */20 * * * * brain collect all --quiet
    """


@collect_group.command("claude")
@_options
@click.option("--from-archive", is_flag=True, help="Rebuild sessions from the transcript archive only.")
@click.pass_obj
def collect_claude(obj: Any, dry_run: bool, since: str | None, quiet: bool, from_archive: bool) -> None:
    """Claude Code sessions (one item per session, subagents attached).

    \b
    Example:
      brain collect claude --dry-run --since 2026-11-01
    """
    run_collect(obj, ("claude",), dry_run, since, from_archive, quiet)


@collect_group.command("agents")
@_options
@click.pass_obj
def collect_agents(obj: Any, dry_run: bool, since: str | None, quiet: bool) -> None:
    """Other coding agents' sessions: Codex CLI, Gemini CLI, Aider, opencode, Cursor (one item per session).

    \b
    Example:
      brain collect agents --dry-run
    """
    run_collect(obj, ("agents",), dry_run, since, False, quiet)


@collect_group.command("browser")
@_options
@click.pass_obj
def collect_browser(obj: Any, dry_run: bool, since: str | None, quiet: bool) -> None:
    """Chrome-family and Firefox history (one item per URL and profile).

    \b
    Example:
      brain collect browser --since 2026-11-20
    """
    run_collect(obj, ("browser",), dry_run, since, False, quiet)


@collect_group.command("files")
@_options
@click.pass_obj
def collect_files(obj: Any, dry_run: bool, since: str | None, quiet: bool) -> None:
    """Code and text files under collect.files_roots (one item per file).

    \b
    Example:
      BRAIN_COLLECT_FILES_ROOTS=~/projects brain collect files --dry-run
    """
    run_collect(obj, ("files",), dry_run, since, False, quiet)


@collect_group.command("all")
@_options
@click.pass_obj
def collect_all(obj: Any, dry_run: bool, since: str | None, quiet: bool) -> None:
    """Claude, the other coding agents, browser and (when roots are configured) files, then send.

    \b
    Example:
      brain collect all --quiet
    """
    which = SOURCES if obj.laptop.collect.files_roots else SOURCES[:3]
    run_collect(obj, which, dry_run, since, False, quiet)


@collect_group.command("status")
@click.pass_obj
def collect_status(obj: Any) -> None:
    """Show the outbox (pending items, items brain-api rejected with their error) and each
    collector's last run with the records it repaired or left out.

    \b
    Example:
      brain collect status
    """
    if not state_path().exists():
        click.echo("outbox: empty (no collector has run yet)")
        return
    state = State(state_path())
    try:
        p = state.pending()
        click.echo(f"outbox: {p['upsert']} upserts and {p['delete']} deletes pending, {p['failed']} rejected")
        for row in state.failures():
            click.echo(f"  rejected {row['item_id']} ({row['op']}): {row['last_status']} {row['last_error']}")
        _print_runs(state)
    finally:
        state.close()


@collect_group.command("retry")
@click.pass_obj
def collect_retry(obj: Any) -> None:
    """Queue the rejected items again (after fixing the server or its limits); sent by the next run.

    \b
    Example:
      brain collect retry && brain collect all
    """
    state = State(state_path())
    try:
        click.echo(f"{state.retry_failed()} rejected items queued again")
    finally:
        state.close()


def _toml(value: Any) -> str:
    """TOML literal for the setting types used here (JSON's string/array syntax is valid TOML)."""
    return json.dumps(value, ensure_ascii=False)


def render_config() -> str:
    """A commented config.toml for a collector machine: every client.*, collect.* and hooks.* setting."""
    lines = [
        "# brain configuration (written by `brain init`).",
        "# Precedence: environment variable > this file > built-in default.",
        "# Keep the token out of crontabs: put it here (this file is chmod 600) or in BRAIN_TOKEN.",
        "",
    ]
    for section in ("client", "collect", "hooks"):
        lines.append(f"[{section}]")
        for s in config_mod.describe(LaptopConfig):
            if not s.name.startswith(section + "."):
                continue
            key = s.name.split(".", 1)[1]
            lines.append(f"# {s.help} (env {s.env_var})")
            lines.append(f"# {key} = {_toml('' if s.secret else s.default_value())}")
        lines.append("")
    return "\n".join(lines)


@click.command("init")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@click.pass_obj
def init_cmd(obj: Any, force: bool) -> None:
    """Write a commented config file and create the state and data folders.

    \b
    Example:
      brain init && $EDITOR ~/.config/brain/config.toml
    """
    path = Path(obj.config_path).expanduser() if getattr(obj, "config_path", None) else config_mod.default_config_path()
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; use --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render_config())
    os.chmod(path, 0o600)
    for folder in (config_mod.state_dir(), config_mod.data_dir()):
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    click.echo(f"wrote {path}")
    click.echo(f"state: {config_mod.state_dir()}  data (transcript archive): {config_mod.data_dir()}")
    click.echo("next: set [client] api_url and token (or BRAIN_API_URL / BRAIN_TOKEN), then try")
    click.echo("  brain collect all --dry-run")
    click.echo("and add to your crontab:  */20 * * * * brain collect all --quiet")
