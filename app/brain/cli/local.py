"""CLI operations on the database file directly, on the brain-api host (``--local``, ``reindex``).

Why both: on the laptop the CLI must go through brain-api (the database lives on the VM); on the
VM, ``reindex`` and ``--local`` reads avoid an HTTP round trip and work while the API is down.
"""

from __future__ import annotations

import time
from typing import Any

import click

from brain.cli.remote import follow_backlog
from brain.core import store
from brain.core.embed import EmbedError, get_embedder, get_text_model
from brain.core.search import Searcher
from brain.shared import timeutil
from brain.shared.progress import progress
from brain.shared.settings import ServerConfig


def _open(cfg: ServerConfig) -> store.Store:
    conn = store.connect(cfg.server.db_path)
    store.migrate(conn)
    return store.Store(conn, cfg.embed.chunk_tokens, cfg.embed.chunk_overlap)


def _times(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    try:
        return (timeutil.normalise(since) if since else None, timeutil.normalise(until) if until else None)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def search_local(cfg: ServerConfig, query: str, *, k: int, source: str | None, project: str | None, since: str | None,
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


def stats_local(cfg: ServerConfig) -> dict[str, Any]:
    st = _open(cfg)
    try:
        try:
            model = get_text_model(cfg).model_id
        except EmbedError as exc:
            model = f"unavailable: {exc}"
        return st.stats(model)
    finally:
        st.conn.close()


def reindex_local(cfg: ServerConfig, wait: bool = True) -> tuple[int, int]:
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
    if WorkerLock(cfg.server.db_path).is_held_elsewhere():
        follow_backlog(lambda: stats_local(cfg))
        return queued, left
    with progress() as prog:
        bar = prog.bar("embedding", total=left, detail=model)
        try:
            done = run_worker(cfg, once=True, progress=lambda n: bar.update(completed=n), lower_priority=False)
        except EmbedError as exc:
            raise click.ClickException(f"reindex stopped (rerun to resume): {exc}") from None
    return queued, done


