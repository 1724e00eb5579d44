"""CLI operations that work on the database file directly (on the brain-api host) or through brain-api.

Why both: on the laptop the CLI must go through brain-api (the database lives on the VM); on the
VM, ``reindex`` and ``--local`` reads avoid an HTTP round trip and work while the API is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from . import store, timeutil
from .config import Config
from .embed import EmbedError, get_embedder
from .search import Searcher


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
    from .client import ApiClient

    return ApiClient(cfg["client.api_url"], cfg["client.token"], timeout=cfg["client.timeout"],
                     ca_bundle=cfg["client.ca_bundle"])


def _remote(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    from .client import ApiError, ApiUnavailable

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
            model = get_embedder(cfg).model_id
        except EmbedError as exc:
            model = f"unavailable: {exc}"
        return st.stats(model)
    finally:
        st.conn.close()


def stats_remote(cfg: Config) -> dict[str, Any]:
    client = _client(cfg)
    return _remote(client.stats)


def reindex_local(cfg: Config, batch: int, progress: Callable[[int], None]) -> int:
    st = _open(cfg)
    try:
        return st.reindex(get_embedder(cfg), batch=batch, progress=progress)
    except EmbedError as exc:
        raise click.ClickException(f"reindex stopped (rerun to resume): {exc}") from None
    finally:
        st.conn.close()
