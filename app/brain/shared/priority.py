"""Lowering a process's CPU priority, in a module that imports nothing heavy.

Why its own module: the ingest child (brain.api.ingest_child) is started with multiprocessing's
"spawn", which imports its initializer's module before running it. Were the initializer in
brain.api.ingest_child, the child would import Flask, pydantic and the store (about 0.6 s of CPU)
at the API worker's priority, beside the first requests; from here the child lowers its priority
first and imports the rest on its first task.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def lower(nice: int) -> None:
    """Add ``nice`` to this process's nice value (run after every normal-priority process); a
    container that forbids it leaves the process at its priority, with a warning."""
    try:
        os.nice(nice)
    except OSError as exc:
        log.warning("cannot lower this process's priority by %d: %s", nice, exc)
