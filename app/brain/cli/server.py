"""The server-side commands of ``brain``: ``serve``, ``embed-worker``, ``reindex`` (brain-api's host).

They need the server extra (``pip install "brain[server]"``); ``brain.cli.main`` loads this module
only when one of them runs, and on a laptop install, where the import fails, says what to install.
"""

from __future__ import annotations

import click

from brain.api.server import run_dev, run_gunicorn
from brain.cli.local import reindex_local
from brain.cli.main import Ctx, pass_ctx
from brain.core.embed import EmbedError
from brain.core.embed_worker import run_worker
from brain.core.model_fetch import locate_model
from brain.shared.progress import progress
from brain.shared.settings import ServerConfig, embed_provider


@click.command()
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

    cfg = obj.server
    host = host or cfg.server.host
    port = port or cfg.server.port
    _ensure_local_model(cfg)
    if dev:
        run_dev(cfg, host, port)
    else:
        run_gunicorn(cfg, host, port, workers or cfg.server.workers)


def _ensure_local_model(cfg: ServerConfig) -> None:
    """Fetch a missing local model before serving (with a progress bar on a terminal), so that the
    first ingest does not wait for the download. A failure is only a warning: the server starts,
    /readyz names what is missing, and the next use of the model tries the fetch again."""

    if embed_provider(cfg) != "local":
        return
    with progress() as bars:
        bar = bars.bar(f"fetching {cfg.embed.local_model}")
        try:
            locate_model(cfg, progress=lambda label, done, total: bar.update(completed=done, total=total,
                                                                             detail=label))
        except EmbedError as exc:
            click.echo(f"warning: {exc}", err=True)


@click.command("embed-worker")
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


    logging.basicConfig(level=logging.INFO, format="brain embed-worker: %(levelname)s %(message)s")
    try:
        n = run_worker(obj.server, once=once, exit_with_parent=exit_with_parent)
    except EmbedError as exc:
        raise click.ClickException(str(exc)) from None
    if once:
        click.echo(f"embed worker: {n} queued texts done")


@click.command()
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

    queued, done = reindex_local(obj.server, wait=not no_wait)
    click.echo(f"reindex: {queued} chunk texts queued" + ("" if no_wait else f", {done} embedded"))
