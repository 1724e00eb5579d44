"""Two installs (issue 14, point 4): ``pip install brain`` is the laptop side alone, ``pip install
"brain[server]"`` adds brain-api. Each goes into a fresh virtualenv from this checkout (the versions
held to the pinned files with ``-c``) and runs commands there, so a dependency the laptop side needs
but pyproject does not declare, or a server import reached from a laptop command, fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ("flask", "gunicorn", "numpy", "onnxruntime", "tokenizers", "boto3", "faiss", "tantivy", "openai")


def _venv(tmp: Path, spec: str, constraints: str) -> Path:
    """A fresh virtualenv with ``spec`` installed from this checkout; its bin folder."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", spec,
                           "-c", str(ROOT / constraints)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return venv / "bin"


def _run(bin_dir: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], env=env, cwd=home, capture_output=True,
                          text=True, timeout=300)


def _importable(bin_dir: Path, modules: tuple[str, ...], home: Path) -> list[str]:
    """Which of ``modules`` the venv's Python can import (one process asks for all of them)."""
    code = ("import importlib, sys\nfor m in sys.argv[1:]:\n    try:\n        importlib.import_module(m)\n"
            "    except ImportError:\n        continue\n    print(m)")
    proc = _run(bin_dir, "python", "-c", code, *modules, home=home)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.slow
def test_the_laptop_install_has_no_server_side(tmp_path: Path) -> None:
    bin_dir = _venv(tmp_path, ".", "requirements.txt")
    home = tmp_path / "home"
    home.mkdir()
    version = _run(bin_dir, "brain", "--version", home=home)
    assert version.returncode == 0 and version.stdout.startswith("brain, version "), version.stderr
    assert _importable(bin_dir, SERVER_ONLY, home) == []
    for args in (["--help"], ["collect", "--help"], ["hooks", "--help"], ["mcp", "--help"], ["ask", "--help"],
                 ["config", "show"], ["init"]):
        proc = _run(bin_dir, "brain", *args, home=home)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    # the commands that do work: against an unreachable brain-api they fail with a clear message
    down = _run(bin_dir, "brain", "search", "wal", home=home)
    assert down.returncode == 1 and "brain-api" in down.stderr and "Traceback" not in down.stderr, down.stderr
    # the server's commands say what to install instead of failing on an import
    for args in (["serve"], ["embed-worker", "--once"], ["search", "wal", "--local"]):
        proc = _run(bin_dir, "brain", *args, home=home)
        assert proc.returncode == 1 and 'pip install "brain[server]"' in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_the_server_install_runs_brain_api(tmp_path: Path) -> None:
    bin_dir = _venv(tmp_path, ".[server]", "requirements-server.txt")
    home = tmp_path / "home"
    home.mkdir()
    assert _importable(bin_dir, SERVER_ONLY, home) == list(SERVER_ONLY)
    for args in (["--version"], ["serve", "--help"], ["embed-worker", "--help"], ["model", "path", "--help"],
                 ["backup", "--help"]):
        proc = _run(bin_dir, "brain", *args, home=home)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    # the WSGI app is built from the installed package with its own settings
    app = _run(bin_dir, "python", "-c", "from brain.api import create_app; "
               "print(create_app({'server.db_path': 'b.db'}).url_map.bind('x').match('/healthz')[0])", home=home)
    assert app.returncode == 0 and app.stdout.strip() == "health.healthz", app.stdout + app.stderr
