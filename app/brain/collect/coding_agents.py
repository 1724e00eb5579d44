"""The coding agents' collector (``brain collect agents``): each agent module in turn, over the
toolkit in ``brain.collect.agents``.

Why a module of its own: the agent modules (codex, gemini, aider, opencode, cursor) import the
toolkit, and this module imports them; keeping the two apart keeps the imports one way.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from brain.collect import RunStats, aider, codex, cursor, gemini, opencode
from brain.collect.agents import Unit, run_units
from brain.collect.archive import Archive
from brain.collect.outbox import Sink, State
from brain.shared.settings import LaptopConfig


class AgentModule(Protocol):
    NAME: str

    def roots(self, cfg: LaptopConfig) -> list[Path]: ...

    def units(self, cfg: LaptopConfig, roots: list[Path]) -> Iterator[Unit]: ...


def modules() -> list[AgentModule]:
    """The agents, in the order they are collected."""
    return [codex, gemini, aider, opencode, cursor]


def collect(cfg: LaptopConfig, state: State, sink: Sink, redactor: Any, archive: Archive | None,
            since: datetime | None = None, only: tuple[str, ...] = ()) -> RunStats:
    """Collect every agent whose files are found; the summary names the ones found
    (``agents [codex, gemini]: ...``), so a run says what it read."""
    found: list[str] = []
    stats = RunStats("agents")
    for mod in modules():
        if only and mod.NAME not in only:
            continue
        try:
            roots = mod.roots(cfg)
        except OSError as exc:
            stats.errors.append(f"{mod.NAME}: cannot look for sessions: {exc}")
            continue
        if not roots:
            continue
        found.append(mod.NAME)
        try:
            run_units(mod.NAME, mod.units(cfg, roots), cfg, state, sink, redactor, archive, since, stats)
        except OSError as exc:
            state.rollback()
            stats.errors.append(f"{mod.NAME}: cannot list sessions: {exc}")
    stats.name = f"agents [{', '.join(found) or 'none found'}]"
    return stats
