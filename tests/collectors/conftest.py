"""Fixtures for the collector tests: a fake home (set up by the root conftest), a config
loaded from the environment, the collectors' state database, and a brain-api stand-in."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from brain.collect.outbox import Queued, Sink, State
from brain.collect.redact import default_redactor
from brain.shared import config as config_mod

from .fakehome import copy_real_claude, write_synthetic_claude
from .standin_api import BrainApiStandIn


class RecordingSink(Sink):
    """Keeps what a collector produced, for assertions (items are already redacted)."""

    def __init__(self, state: State):
        super().__init__(state)
        self.items: dict[str, dict[str, Any]] = {}
        self.redactions: dict[str, Any] = {}
        self.deleted: list[str] = []

    def upsert(self, q: Queued) -> bool:
        self.items[q.item["id"]] = q.item
        self.redactions[q.item["id"]] = q.redacted
        self.queued += 1
        return True

    def delete(self, item_id: str) -> None:
        self.deleted.append(item_id)


@pytest.fixture
def home() -> Path:
    return Path(os.environ["HOME"])


@pytest.fixture
def projects(home: Path) -> Path:
    """A fake ~/.claude/projects: the real transcripts plus the synthetic ugly cases."""
    p = home / ".claude" / "projects"
    copy_real_claude(p)
    write_synthetic_claude(p)
    return p


@pytest.fixture
def make_cfg() -> Callable[..., config_mod.Config]:
    def make(**overrides: Any) -> config_mod.Config:
        """``files_roots=[...]`` sets ``collect.files_roots``; ``client__token=...`` sets ``client.token``."""
        names = {(k.replace("__", ".") if "__" in k else "collect." + k): v for k, v in overrides.items()}
        return config_mod.load(env=dict(os.environ), overrides=names)
    return make


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    st = State(tmp_path / "state" / "collect.db")
    yield st
    st.close()


@pytest.fixture
def redactor():
    return default_redactor()


@pytest.fixture
def standin() -> Iterator[BrainApiStandIn]:
    server = BrainApiStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def api_server_fast_embed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real brain-api (gunicorn, temp SQLite), embedding through the OpenAI embeddings stand-in.

    Why: the end-to-end collector test sends ~60 chunks; the local model needs ~20 s for them on
    2 busy cores, the stand-in well under a second. Everything between the collector and the
    store is the real code; the ``api_server`` fixture (local model) is used by the crash test.
    """
    from tests.conftest import start_api_server, stop_api_server
    from tests.standins.openai_embeddings import EmbeddingsStandIn

    embed = EmbeddingsStandIn(dim=64).start()
    server = start_api_server(tmp_path_factory.mktemp("api-fast"), {
        "BRAIN_EMBED_PROVIDER": "openai", "OPENAI_API_KEY": embed.expected_key, "BRAIN_EMBED_BASE_URL": embed.url})
    yield server
    stop_api_server(server)
    embed.stop()
