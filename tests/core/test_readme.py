"""The README stays true: its commands exist and its configuration reference matches the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from brain.shared import config
from brain.shared.settings import FullConfig

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_first_screen_gives_the_two_commands_and_ci_runs_the_test_one():
    first_screen = "\n".join(README.splitlines()[:20])
    assert "./scripts/run-local.sh" in first_screen and "./scripts/test.sh" in first_screen
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^exec \./scripts/test\.sh$", ci, re.M)
    for script in ("scripts/run-local.sh", "scripts/test.sh", ".ci/run"):
        assert os.access(ROOT / script, os.X_OK), script
        subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


def test_configuration_reference_is_current(monkeypatch):
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    block = README.split("<!-- settings:start")[1].split("<!-- settings:end -->")[0]
    table = block.split("-->", 1)[1].strip()
    assert table == config.reference_markdown(), "run: python scripts/update-readme-settings.py"


def test_every_setting_is_documented_with_help():
    for s in config.describe(FullConfig):
        assert s.help.strip(), s.name


def test_cli_help_runs_for_every_command():
    out = subprocess.run([sys.executable, "-m", "brain", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("serve", "search", "stats", "reindex", "token", "collect", "ask", "mcp", "backup", "restore"):
        assert re.search(rf"^\s+{cmd}\b", out.stdout, re.M), cmd
