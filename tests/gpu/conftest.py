"""Fixtures of the GPU suite: the TensorDock stand-in with one VM, a stand-in Ollama that is up
only while that VM runs, and brain-api apps wired to both (in process, or over real HTTP)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import brain.gpu.control  # noqa: F401
import brain.rag.ask  # noqa: F401 - register the areas' settings before any config is loaded
import brain.rag.llm  # noqa: F401
from brain.api import create_app
from brain.core import store
from brain.gpu.control import GpuControl
from brain.shared import config as config_mod
from tests.ask.helpers import CORPUS
from tests.conftest import TOKEN, drain_embeddings
from tests.standins.tensordock_server import TensorDockStandIn

from .standin_ollama import OllamaStandIn

RATE = 0.40


@pytest.fixture(autouse=True)
def _no_real_tensordock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the stand-in's token and URL, never a developer's real ones from the environment."""
    for var in ("TENSORDOCK_API_TOKEN", "TENSORDOCK_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def td() -> Iterator[TensorDockStandIn]:
    """TensorDock stand-in whose start/stop take 0.2 s (``starting`` → ``running``)."""
    with TensorDockStandIn(transition_delay=0.2) as server:
        yield server


@pytest.fixture
def vm(td: TensorDockStandIn) -> str:
    """A stopped RTX 4090 VM at $0.40/h, as Pulumi left it."""
    return td.add_instance(status="Stopped", rate_hourly=RATE)


@pytest.fixture
def ollama(td: TensorDockStandIn, vm: str) -> Iterator[OllamaStandIn]:
    server = OllamaStandIn(lambda: td.instance(vm)["status"] == "running", boot_delay=0.2).start()
    yield server
    server.close()


@pytest.fixture
def gpu_settings(db_path: Path, td: TensorDockStandIn, vm: str, ollama: OllamaStandIn) -> dict[str, Any]:
    """Dotted settings for an app (or a Config) that controls the stand-in VM."""
    return {
        "server.db_path": str(db_path), "server.api_tokens": [TOKEN],
        "gpu.instance_id": vm, "gpu.tensordock_token": td.token, "gpu.tensordock_url": td.url,
        "gpu.tensordock_retries": 0, "gpu.poll_interval": 0.05, "gpu.start_timeout": 10.0,
        "llm.base_url": ollama.url + "/v1", "llm.read_timeout": 5.0, "llm.connect_timeout": 1.0,
        "llm.max_retries": 0, "llm.answer_tokens": 64,
    }


def make_app(settings: dict[str, Any], corpus: bool = False, **overrides: Any):
    app = create_app({**settings, **overrides})
    if corpus:
        resp = app.test_client().post("/api/v1/items", json={"items": CORPUS},
                                      headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status_code == 200, resp.get_json()
        drain_embeddings(app)  # what the embedding worker does beside the real server
    return app


def make_control(settings: dict[str, Any], **kw: Any) -> GpuControl:
    """A GpuControl on the same database and VM as the app (``kw``: clock, ...)."""
    cfg = config_mod.load(overrides=settings)
    conn = store.connect(cfg.server.db_path)
    store.migrate(conn)
    conn.close()
    return GpuControl(cfg, **kw)


def ledger(db_path: Path) -> list[tuple[str, str, float]]:
    """``(event, origin, rate)`` of every ledger row, oldest first."""
    conn = store.connect(db_path)
    try:
        return [(r["event"], r["origin"], r["rate_hourly"]) for r in
                conn.execute("SELECT event, origin, rate_hourly FROM gpu_ledger ORDER BY id")]
    finally:
        conn.close()


def inflight(db_path: Path) -> int:
    conn = store.connect(db_path)
    try:
        return conn.execute("SELECT count(*) FROM gpu_inflight").fetchone()[0]
    finally:
        conn.close()


def starts(td: TensorDockStandIn) -> int:
    return len(td.calls("POST", r"/start$"))


def stops(td: TensorDockStandIn) -> int:
    return len(td.calls("POST", r"/stop$"))


@pytest.fixture
def serve(serve_app: Callable[[Any], str]) -> Callable[[Any], str]:
    """The shared ``serve_app`` starter (tests/conftest.py) under this suite's name."""
    return serve_app
