"""The molecule scenarios, one test per role: `pytest -m molecule tests/ansible` (about 15 min on
2 cores; CI runs only the default marker set). Each builds the local systemd image first if it is
missing and needs root with podman, runc and debootstrap installed."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from ansible_helpers import REPO

ROLES = ["common", "brain", "ollama", "wireguard", "collectors"]


@pytest.mark.molecule
@pytest.mark.parametrize("role", ROLES)
def test_molecule_scenario(role: str) -> None:
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install -y podman runc debootstrap")
    proc = subprocess.run([str(REPO / "tests/ansible/run-molecule.sh"), role], capture_output=True, text=True,
                          timeout=1800, check=False)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
