"""Helpers for the Ansible tests: run ansible-playbook from the repository root, on localhost only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def find_tool(name: str) -> str:
    """The tool from the interpreter's own environment (the venv) first, then PATH."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -r requirements-ansible.txt")
    return found


def ansible_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp / "ansible-remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        # local runs use this interpreter (and its brain package), not whatever python3 is on PATH
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    })
    return env


def run_playbook(tmp: Path, playbook: Path, extra_vars: dict | None = None,
                 env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a playbook against localhost only (local connection), never the real inventory."""
    args = [find_tool("ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    if extra_vars is not None:
        vars_file = tmp / f"vars-{playbook.stem}-{len(list(tmp.glob('vars-*')))}.json"
        vars_file.write_text(json.dumps(extra_vars))
        args += ["-e", f"@{vars_file}"]
    proc = subprocess.run(args, cwd=REPO, env={**ansible_env(tmp), **(env or {})}, capture_output=True,
                          text=True, timeout=300, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"ansible-playbook {playbook.name} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return proc
