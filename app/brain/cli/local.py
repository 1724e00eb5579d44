"""CLI operations that work on the database file directly (on the brain-api host) or through brain-api.

Why both: on the laptop the CLI must go through brain-api (the database lives on the VM); on the
VM, ``reindex`` and ``--local`` reads avoid an HTTP round trip and work while the API is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from brain.core import store
from brain.core.embed import EmbedError, get_embedder, get_text_model
from brain.core.search import Searcher
from brain.shared import timeutil
from brain.shared.config import Config
from brain.shared.progress import on_terminal, progress


def _open(cfg: Config) -> store.Store:
    conn = store.connect(cfg["server.db_path"])
    store.migrate(conn)
    return store.Store(conn, cfg["embed.chunk_tokens"], cfg["embed.chunk_overlap"])


def _times(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    try:
        return (timeutil.normalise(since) if since else None, timeutil.normalise(until) if until else None)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def search_local(cfg: Config, query: str, *, k: int, source: str | None, project: str | None, since: str | None,
                 until: str | None, mode: str) -> dict[str, Any]:
    st = _open(cfg)
    since, until = _times(since, until)
    try:
        searcher = Searcher(get_embedder(cfg))
        start = time.perf_counter()
        hits = searcher.search(st.conn, query, k=k, source=source, project=project, since=since, until=until,
                               mode=mode)
    except EmbedError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        st.conn.close()
    return {"query": query, "mode": mode, "model": searcher.embedder.model_id,
            "took_ms": round((time.perf_counter() - start) * 1000, 2), "results": [h.as_result() for h in hits]}


def _client(cfg: Config):
    from brain.client.http import ApiClient

    return ApiClient(cfg["client.api_url"], cfg["client.token"], timeout=cfg["client.timeout"],
                     ca_bundle=cfg["client.ca_bundle"])


def _remote(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    from brain.client.http import ApiError, ApiUnavailable

    try:
        return call()
    except (ApiError, ApiUnavailable) as exc:
        raise click.ClickException(str(exc)) from None


def search_remote(cfg: Config, query: str, **kw: Any) -> dict[str, Any]:
    client = _client(cfg)
    return _remote(lambda: client.search(query, **kw))


def stats_local(cfg: Config) -> dict[str, Any]:
    st = _open(cfg)
    try:
        try:
            model = get_text_model(cfg).model_id
        except EmbedError as exc:
            model = f"unavailable: {exc}"
        return st.stats(model)
    finally:
        st.conn.close()


def stats_remote(cfg: Config) -> dict[str, Any]:
    client = _client(cfg)
    return _remote(client.stats)


def reindex_local(cfg: Config, wait: bool = True) -> tuple[int, int]:
    """Queue every text the configured model lacks; then, unless ``wait`` is false, drain the queue:
    here when no embed worker runs on this database, else by following the running worker."""
    from brain.core.embed_worker import WorkerLock, run_worker

    st = _open(cfg)
    try:
        model = get_text_model(cfg).model_id
        queued = st.queue_all(model)
        left = st.backlog(model)[model]["queued"]
    except EmbedError as exc:
        raise click.ClickException(f"reindex: {exc}") from None
    finally:
        st.conn.close()
    if not wait or not left:
        return queued, 0
    if WorkerLock(cfg["server.db_path"]).is_held_elsewhere():
        follow_backlog(lambda: stats_local(cfg))
        return queued, left
    with progress() as prog:
        bar = prog.bar("embedding", total=left, detail=model)
        try:
            done = run_worker(cfg, once=True, progress=lambda n: bar.update(completed=n))
        except EmbedError as exc:
            raise click.ClickException(f"reindex stopped (rerun to resume): {exc}") from None
    return queued, done


def _backlog_line(data: dict[str, Any]) -> tuple[str, int, int]:
    """(model, texts embedded, texts in all) of the configured model, from a stats answer."""
    model = data.get("embedding_model", "")
    entry = data.get("embedding", {}).get(model, {})
    return model, data.get("vectors", 0), data.get("vectors", 0) + entry.get("queued", 0)


def follow_backlog(fetch: Callable[[], dict[str, Any]], poll: float = 1.0,
                   wait: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Show the configured model's backlog as a progress line until nothing is queued (or Ctrl-C).

    Polls brain-api (or the database) once a ``poll``; the line shows chunk vectors done of all,
    the rate over the last minute and the estimated time left, as the server reports them."""
    data = fetch()
    on_tty = on_terminal()
    printed = -1e9
    with progress() as prog:
        model, done, total = _backlog_line(data)
        bar = prog.bar("embedding", total=total, detail=model)
        try:
            while True:
                model, done, total = _backlog_line(data)
                entry = data.get("embedding", {}).get(model, {})
                eta = entry.get("eta_seconds")
                detail = f"{entry.get('rate_per_min', 0)}/min" + (f", ~{eta} s left" if eta else "")
                bar.update(completed=done, total=total, detail=detail)
                if not entry.get("queued"):
                    break
                if not on_tty and time.monotonic() - printed >= 10:  # a log line, not a flood
                    click.echo(f"embedding: {done}/{total} chunk vectors, {detail}", err=True)
                    printed = time.monotonic()
                wait(poll)
                data = fetch()
        except KeyboardInterrupt:
            click.echo("stopped following; the embedding worker goes on", err=True)
            return data
    click.echo(f"embedding: {done}/{total} chunk vectors of {model}: done", err=True)
    return data


def print_stats(data: dict[str, Any]) -> None:
    """The stats answer for a person: items per source, then the backlog per model."""
    items = ", ".join(f"{k} {v}" for k, v in sorted(data.get("items", {}).items())) or "none"
    click.echo(f"items: {data.get('total_items', 0)} ({items}); chunks: {data.get('total_chunks', 0)}; "
               f"database: {data.get('db_bytes', 0) / 1e6:.1f} MB; last ingest: {data.get('last_ingest_at') or '-'}")
    for model, e in sorted(data.get("embedding", {}).items()):
        mark = "*" if model == data.get("embedding_model") else " "
        eta = e.get("eta_seconds")
        line = (f"{mark} {model}: {e.get('embedded', 0)} vectors, {e.get('queued', 0)} queued, "
                f"{e.get('failed', 0)} failed, {e.get('rate_per_min', 0)}/min")
        if e.get("queued"):
            line += f", {'~' + str(eta) + ' s left' if eta is not None else 'no progress in the last minute'}"
        if e.get("last_error"):
            line += f"; last error: {e['last_error']}"
        click.echo(line)
