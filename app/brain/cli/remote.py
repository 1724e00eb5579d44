"""The CLI's reads through brain-api (``brain search``, ``brain stats``), for the laptop.

The same commands with ``--local`` read the database file directly on the brain-api host
(``brain.cli.local``, which needs the server extra); both print with the functions here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from brain.cli import api_errors
from brain.shared.progress import on_terminal, progress
from brain.shared.settings import LaptopConfig
from brain.shared.words import counted


def search_remote(cfg: LaptopConfig, query: str, **kw: Any) -> dict[str, Any]:
    client = api_errors.client(cfg)
    with api_errors.reported():
        return client.search(query, **kw)


def stats_remote(cfg: LaptopConfig) -> dict[str, Any]:
    client = api_errors.client(cfg)
    with api_errors.reported():
        return client.stats()


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
        line = (f"{mark} {model}: {counted(e.get('embedded', 0), 'vector')}, {e.get('queued', 0)} queued, "
                f"{e.get('failed', 0)} failed, {e.get('rate_per_min', 0)}/min")
        if e.get("queued"):
            line += f", {'~' + str(eta) + ' s left' if eta is not None else 'no progress in the last minute'}"
        if e.get("last_error"):
            line += f"; last error: {e['last_error']}"
        click.echo(line)
