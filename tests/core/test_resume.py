"""The command that reopens a session: quoted for a shell, one ``cd`` at most, the same on every surface."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from brain.api.web import open_command
from brain.shared.resume import reopen_command


@pytest.mark.parametrize(("project", "resume", "expected"), [
    ("/home/dev/spotter", "claude --resume abc", "cd /home/dev/spotter && claude --resume abc"),
    ("/home/dev/my project", "claude --resume abc", "cd '/home/dev/my project' && claude --resume abc"),
    ("/tmp/x; rm -rf ~", "codex resume 1", "cd '/tmp/x; rm -rf ~' && codex resume 1"),
    ("/home/dev/repo", "cd /home/dev/repo && aider --restore-chat-history", "cd /home/dev/repo && aider --restore-chat-history"),
    (None, "claude --resume abc", "claude --resume abc"),
    ("", "claude --resume abc", "claude --resume abc"),
    ("/home/dev/spotter", None, None),
    ("/home/dev/spotter", "  ", None),
    ("/home/dev/spotter", ["claude", "--resume"], None),  # meta from a collector that wrote it wrong
])
def test_reopen_command(project, resume, expected) -> None:
    assert reopen_command(project, resume) == expected


def test_a_project_folder_with_shell_characters_stays_one_word(tmp_path) -> None:
    folder = tmp_path / "it's a; folder $(touch pwned)"
    folder.mkdir()
    cmd = reopen_command(str(folder), "pwd")
    assert cmd is not None
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=30, check=True, cwd=tmp_path)
    assert out.stdout.strip() == str(folder)
    assert not (tmp_path / "pwned").exists()
    assert shlex.split(cmd)[:2] == ["cd", str(folder)]


def test_the_web_page_uses_it() -> None:
    item = {"project": "/home/dev/my project", "meta": {"resume": "claude --resume abc"}}
    assert open_command(item) == "cd '/home/dev/my project' && claude --resume abc"
    assert open_command({"project": "/p", "meta": {"resume": "cd /p && aider"}}) == "cd /p && aider"
    assert open_command({"project": "/p", "meta": {}}) is None
