"""The ``brain`` command line. Each area keeps its commands in its own module and registers here."""

from __future__ import annotations

import importlib
import json
import secrets
import sys
from typing import Any

import click

from brain.shared import config as config_mod
from brain.shared.config import C
from brain.shared.settings import FullConfig, LaptopConfig, ServerConfig


class Ctx:
    """The configuration, loaded when a command first needs it, in the composition it needs:
    ``laptop`` for the collectors and the commands that talk to brain-api, ``server`` on brain-api's
    host, ``full`` for showing everything. A section the composition does not own is left alone, so
    one file can hold both sides' settings (a single machine running everything)."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._loaded: dict[type, config_mod.Config] = {}

    def _load(self, kind: type[C]) -> C:
        if kind not in self._loaded:
            try:
                self._loaded[kind] = config_mod.load(self.config_path, kind=kind)
            except config_mod.ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._loaded[kind]  # type: ignore[return-value]

    @property
    def laptop(self) -> LaptopConfig:
        return self._load(LaptopConfig)

    @property
    def server(self) -> ServerConfig:
        return self._load(ServerConfig)

    @property
    def full(self) -> FullConfig:
        return self._load(FullConfig)


pass_ctx = click.make_pass_decorator(Ctx)

SERVER_EXTRA = 'pip install "brain[server]"'


def needs_server_extra(what: str, exc: ImportError) -> click.ClickException:
    """The error for server-side work on an install without the server extra: what, and what to install."""
    return click.ClickException(f"{what} and needs the server extra ({exc.name or exc} is not installed): "
                                f"{SERVER_EXTRA}")

# Each area's commands, imported only when one runs (or its help is asked for): ``brain --help``
# and the laptop's commands start without loading the server side, and a laptop install (without
# the server extra) says what to install instead of failing on an import. The one-line help is
# repeated here so that the command list needs no import; a test keeps it equal to the command's own.
LAZY: dict[str, tuple[str, str]] = {
    "ask": ("brain.cli.ask:ask",
            "Ask the brain a question; the answer cites what you remembered as [n]."),
    "backup": ("brain.core.backup:backup_cmd",
               "Write a consistent snapshot of the database and remove the oldest beyond --keep."),
    "collect": ("brain.collect.cli:collect_group",
                "Collect Claude Code sessions, browser history and code files into brain-api."),
    "cost": ("brain.cli.gpu:cost_cmd",
             "GPU hours and dollars this month, projection to month end, embedding spend, the plan's tiers."),
    "embed-worker": ("brain.cli.server:embed_worker",
                     "Embed the chunk texts that ingest queued (one worker per database; `brain serve` starts one)."),
    "forget": ("brain.cli.forget:forget_cmd",
               "Forget items for good: delete them and refuse them from now on."),
    "gpu": ("brain.cli.gpu:gpu_group", "Start, stop and watch the GPU VM (TensorDock) that runs the LLM."),
    "hooks": ("brain.collect.hooks_cli:hooks_group",
              "Claude Code hooks: the brain's memory at the start of a session, and the session sent to brain-api as it ends (without waiting for cron)."),
    "init": ("brain.collect.cli:init_cmd", "Write a commented config file and create the state and data folders."),
    "mcp": ("brain.mcp:mcp_command",
            "Run an MCP server over the brain for Claude Code or any MCP client."),
    "model": ("brain.core.model_cli:model_group", "The local embedding model: fetch it, show where it is."),
    "recent": ("brain.cli.recent:recent_cmd",
               "A day's timeline: sessions with their first prompt and duration, pages visited, files changed."),
    "reindex": ("brain.cli.server:reindex",
                "Queue every chunk text the configured model has no vector for, and follow the backlog."),
    "restore": ("brain.core.backup:restore_cmd",
                "Replace the database with BACKUP_FILE (or a bucket backup) after checking its integrity."),
    "serve": ("brain.cli.server:serve", "Run brain-api (gunicorn; --dev for Flask's server)."),
}
# the laptop install has these (no server extra needed)
LAPTOP_COMMANDS = frozenset({"ask", "collect", "cost", "forget", "gpu", "hooks", "init", "mcp", "recent"})


def _missing_extra(name: str, exc: ImportError) -> click.Command:
    """A stand-in for a command whose module cannot be imported here: it explains and exits 1."""
    def fail() -> None:
        raise needs_server_extra(f"`brain {name}` runs on brain-api's host", exc)
    return click.Command(name, callback=fail, help=LAZY[name][1], context_settings={"ignore_unknown_options": True,
                                                                                 "allow_extra_args": True})


class LazyGroup(click.Group):
    """A click group whose area commands (``LAZY``) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY:
            return super().get_command(ctx, cmd_name)
        module, _, attr = LAZY[cmd_name][0].partition(":")
        try:
            command: click.Command = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            if cmd_name in LAPTOP_COMMANDS:
                raise
            return _missing_extra(cmd_name, exc)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from ``LAZY``'s help lines, importing nothing."""
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY:
                text = LAZY[name][1]
            else:
                cmd = super().get_command(ctx, name)
                if cmd is None or cmd.hidden:
                    continue
                text = cmd.get_short_help_str(formatter.width)
            rows.append((name, text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)



@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="brain", prog_name="brain")
@click.option("--config", "config_path", envvar="BRAIN_CONFIG", type=click.Path(dir_okay=False),
              help="TOML config file (default ~/.config/brain/config.toml).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """brain: remember what you did, search it, ask about it.

    \b
    Example:
      brain serve --dev            # run brain-api locally
      brain search "sqlite wal"    # hybrid search
    """
    ctx.obj = Ctx(config_path)


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("new")
def token_new() -> None:
    """Print a new random API token and the config lines that use it.

    \b
    Example:
      brain token new
    """
    value = secrets.token_urlsafe(32)
    click.echo(value)
    click.echo("# server side (brain-api):", err=True)
    click.echo(f"#   export BRAIN_API_TOKENS={value}", err=True)
    click.echo("#   or in config.toml: [server] api_tokens = [\"" + value + "\"]", err=True)
    click.echo("# client side (collectors, CLI, MCP):", err=True)
    click.echo(f"#   export BRAIN_TOKEN={value}", err=True)


@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@pass_ctx
def config_show(obj: Ctx) -> None:
    """Print every setting with where it came from (secrets masked).

    \b
    Example:
      BRAIN_DB=/tmp/b.db brain config show
    """
    cfg = obj.full
    for name, value in cfg.redacted().items():
        click.echo(f"{name} = {value!r}    # {cfg.sources.get(name, 'default')}")


def _local_ops() -> Any:
    """``brain.cli.local`` (reads of the database file itself), or why this install cannot."""
    try:
        return importlib.import_module("brain.cli.local")
    except ImportError as exc:
        raise needs_server_extra("--local reads brain-api's database directly", exc) from None


@main.command()
@click.argument("query")
@click.option("-k", "--k", "k", default=10, show_default=True, help="Number of results.")
@click.option("--source", type=click.Choice(["claude", "agent", "browser", "file", "note"]), help="Only this source.")
@click.option("--project", help="Only items of this project (its path).")
@click.option("--since", help="Only items active since this date/time (ISO-8601).")
@click.option("--until", help="Only items active until this date/time (ISO-8601).")
@click.option("--mode", type=click.Choice(["hybrid", "vector", "bm25"]), default="hybrid", show_default=True)
@click.option("--local", is_flag=True, help="Search the database file directly instead of asking brain-api.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON answer.")
@pass_ctx
def search(obj: Ctx, query: str, k: int, source: str | None, project: str | None, since: str | None,
           until: str | None, mode: str, local: bool, as_json: bool) -> None:
    """Hybrid search over everything remembered.

    \b
    Example:
      brain search "sqlite busy timeout" --source claude --since 2026-11-01
    """
    from brain.cli.remote import search_remote

    kw = dict(k=k, source=source, project=project, since=since, until=until, mode=mode)
    data = _local_ops().search_local(obj.server, query, **kw) if local else search_remote(obj.laptop, query, **kw)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if not data["results"]:
        click.echo("no results")
    from brain.mcp.render import locate

    for n, r in enumerate(data["results"], 1):
        where = r.get("uri") or r["id"]
        session = locate(r) if r.get("source") in ("claude", "agent") else {}  # a session of any agent
        click.echo(click.style(f"[{n}] {r['title'] or r['id']}", bold=True) + f"  ({r['source']}, {r['updated_at'][:10]})")
        click.echo(f"    {where}")
        if session.get("resume"):
            click.echo(f"    resume: {session['open']}")
        click.echo(f"    {r['snippet']}")


@main.command()
@click.option("--local", is_flag=True, help="Read the database file directly instead of asking brain-api.")
@click.option("--follow", is_flag=True, help="Show the embedding backlog until it is drained (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON answer.")
@pass_ctx
def stats(obj: Ctx, local: bool, follow: bool, as_json: bool) -> None:
    """Items and chunks per source, the embedding backlog per model, database size, last ingest.

    \b
    Example:
      brain stats --local
      brain stats --follow          # a progress line until every text has its vector
    """
    from brain.cli.remote import follow_backlog, print_stats, stats_remote

    fetch = (lambda: _local_ops().stats_local(obj.server)) if local else (lambda: stats_remote(obj.laptop))
    if follow:
        follow_backlog(fetch)
        return
    data = fetch()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        print_stats(data)


@config_group.command("reference")
def config_reference() -> None:
    """Print every setting as a Markdown table (the README's configuration reference).

    \b
    Example:
      brain config reference > /tmp/settings.md
    """
    click.echo(config_mod.reference_markdown())


def run() -> None:  # pragma: no cover - console entry for `python -m brain`
    sys.exit(main())
