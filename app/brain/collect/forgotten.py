"""The collectors learn what was forgotten: brain-api's tombstones, fetched before each run.

Why fetched before collecting and kept in the state database: a forgotten item must be skipped
before it is queued, so its text never leaves the laptop again (``Sink.forgets``); and a run
while brain-api is unreachable (a train, a laptop offline) still skips what was forgotten, with
the rules learnt last time. brain-api refuses forgotten items on ingest as well, so a collector
that has not learnt a rule yet still cannot store one again.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from brain.client.http import ApiClient, ApiError, ApiUnavailable
from brain.collect.outbox import State
from brain.shared import timeutil
from brain.shared.settings import LaptopConfig
from brain.shared.tombstones import Rule, rules_from
from brain.shared.words import counted

CURSOR = "tombstones"


def cached(state: State) -> tuple[list[Rule], str]:
    """The rules learnt last time and when (``""``: never)."""
    raw = state.get_cursor(CURSOR)
    if not raw:
        return [], ""
    try:
        data = json.loads(raw)
        return rules_from(t["rule"] for t in data["tombstones"]), str(data.get("at", ""))
    except (ValueError, KeyError, TypeError):
        return [], ""


def remember(state: State, tombstones: list[dict], at: str) -> None:
    state.set_cursor(CURSOR, json.dumps({"at": at, "tombstones": tombstones}, ensure_ascii=False))
    state.checkpoint()


def learn(cfg: LaptopConfig, state: State, warn: Callable[[str], None]) -> list[Rule]:
    """Fetch the tombstones from brain-api (and keep them); on failure use the ones kept last time.

    One attempt without retries: a brain-api that is down is found out by the send at the end of
    the run anyway, and collecting must not wait for it twice."""
    rules, at = cached(state)
    if not cfg.client.token or not cfg.client.api_url:
        return rules
    try:
        tombstones = ApiClient.from_config(cfg, retries=0).tombstones()
    except (ApiError, ApiUnavailable, ValueError) as exc:
        since = f"learnt {at}" if at else "none learnt yet"
        warn(f"cannot fetch what was forgotten from brain-api ({exc}); skipping by the {counted(len(rules), 'tombstone')} "
             f"{since} (brain-api refuses forgotten items anyway)")
        return rules
    remember(state, tombstones, timeutil.now())
    return rules_from(t.get("rule", {}) for t in tombstones if isinstance(t, dict))
