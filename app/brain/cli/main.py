"""The ``brain`` command line. Each area keeps its commands in its own module and registers here."""

from __future__ import annotations

import json
import secrets
import sys

import click

from brain.shared import config as config_mod


class Ctx:
    """Lazily loaded configuration shared by sub-commands."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._cfg: config_mod.Config | None = None

    @property
    def cfg(self) -> config_mod.Config:
        if self._cfg is None:
            try:
                self._cfg = config_mod.load(self.config_path)
            except config_mod.ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._cfg


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    cfg = obj.cfg
    for name, value in cfg.redacted().items():
        click.echo(f"{name} = {value!r}    # {cfg.sources.get(name, 'default')}")


@main.command()
@click.option("--dev", is_flag=True, help="Use Flask's development server (auto-reload, one process).")
@click.option("--host", help="Address to bind (default server.host).")
@click.option("--port", type=int, help="Port to bind (default server.port).")
@click.option("--workers", type=int, help="gunicorn worker processes (default server.workers).")
@pass_ctx
def serve(obj: Ctx, dev: bool, host: str | None, port: int | None, workers: int | None) -> None:
    """Run brain-api (gunicorn; --dev for Flask's server).

    \b
    Example:
      BRAIN_API_TOKENS=$(brain token new 2>/dev/null) brain serve --port 8000
    """
    from brain.api.server import run_dev, run_gunicorn

    cfg = obj.cfg
    host = host or cfg["server.host"]
    port = port or cfg["server.port"]
    _ensure_local_model(cfg)
    if dev:
        run_dev(cfg, host, port)
    else:
        run_gunicorn(cfg, host, port, workers or cfg["server.workers"])


def _ensure_local_model(cfg: config_mod.Config) -> None:
    """Fetch a missing local model before serving (with a progress bar on a terminal), so that the
    first ingest does not wait for the download. A failure is only a warning: the server starts,
    /readyz names what is missing, and the next use of the model tries the fetch again."""
    from brain.core.embed import EmbedError
    from brain.core.model_fetch import locate_model
    from brain.shared.config import embed_provider
    from brain.shared.progress import progress

    if embed_provider(cfg) != "local":
        return
    with progress() as bars:
        bar = bars.bar(f"fetching {cfg['embed.local_model']}")
        try:
            locate_model(cfg, progress=lambda label, done, total: bar.update(completed=done, total=total,
                                                                             detail=label))
        except EmbedError as exc:
            click.echo(f"warning: {exc}", err=True)


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
    from brain.cli.local import search_local, search_remote

    kw = dict(k=k, source=source, project=project, since=since, until=until, mode=mode)
    data = search_local(obj.cfg, query, **kw) if local else search_remote(obj.cfg, query, **kw)
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
    from brain.cli.local import follow_backlog, print_stats, stats_local, stats_remote

    fetch = (lambda: stats_local(obj.cfg)) if local else (lambda: stats_remote(obj.cfg))
    if follow:
        follow_backlog(fetch)
        return
    data = fetch()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        print_stats(data)


@main.command("embed-worker")
@click.option("--once", is_flag=True, help="Drain the queue, then exit (default: keep polling for new work).")
@click.option("--exit-with-parent", is_flag=True, hidden=True, help="Exit when the starting process is gone.")
@pass_ctx
def embed_worker(obj: Ctx, once: bool, exit_with_parent: bool) -> None:
    """Embed the chunk texts that ingest queued (one worker per database; `brain serve` starts one).

    Ingest stores and returns at once; this process adds the vectors in the background, resumes
    where it stopped after a crash, and backs off while the embedding API fails.

    \b
    Example:
      brain embed-worker --once     # catch up, then exit
    """
    import logging

    from brain.core.embed import EmbedError
    from brain.core.embed_worker import run_worker

    logging.basicConfig(level=logging.INFO, format="brain embed-worker: %(levelname)s %(message)s")
    try:
        n = run_worker(obj.cfg, once=once, exit_with_parent=exit_with_parent)
    except EmbedError as exc:
        raise click.ClickException(str(exc)) from None
    if once:
        click.echo(f"embed worker: {n} queued texts done")


@main.command()
@click.option("--no-wait", is_flag=True, help="Only queue; the running embed worker does the rest.")
@pass_ctx
def reindex(obj: Ctx, no_wait: bool) -> None:
    """Queue every chunk text the configured model has no vector for, and follow the backlog.

    Run it on the brain-api host after changing embed.provider or the model. The embedding worker
    does the work (resumable: a stopped worker picks up where it was); without a running worker
    this command embeds the queue itself.

    \b
    Example:
      BRAIN_EMBED_PROVIDER=openai OPENAI_API_KEY=sk-... brain reindex
    """
    from brain.cli.local import reindex_local

    queued, done = reindex_local(obj.cfg, wait=not no_wait)
    click.echo(f"reindex: {queued} chunk texts queued" + ("" if no_wait else f", {done} embedded"))


@config_group.command("reference")
def config_reference() -> None:
    """Print every setting as a Markdown table (the README's configuration reference).

    \b
    Example:
      brain config reference > /tmp/settings.md
    """
    click.echo(config_mod.reference_markdown())


# --- commands of each area register below --------------------------------------------------------
from brain.cli.ask import ask as ask_command  # noqa: E402 - issue 4: brain ask

main.add_command(ask_command)
from brain.core.backup import backup_cmd, restore_cmd  # noqa: E402 - issue 6: brain backup / restore

main.add_command(backup_cmd)
main.add_command(restore_cmd)
from brain.mcp import mcp_command  # noqa: E402 - issue 8: brain mcp

main.add_command(mcp_command)
from brain.collect.cli import collect_group, init_cmd  # noqa: E402 - issue 3: brain collect / brain init

main.add_command(collect_group)
main.add_command(init_cmd)
from brain.cli.forget import forget_cmd  # noqa: E402 - issue 16: brain forget (tombstones), --list, --undo

main.add_command(forget_cmd)
from brain.cli.recent import recent_cmd  # noqa: E402 - issue 16: brain recent (the timeline)

main.add_command(recent_cmd)
from brain.cli.gpu import cost_cmd, gpu_group  # noqa: E402 - issue 7: brain gpu status|start|stop|idle-check, brain cost

main.add_command(gpu_group)
main.add_command(cost_cmd)
from brain.core.model_cli import model_group  # noqa: E402 - issue 11: brain model fetch|path

main.add_command(model_group)
from brain.collect.hooks_cli import hooks_group  # noqa: E402 - issue 17: brain hooks install|status|session-start

main.add_command(hooks_group)


def run() -> None:  # pragma: no cover - console entry for `python -m brain`
    sys.exit(main())
