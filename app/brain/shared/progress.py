"""Progress a person can see on a terminal, and silence under cron.

Why rich: a maintained library draws, refreshes and clears the bars correctly on any terminal;
nothing is drawn when stderr is not a terminal (cron, pipes, CI) or when ``--quiet`` is given,
so the same code serves both.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Bar:
    """One line of progress: a description and counters, or nothing at all when disabled."""

    def __init__(self, progress: Any, task: Any):
        self._progress = progress
        self._task = task

    def update(self, *, completed: float | None = None, total: float | None = None, **fields: Any) -> None:
        if self._progress is None:
            return
        kw: dict[str, Any] = dict(fields)
        if completed is not None:
            kw["completed"] = completed
        if total is not None:
            kw["total"] = total
        self._progress.update(self._task, **kw)


class Progress:
    """A set of bars on stderr, drawn only on a terminal and when not quiet."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._rich: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                      console=Console(stderr=True), transient=True)

    def bar(self, description: str, total: float | None = None, detail: str = "") -> Bar:
        if self._rich is None:
            return Bar(None, None)
        return Bar(self._rich, self._rich.add_task(description, total=total, detail=detail))

    def __enter__(self) -> Progress:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()


def on_terminal(quiet: bool = False) -> bool:
    """Draw progress only for a person: stderr is a terminal and ``--quiet`` was not given."""
    return not quiet and sys.stderr.isatty()


@contextmanager
def progress(quiet: bool = False) -> Iterator[Progress]:
    with Progress(on_terminal(quiet)) as p:
        yield p
